using Requiem.Engine.Diagnostics;

namespace Requiem.Engine.Hashing;

/// <summary>
/// The hash primitive the engine uses, chosen once per call site: BLAKE3 after it passed its self-test,
/// otherwise an error (<c>hash_unavailable_blake3</c>) unless the caller explicitly allowed the SHA-256 fallback.
/// </summary>
public sealed class HashPrimitive
{
    public const string Blake3Name = "BLAKE3";
    public const string FallbackName = "SHA256";

    /// <summary>Files at least this large are memory-mapped and hashed on several cores.</summary>
    public const long ParallelThreshold = 1L << 20;

    private const int SmallFileBuffer = 64 * 1024;
    private const int LargeFileBuffer = 4 << 20;

    private static readonly HashPrimitive s_blake3 = new(false);
    private static readonly HashPrimitive s_fallback = new(true);

    private HashPrimitive(bool fallback) => IsFallback = fallback;

    public bool IsFallback { get; }

    public string Algorithm => IsFallback ? FallbackName : Blake3Name;

    /// <summary>Where the primitive comes from: "managed-simd" (Blake3.NET) or "fallback-sha256".</summary>
    public string Backend => IsFallback ? "fallback-sha256" : "managed-simd";

    /// <summary>BLAKE3 (self-tested), or the fallback when allowed; throws <c>HashUnavailableBlake3</c> otherwise.</summary>
    public static HashPrimitive Select(bool allowFallback)
    {
        var test = HashSelfTest.Result;
        if (test.Passed) return s_blake3;
        if (allowFallback) return s_fallback;
        throw new RequiemException("HashUnavailableBlake3", ErrorKind.ResourceUnavailable,
            "hash_unavailable_blake3: BLAKE3 is unavailable (" + test.Detail + "). Refusing to fall back silently; " +
            "pass -AllowHashFallback or set hash.allow_fallback in the config to use SHA-256 instead.", Blake3Name);
    }

    /// <summary>Inputs up to this size (when known in advance) use the compact scalar BLAKE3.</summary>
    public const long CompactThreshold = 16 * 1024;

    /// <summary>
    /// A hasher primed with the domain prefix. Pass the input length when it is known: small inputs then use the
    /// compact implementation, which runs optimised code from the first call.
    /// </summary>
    public RequiemHasher CreateHasher(HashDomain domain, long expectedLength = -1)
    {
        if (IsFallback) return new Sha256FallbackHasher(domain);
        return expectedLength is >= 0 and <= CompactThreshold ? new CompactBlake3Hasher(domain) : new Blake3RequiemHasher(domain);
    }

    public string HashBytes(ReadOnlySpan<byte> data, HashDomain domain)
    {
        using var h = CreateHasher(domain, data.Length);
        if (data.Length >= ParallelThreshold) h.UpdateParallel(data); else h.Update(data);
        return h.FinalizeHex();
    }

    public DigestInfo Digest(ReadOnlySpan<byte> data, HashDomain domain)
    {
        Metrics.MetricsRegistry.Add(Metrics.Counter.DigestTotal);
        Metrics.MetricsRegistry.Add(Metrics.Counter.DigestBytesTotal, data.Length);
        return new(Algorithm, HashBytes(data, domain), null, data.Length, domain, IsFallback);
    }

    /// <summary>
    /// Hashes a file without reading it into the managed heap: small files through one pooled buffer,
    /// large files in 4 MiB reads handed to the parallel update (so cancellation and progress work).
    /// </summary>
    public DigestInfo HashFile(string path, HashDomain domain, CancellationToken cancel = default, IEngineOutput? output = null)
    {
        var small = System.Buffers.ArrayPool<byte>.Shared.Rent(SmallFileBuffer);
        try
        {
            if (SmallFileReader.TryRead(path, small.AsSpan(0, SmallFileBuffer), out var n))
            {
                Metrics.MetricsRegistry.Add(Metrics.Counter.DigestTotal);
                Metrics.MetricsRegistry.Add(Metrics.Counter.DigestBytesTotal, n);
                return new DigestInfo(Algorithm, HashBytes(small.AsSpan(0, n), domain), path, n, domain, IsFallback);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(small);
        }

        using var handle = OpenForRead(path);
        var length = RandomAccess.GetLength(handle);
        using var hasher = CreateHasher(domain, length);
        if (length >= ParallelThreshold) HashLarge(handle, length, hasher, path, cancel, output);
        else length = HashStreamed(handle, hasher, path, cancel);
        Metrics.MetricsRegistry.Add(Metrics.Counter.DigestTotal);
        Metrics.MetricsRegistry.Add(Metrics.Counter.DigestBytesTotal, length);
        return new DigestInfo(Algorithm, hasher.FinalizeHex(), path, length, domain, IsFallback);
    }

    /// <summary>Opens a file for sequential reading with engine error ids for the usual failures.</summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenForRead(string path)
    {
        try
        {
            // No existence pre-checks: one open() per file is the whole cost of the common case.
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (FileNotFoundException ex)
        {
            throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"File '{path}' does not exist.", path, ex);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"File '{path}' does not exist.", path, ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            if (Directory.Exists(path))
                throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{path}' is a directory, not a file.", path, ex);
            throw new RequiemException("FileReadError", ErrorKind.PermissionDenied, $"Access to '{path}' is denied: {ex.Message}", path, ex);
        }
        catch (IOException ex)
        {
            if (Directory.Exists(path))
                throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{path}' is a directory, not a file.", path, ex);
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot open '{path}': {ex.Message}", path, ex);
        }
    }

    private static long HashStreamed(Microsoft.Win32.SafeHandles.SafeFileHandle handle, RequiemHasher hasher, string path, CancellationToken cancel)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(SmallFileBuffer);
        try
        {
            long offset = 0;
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var n = RandomAccess.Read(handle, buffer, offset);
                if (n == 0) return offset;
                hasher.Update(buffer.AsSpan(0, n));
                offset += n;
            }
        }
        catch (IOException ex)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Reading '{path}' failed: {ex.Message}", path, ex);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void HashLarge(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long length, RequiemHasher hasher,
        string path, CancellationToken cancel, IEngineOutput? output)
    {
        // Plain reads into one pooled buffer: memory stays flat (no heap growth, no mapped pages counted against the
        // process), and a file truncated underneath us is a read error rather than a SIGBUS as with a memory map.
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(LargeFileBuffer);
        try
        {
            var throttle = new ProgressThrottle(TimeSpan.FromMilliseconds(250), checkEvery: 1);
            long offset = 0;
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                int n;
                try { n = RandomAccess.Read(handle, buffer.AsSpan(0, LargeFileBuffer), offset); }
                catch (IOException ex) { throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Reading '{path}' failed: {ex.Message}", path, ex); }
                if (n == 0) break;
                hasher.UpdateParallel(buffer.AsSpan(0, n));
                offset += n;
                if (output is not null && throttle.ShouldReport())
                    output.Progress(new ProgressInfo("Hashing " + path, $"{offset >> 20} of {length >> 20} MiB", offset, length));
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
