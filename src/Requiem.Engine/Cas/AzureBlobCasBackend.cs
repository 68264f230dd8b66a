using System.Net;
using Azure;
using Azure.Core;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Requiem.Engine.Cas;

/// <summary>
/// A store's names as blobs in one Azure Blob Storage container (the official SDK). Objects are created with
/// <c>If-None-Match: *</c>, so two agents uploading one object leave one blob and neither fails. The connection string
/// (or SAS) is held by the SDK client only: messages name the account endpoint and container, never the credential,
/// and plain http is refused unless the endpoint is a loopback address (the Azurite emulator).
/// </summary>
public sealed class AzureBlobCasBackend : ICasBackend
{
    private readonly BlobContainerClient _container;
    private readonly string[] _secrets;
    private int _containerReady;

    public AzureBlobCasBackend(string connectionString, string container)
    {
        ValidateContainerName(container);
        _secrets = SecretParts(connectionString);
        BlobServiceClient service;
        try
        {
            var options = new BlobClientOptions();
            // Transient failures (throttling, 5xx, resets) are retried with exponential backoff; an endpoint that refuses
            // connections gives up after a few seconds so a run goes on locally instead of hanging.
            options.Retry.Mode = RetryMode.Exponential;
            options.Retry.MaxRetries = 3;
            options.Retry.Delay = TimeSpan.FromMilliseconds(200);
            options.Retry.MaxDelay = TimeSpan.FromSeconds(4);
            options.Retry.NetworkTimeout = TimeSpan.FromSeconds(100);
            options.Diagnostics.IsLoggingEnabled = false;
            options.Diagnostics.IsDistributedTracingEnabled = false;
            options.Diagnostics.IsTelemetryEnabled = false;
            service = new BlobServiceClient(connectionString, options);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
        {
            // The SDK's message may quote the string: say what is wrong without it.
            throw new RequiemException("InvalidRemoteConnectionString", ErrorKind.InvalidArgument,
                "The remote store's connection string is not a valid Azure Storage connection string (its value is not shown).", null);
        }
        var endpoint = service.Uri;
        if (!string.Equals(endpoint.Scheme, Uri.UriSchemeHttps, StringComparison.OrdinalIgnoreCase) && !IsLoopback(endpoint))
            throw new RequiemException("RemoteInsecure", ErrorKind.SecurityError,
                $"The remote store endpoint {endpoint.GetLeftPart(UriPartial.Authority)} uses {endpoint.Scheme}; https is required (plain http only for a loopback emulator).",
                endpoint.GetLeftPart(UriPartial.Authority));
        _container = service.GetBlobContainerClient(container);
        Description = $"Azure Blob container '{container}' at {endpoint.GetLeftPart(UriPartial.Path).TrimEnd('/')}";
        Endpoint = endpoint.GetLeftPart(UriPartial.Path).TrimEnd('/');
        Container = container;
    }

    public string Description { get; }
    /// <summary>The account endpoint without query (a SAS is never part of it).</summary>
    public string Endpoint { get; }
    public string Container { get; }

    internal static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>Container names: 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.</summary>
    public static void ValidateContainerName(string name)
    {
        var ok = name.Length is >= 3 and <= 63 && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1]) && !name.Contains("--", StringComparison.Ordinal);
        foreach (var c in name) ok &= char.IsAsciiDigit(c) || char.IsAsciiLetterLower(c) || c == '-';
        if (!ok)
            throw new RequiemException("InvalidRemoteContainer", ErrorKind.InvalidArgument,
                $"'{name}' is not a valid blob container name: 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.", name);
    }

    public void Probe(CancellationToken cancel) => Call("reach", _container.Name, () => { EnsureContainer(cancel, force: true); return true; });

    private void EnsureContainer(CancellationToken cancel, bool force = false)
    {
        if (!force && Volatile.Read(ref _containerReady) == 1) return;
        _container.CreateIfNotExists(cancellationToken: cancel);
        Volatile.Write(ref _containerReady, 1);
    }

    public bool Exists(string name, CancellationToken cancel) =>
        Call("look up", name, () => _container.GetBlobClient(name).Exists(cancel).Value);

    public bool CreateFromFile(string name, string path, CancellationToken cancel) =>
        Call("upload", name, () =>
        {
            EnsureContainer(cancel);
            try
            {
                using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.SequentialScan);
                _container.GetBlobClient(name).Upload(file, new BlobUploadOptions
                {
                    Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                    TransferOptions = new Azure.Storage.StorageTransferOptions
                    {
                        InitialTransferSize = 8 << 20, MaximumTransferSize = 8 << 20, MaximumConcurrency = 4,
                    },
                }, cancel);
                return true;
            }
            catch (RequestFailedException ex) when (IsAlreadyThere(ex))
            {
                return false;
            }
        });

    public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel) =>
        Call("upload", name, () =>
        {
            EnsureContainer(cancel);
            try
            {
                _container.GetBlobClient(name).Upload(BinaryData.FromBytes(content), new BlobUploadOptions
                {
                    Conditions = overwrite ? null : new BlobRequestConditions { IfNoneMatch = ETag.All },
                }, cancel);
                return true;
            }
            catch (RequestFailedException ex) when (!overwrite && IsAlreadyThere(ex))
            {
                return false;
            }
        });

    private static bool IsAlreadyThere(RequestFailedException ex) =>
        ex.Status is 409 or 412 && ex.ErrorCode is "BlobAlreadyExists" or "ConditionNotMet" or null;

    /// <summary>
    /// The bounded download is the interface's: the blob streams through <see cref="CappedWriteStream"/>, which stops the
    /// transfer at the write that would pass the bound. The SDK may wrap that refusal; <see cref="Call"/> unwraps it so
    /// it is not taken for an outage.
    /// </summary>
    private static CasBlobTooLargeException? TooLarge(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is CasBlobTooLargeException tooLarge) return tooLarge;
            if (ex is AggregateException aggregate && aggregate.InnerExceptions.Select(TooLarge).FirstOrDefault(t => t is not null) is { } inner) return inner;
        }
        return null;
    }

    public bool Download(string name, Stream destination, CancellationToken cancel) =>
        Call("download", name, () =>
        {
            try
            {
                _container.GetBlobClient(name).DownloadTo(destination, new BlobDownloadToOptions
                {
                    TransferOptions = new Azure.Storage.StorageTransferOptions
                    {
                        InitialTransferSize = 8 << 20, MaximumTransferSize = 8 << 20, MaximumConcurrency = 4,
                    },
                }, cancel);
                return true;
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                return false;
            }
        });

    public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel)
    {
        var pages = Call("list", prefix, () =>
        {
            try
            {
                var items = new List<CasBackendItem>();
                foreach (var item in _container.GetBlobs(BlobTraits.None, BlobStates.None, prefix, cancel))
                    items.Add(new CasBackendItem(item.Name, item.Properties.ContentLength ?? -1));
                return items;
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                return new List<CasBackendItem>(); // no container yet: nothing stored
            }
        });
        return pages;
    }

    public bool Delete(string name, CancellationToken cancel) =>
        Call("delete", name, () => _container.GetBlobClient(name).DeleteIfExists(cancellationToken: cancel).Value);

    /// <summary>
    /// Runs one SDK call and turns its failures into ours: unreachable or refused credentials become
    /// <see cref="CasBackendUnavailableException"/>, anything else <c>CasRemoteError</c>; messages are built here
    /// (status and error code, or the network error), never copied from the SDK, whose text may echo request details.
    /// </summary>
    private T Call<T>(string operation, string name, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (RequestFailedException ex) when (ex.Status is 0 or 401 or 403)
        {
            var why = ex.Status == 0 ? Redact(Innermost(ex).Message) : $"HTTP {ex.Status} {ex.ErrorCode} (check the credential)";
            throw new CasBackendUnavailableException($"{Description} cannot be reached to {operation} '{name}': {why}");
        }
        catch (RequestFailedException ex)
        {
            throw new RequiemException("CasRemoteError", ErrorKind.ReadError,
                $"{Description}: {operation} '{name}' failed: HTTP {ex.Status} {ex.ErrorCode}.", name);
        }
        catch (Exception ex) when (TooLarge(ex) is { } tooLarge)
        {
            throw tooLarge;
        }
        catch (Exception ex) when (ex is AggregateException or HttpRequestException or IOException or TimeoutException
                                   or System.Net.Sockets.SocketException)
        {
            throw new CasBackendUnavailableException($"{Description} cannot be reached to {operation} '{name}': {Redact(Innermost(ex).Message)}");
        }
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null) ex = ex.InnerException;
        return ex;
    }

    /// <summary>Removes any part of the credential from a message (belt and braces: SDK network errors name only host and port).</summary>
    private string Redact(string message)
    {
        foreach (var secret in _secrets)
            if (secret.Length >= 8) message = message.Replace(secret, "***", StringComparison.Ordinal);
        return message;
    }

    /// <summary>The values of a connection string's secret keys (AccountKey, SharedAccessSignature) and any SAS signature.</summary>
    private static string[] SecretParts(string connectionString)
    {
        var list = new List<string>();
        foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0) continue;
            var key = part[..eq].Trim();
            if (key.Equals("AccountKey", StringComparison.OrdinalIgnoreCase) || key.Equals("SharedAccessSignature", StringComparison.OrdinalIgnoreCase))
            {
                var value = part[(eq + 1)..].Trim();
                list.Add(value);
                var sig = value.IndexOf("sig=", StringComparison.OrdinalIgnoreCase);
                if (sig >= 0) list.Add(value[(sig + 4)..].Split('&')[0]);
            }
        }
        return list.ToArray();
    }
}
