using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Hashing;
using Requiem.Engine.Tenants;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// What every Requiem cmdlet shares: cancellation on Ctrl+C, engine errors turned into ErrorRecords with stable ids,
/// file-system path resolution like Get-FileHash, and the hash primitive selection (fail-closed unless allowed).
/// </summary>
public abstract class RequiemCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private RequiemConfig? _config;

    protected CancellationToken CancellationToken => _cancel.Token;

    protected override void StopProcessing() => _cancel.Cancel();

    /// <summary>The config in effect; an invalid config file is a terminating error (nothing runs on a bad config).</summary>
    protected RequiemConfig Config => _config ??= Run(RequiemConfig.LoadDefault);

    /// <summary>BLAKE3 after its self-test; SHA-256 only if the switch or the config explicitly allows it.</summary>
    /// <summary>The hash primitive, capped at hash.max_threads cores per large input when the config sets it.</summary>
    protected HashPrimitive SelectHash(bool allowFallback) =>
        Run(() =>
        {
            var hash = HashPrimitive.Select(allowFallback || Config.Hash.AllowFallback);
            return Config.Hash.MaxThreads is int cap && cap < hash.MaxThreads ? hash.WithMaxThreads(cap) : hash;
        });

    /// <summary>
    /// Opens the CAS store: -Cas (resolved against the current location) wins, then $env:REQUIEM_CAS, then
    /// cas.path in the config, then the default data directory. Failure to open is terminating.
    /// </summary>
    protected CasStore OpenStore(string? cas, bool allowHashFallback = false, bool create = true)
    {
        var explicitRoot = string.IsNullOrEmpty(cas) ? null : ResolveNewPath(cas);
        var hash = SelectHash(allowHashFallback);
        return Run(() => OpenStoreOrThrow(explicitRoot, hash, create));
    }

    /// <summary>
    /// <see cref="OpenStore"/> for a cmdlet that can go on without a store: a failure to open is the
    /// RequiemException, for the caller to report as it sees fit.
    /// </summary>
    protected CasStore OpenStoreOrThrow(string? explicitRoot, HashPrimitive hash, bool create)
    {
        // With a remote store the local one is a cache: a fresh agent creates it on first use.
        create |= CasRemoteSettings.Resolve(Config) is { HasCredential: true };
        var tenant = ResolveTenantOrThrow();
        var store = TenantStores.Open(RequiemPaths.ResolveCasRoot(explicitRoot, Config), tenant, hash, create, Config);
        if (!_stores.Any(s => s.Root == store.Root))
            WriteVerbose($"Store: {store.Root} ({DescribeStoreSource(explicitRoot)}{(tenant is null ? "" : $", tenant '{tenant}'")}); config: {DescribeConfig()}.");
        AttachRemote(store, tenant);
        _stores.Add(store);
        return store;
    }

    /// <summary>
    /// Puts the configured remote store (if any) behind a local store. A remote configured without its credential is a
    /// warning, not a failure: everything works locally and is journalled for a later Sync-RequiemCas.
    /// </summary>
    private void AttachRemote(CasStore store, string? tenant)
    {
        if (CasRemoteSettings.Resolve(Config) is not { } settings) return;
        if (!settings.HasCredential)
        {
            WriteWarning($"A remote store is configured ({settings}) but ${settings.MissingVariable} is empty; working with the local store only.");
            return;
        }
        ICasBackend backend = settings.CreateBackend();
        if (tenant is not null) backend = new PrefixedCasBackend(backend, Requiem.Engine.Tenants.TenantStores.RemotePrefix(tenant));
        var remote = store.AttachRemote(backend);
        if (Config.Remote is { } section)
        {
            remote.DownloadParallelism = section.DownloadParallelism;
            remote.MaxObjectBytes = section.MaxObjectBytes;
        }
        WriteVerbose($"Remote store: {backend.Description} ({settings.Source}).");
    }

    /// <summary>The remote store behind <paramref name="store"/>; a terminating RemoteNotConfigured error when there is none.</summary>
    protected CasRemote RequireRemote(CasStore store) =>
        Run(() => store.Remote ?? throw (CasRemoteSettings.Resolve(Config) is { } settings
            ? new RequiemException("RemoteNotConfigured", ErrorKind.InvalidOperation,
                $"The remote store is configured ({settings}) but ${settings.MissingVariable} is empty: set it to the storage connection string or SAS.", settings.MissingVariable)
            : new RequiemException("RemoteNotConfigured", ErrorKind.InvalidOperation,
                $"No remote store is configured: set ${CasRemoteSettings.ConnectionStringVariable} (and ${CasRemoteSettings.ContainerVariable}), or the config's 'remote' section.", null)));

    /// <summary>Shows what the remote tiers of this command's stores had to say (raised on any thread, shown on the pipeline thread).</summary>
    protected void WriteRemoteWarnings()
    {
        foreach (var store in _stores)
        {
            if (store.Remote is not { } remote) continue;
            foreach (var warning in remote.DrainWarnings()) WriteWarning(warning);
        }
    }

    private readonly List<CasStore> _stores = new();

    /// <summary>
    /// The tenant in effect (-Tenant, $env:REQUIEM_TENANT, the config), validated (<c>InvalidTenantName</c>); it also
    /// labels the metrics this cmdlet counts from here on.
    /// </summary>
    protected string? ResolveTenantOrThrow()
    {
        var tenant = TenantStores.Resolve((this as RequiemStoreCmdlet)?.Tenant, Config);
        Requiem.Engine.Metrics.MetricsRegistry.CurrentTenant = tenant;
        return tenant;
    }

    private string DescribeStoreSource(string? explicitRoot)
    {
        if (explicitRoot is not null) return "from -Cas";
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(RequiemPaths.CasVariable))) return $"from ${RequiemPaths.CasVariable}";
        if (!string.IsNullOrWhiteSpace(Config.Cas.Path)) return "from cas.path in the config";
        return "the default location";
    }

    private string DescribeConfig() =>
        Config.SourcePath is { } file ? $"'{file}'" : $"the defaults (no config file at '{RequiemPaths.ConfigFile}')";

    /// <summary>
    /// Ends every Requiem cmdlet the same way: the cmdlet's own end (<see cref="EndProcessingCore"/>), then one verbose
    /// line per store it used saying what happened there — so -Verbose answers "which store, and what did it do".
    /// </summary>
    protected sealed override void EndProcessing()
    {
        EndProcessingCore();
        UploadPending();
        foreach (var byRoot in _stores.GroupBy(s => s.Root, StringComparer.Ordinal))
        {
            var all = byRoot.Select(s => s.Activity).ToList();
            WriteVerbose(DescribeActivity(byRoot.Key, new CasActivity
            {
                ObjectsWritten = all.Sum(a => a.ObjectsWritten), BytesWritten = all.Sum(a => a.BytesWritten),
                StoredBytesWritten = all.Sum(a => a.StoredBytesWritten), ObjectsDeduplicated = all.Sum(a => a.ObjectsDeduplicated),
                BytesDeduplicated = all.Sum(a => a.BytesDeduplicated), ObjectsVerified = all.Sum(a => a.ObjectsVerified),
                BytesVerified = all.Sum(a => a.BytesVerified),
            }));
        }
    }

    /// <summary>
    /// Uploads what this command wrote to stores that have a remote (once per store folder). Nothing here stops the
    /// command: an unreachable remote is a warning and the journal keeps every name for the next run or Sync-RequiemCas.
    /// </summary>
    private void UploadPending()
    {
        foreach (var store in _stores.Where(s => s.Remote is not null).GroupBy(s => s.Root, StringComparer.Ordinal).Select(g => g.First()))
        {
            var remote = store.Remote!;
            if (SkipPendingUpload) break;
            try
            {
                var r = remote.UploadPending(cancel: CancellationToken);
                if (r.Uploaded > 0 || r.Pending > 0)
                    WriteVerbose($"Remote store {r.Remote}: {r.Uploaded} uploaded ({r.BytesUploaded} bytes), {r.AlreadyPresent} already there, {r.Pending} waiting for Sync-RequiemCas.");
            }
            catch (RequiemException ex)
            {
                WriteWarning(ex.Message);
            }
            catch (OperationCanceledException) when (CancellationToken.IsCancellationRequested)
            {
                break; // the journal keeps the rest
            }
        }
        WriteRemoteWarnings();
    }

    /// <summary>True for cmdlets that upload themselves (Sync-RequiemCas), so the end of the command does not do it again.</summary>
    protected virtual bool SkipPendingUpload => false;

    /// <summary>What a cmdlet does at the end of the pipeline (PowerShell's EndProcessing).</summary>
    protected virtual void EndProcessingCore() { }

    internal static string DescribeActivity(string root, CasActivity a)
    {
        if (a.IsEmpty) return $"Store {root}: nothing stored or read back.";
        var parts = new List<string>();
        if (a.ObjectsWritten > 0 || a.ObjectsDeduplicated > 0)
        {
            parts.Add($"{a.ObjectsWritten} object(s) stored ({a.BytesWritten} bytes, {a.StoredBytesWritten} on disk)");
            parts.Add($"{a.ObjectsDeduplicated} already present ({a.BytesDeduplicated} bytes deduplicated)");
        }
        if (a.ObjectsVerified > 0) parts.Add($"{a.ObjectsVerified} object(s) verified ({a.BytesVerified} bytes re-hashed)");
        return $"Store {root}: {string.Join(", ", parts)}.";
    }

    /// <summary>
    /// For diagnostic cmdlets (doctor, validate-replacement): the config and CAS root in effect, where a broken config
    /// is captured as a finding instead of stopping the cmdlet.
    /// </summary>
    protected (RequiemConfig? Config, Exception? ConfigError, string? CasRoot) ReadDiagnosticContext(string? cas)
    {
        RequiemConfig? config = null;
        Exception? configError = null;
        try { config = RequiemConfig.LoadDefault(); }
        catch (RequiemException ex) { configError = ex; }
        string? root = null;
        // A bad -Tenant is the caller's mistake (terminating); a bad $env:REQUIEM_TENANT or config tenant is a finding.
        if ((this as RequiemStoreCmdlet)?.Tenant is { Length: > 0 } given) Run(() => TenantName.Validate(given, "-Tenant"));
        try
        {
            root = RequiemPaths.ResolveCasRoot(string.IsNullOrEmpty(cas) ? null : ResolveNewPath(cas), config ?? new RequiemConfig());
            root = TenantStores.RootFor(root, TenantStores.Resolve((this as RequiemStoreCmdlet)?.Tenant, config ?? new RequiemConfig()));
        }
        catch (RequiemException ex) { configError ??= ex; }
        return (config, configError, root);
    }

    /// <summary>Runs engine code whose failure means the cmdlet cannot go on: a RequiemException becomes a terminating error.</summary>
    protected T Run<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (RequiemException ex)
        {
            ThrowTerminatingError(ToErrorRecord(ex));
            throw; // unreachable: ThrowTerminatingError always throws
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>Runs per-item engine code: a RequiemException is written as a non-terminating error and null returned.</summary>
    protected T? TryRun<T>(Func<T> action) where T : class
    {
        try
        {
            return action();
        }
        catch (RequiemException ex)
        {
            WriteError(ToErrorRecord(ex));
            return null;
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    public static ErrorRecord ToErrorRecord(RequiemException ex) =>
        new(ex, ex.ErrorId, MapCategory(ex.Kind), ex.Target);

    protected ErrorRecord NewError(string errorId, ErrorCategory category, string message, object? target) =>
        new(new RequiemException(errorId, ErrorKind.InvalidArgument, message, target), errorId, category, target);

    public static ErrorCategory MapCategory(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidArgument => ErrorCategory.InvalidArgument,
        ErrorKind.InvalidData => ErrorCategory.InvalidData,
        ErrorKind.ObjectNotFound => ErrorCategory.ObjectNotFound,
        ErrorKind.ReadError => ErrorCategory.ReadError,
        ErrorKind.WriteError => ErrorCategory.WriteError,
        ErrorKind.PermissionDenied => ErrorCategory.PermissionDenied,
        ErrorKind.ResourceUnavailable => ErrorCategory.ResourceUnavailable,
        ErrorKind.SecurityError => ErrorCategory.SecurityError,
        ErrorKind.OperationStopped => ErrorCategory.OperationStopped,
        ErrorKind.NotImplemented => ErrorCategory.NotImplemented,
        ErrorKind.InvalidOperation => ErrorCategory.InvalidOperation,
        ErrorKind.LimitsExceeded => ErrorCategory.LimitsExceeded,
        ErrorKind.ResourceExists => ErrorCategory.ResourceExists,
        _ => ErrorCategory.NotSpecified,
    };

    /// <summary>
    /// Resolves -Path (wildcards) or -LiteralPath to file-system paths. Each path that cannot be resolved — missing,
    /// a wildcard pattern that matches nothing, or not on the FileSystem provider — is a non-terminating error
    /// (FileNotFound / NotFileSystemPath) and is skipped; <paramref name="onError"/> replaces writing it (-Quiet).
    /// </summary>
    protected List<string> ResolveFileSystemPaths(IEnumerable<string> paths, bool literal, Action<ErrorRecord>? onError = null)
    {
        onError ??= WriteError;
        var resolved = new List<string>();
        foreach (var path in paths)
        {
            try
            {
                if (literal)
                {
                    var p = SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out var provider, out _);
                    if (!IsFileSystem(provider, path, onError)) continue;
                    if (!File.Exists(p) && !Directory.Exists(p))
                    {
                        onError(NewError("FileNotFound", ErrorCategory.ObjectNotFound, $"Cannot find path '{path}' because it does not exist.", path));
                        continue;
                    }
                    resolved.Add(p);
                }
                else
                {
                    var list = GetResolvedProviderPathFromPSPath(path, out var provider);
                    if (!IsFileSystem(provider, path, onError)) continue;
                    if (list.Count == 0)
                    {
                        // PowerShell resolves a pattern that matches nothing to an empty list, silently: say so, as for a missing file.
                        onError(NewError("FileNotFound", ErrorCategory.ObjectNotFound,
                            $"Cannot find path '{path}' because no file matches the wildcard pattern.", path));
                        continue;
                    }
                    resolved.AddRange(list);
                }
            }
            catch (ItemNotFoundException)
            {
                onError(NewError("FileNotFound", ErrorCategory.ObjectNotFound, $"Cannot find path '{path}' because it does not exist.", path));
            }
            catch (System.Management.Automation.DriveNotFoundException ex)
            {
                onError(NewError("FileNotFound", ErrorCategory.ObjectNotFound, ex.Message, path));
            }
            catch (ProviderNotFoundException ex)
            {
                onError(NewError("NotFileSystemPath", ErrorCategory.InvalidArgument, ex.Message, path));
            }
        }
        return resolved;
    }

    /// <summary>
    /// The files named by a Path / LiteralPath / InputObject parameter triple. A FileInfo piped in (bound to
    /// InputObject) already names a file-system path, so it skips provider resolution — the dominant per-file cost
    /// when thousands of files stream through the pipeline.
    /// </summary>
    protected List<string> ResolveInputFiles(string[]? path, string[]? literalPath, object? inputObject)
    {
        if (path is { Length: > 0 }) return ResolveFileSystemPaths(path, literal: false);
        if (literalPath is { Length: > 0 }) return ResolveFileSystemPaths(literalPath, literal: true);
        return InputBytes.AsFilePath(inputObject) is { } file ? new List<string>(1) { file } : new List<string>();
    }

    /// <summary>Resolves a single output/store path that may not exist yet (no wildcards), relative to the current location.</summary>
    protected string ResolveNewPath(string path) =>
        SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);

    private bool IsFileSystem(ProviderInfo provider, string path, Action<ErrorRecord> onError)
    {
        if (provider.ImplementingType == typeof(Microsoft.PowerShell.Commands.FileSystemProvider)) return true;
        onError(NewError("NotFileSystemPath", ErrorCategory.InvalidArgument,
            $"'{path}' is on the {provider.Name} provider; only file-system paths can be used.", path));
        return false;
    }

    /// <summary>
    /// Cmdlets that run or report on the sandbox call this first: when the native launcher cannot be used (missing,
    /// not executable, built for another CPU) the user hears it once per process, with the reason and the fix.
    /// </summary>
    protected void WarnIfLauncherUnusable() => Requiem.Engine.Sandbox.LauncherFile.WarnIfUnusable(CreateEngineOutput());

    /// <summary>An engine output bound to this cmdlet; only use it from the pipeline thread.</summary>
    protected IEngineOutput CreateEngineOutput(int activityId = 1) => new CmdletEngineOutput(this, activityId);

    protected void CompleteProgress(int activityId, string activity)
    {
        WriteProgress(new ProgressRecord(activityId, activity, "Done") { RecordType = ProgressRecordType.Completed });
    }

    /// <summary>Releases what a derived cmdlet holds (e.g. an uncommitted CAS write batch); PowerShell disposes cmdlets at pipeline end.</summary>
    protected virtual void OnDispose() { }

    public void Dispose()
    {
        OnDispose();
        Requiem.Engine.Metrics.MetricsRegistry.FlushThrottled();
        Requiem.Engine.Metrics.MetricsRegistry.CurrentTenant = null;
        _cancel.Dispose();
        GC.SuppressFinalize(this);
    }

    private sealed class CmdletEngineOutput : IEngineOutput
    {
        private readonly RequiemCmdlet _cmdlet;
        private readonly int _activityId;

        public CmdletEngineOutput(RequiemCmdlet cmdlet, int activityId)
        {
            _cmdlet = cmdlet;
            _activityId = activityId;
        }

        public void Progress(ProgressInfo p) =>
            _cmdlet.WriteProgress(new ProgressRecord(_activityId, p.Activity, p.Status) { PercentComplete = p.Percent });

        public void Verbose(string message) => _cmdlet.WriteVerbose(message);

        public void Warning(string message) => _cmdlet.WriteWarning(message);
    }
}
