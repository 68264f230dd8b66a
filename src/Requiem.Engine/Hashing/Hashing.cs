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

    /// <summary>Inputs and files at least this large are hashed on several cores.</summary>
    public const long ParallelThreshold = 1L << 20;

    private const int SmallFileBuffer = 64 * 1024;
    private const int LargeFileBuffer = 4 << 20;

    /// <summary>
    /// One task's share of a large file: read into a per-thread buffer and hashed while it is still in the core's
    /// cache. 256 chunks, so every piece after the first few is a whole aligned BLAKE3 subtree.
    /// </summary>
    private const int FilePieceChunks = 256;

    private const int ChunkLen = 1024;

    private static readonly HashPrimitive s_blake3 = new(false, Environment.ProcessorCount);
    private static readonly HashPrimitive s_fallback = new(true, Environment.ProcessorCount);

    [ThreadStatic] private static byte[]? t_pieceBuffer;

    private HashPrimitive(bool fallback, int maxThreads)
    {
        IsFallback = fallback;
        MaxThreads = maxThreads;
    }

    public bool IsFallback { get; }

    /// <summary>How many cores one large input may use (the machine's, unless capped by hash.max_threads or -ThrottleLimit).</summary>
    public int MaxThreads { get; }

    /// <summary>The same primitive, hashing large inputs on at most <paramref name="maxThreads"/> cores.</summary>
    public HashPrimitive WithMaxThreads(int maxThreads)
    {
        if (maxThreads < 1) throw new ArgumentOutOfRangeException(nameof(maxThreads), maxThreads, "At least one thread is needed.");
        return maxThreads == MaxThreads ? this : new HashPrimitive(IsFallback, maxThreads);
    }

    public string Algorithm => IsFallback ? FallbackName : Blake3Name;

    /// <summary>Where the primitive comes from: "managed-simd" (the module's own vectorised BLAKE3) or "fallback-sha256".</summary>
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

    /// <summary>
    /// A hasher primed with the domain prefix; its <see cref="RequiemHasher.UpdateParallel"/> uses up to
    /// <see cref="MaxThreads"/> cores. (The expected length is accepted for callers that know it; every size takes
    /// the same implementation.)
    /// </summary>
    public RequiemHasher CreateHasher(HashDomain domain, long expectedLength = -1)
    {
        if (IsFallback) return new Sha256FallbackHasher(domain);
        return new CompactBlake3Hasher(domain, MaxThreads);
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
        var (hash, length) = HashOpenFile(handle, path, domain, cancel, output);
        Metrics.MetricsRegistry.Add(Metrics.Counter.DigestTotal);
        Metrics.MetricsRegistry.Add(Metrics.Counter.DigestBytesTotal, length);
        return new DigestInfo(Algorithm, hash, path, length, domain, IsFallback);
    }

    /// <summary>
    /// Hashes an open file from its first byte to its end (large files on up to <see cref="MaxThreads"/> cores), without
    /// counting a digest in the metrics: store verification uses it for objects it re-reads.
    /// </summary>
    internal (string Hash, long Length) HashOpenFile(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path, HashDomain domain,
        CancellationToken cancel = default, IEngineOutput? output = null)
    {
        var length = RandomAccess.GetLength(handle);
        using var hasher = CreateHasher(domain, length);
        if (length < ParallelThreshold) length = HashStreamed(handle, hasher, 0, path, cancel);
        else if (hasher is CompactBlake3Hasher blake3) length = HashLargeBlake3(handle, length, blake3, path, cancel, output);
        else HashLarge(handle, length, hasher, path, cancel, output);
        return (hasher.FinalizeHex(), length);
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

    /// <summary>Hashes from <paramref name="offset"/> to the end of the file; returns the end offset.</summary>
    private static long HashStreamed(Microsoft.Win32.SafeHandles.SafeFileHandle handle, RequiemHasher hasher, long offset, string path, CancellationToken cancel)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(SmallFileBuffer);
        try
        {
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

    /// <summary>
    /// A large file through the module's BLAKE3 on up to <see cref="CompactBlake3Hasher.MaxThreads"/> cores. The
    /// hashed stream is the domain prefix followed by the file, so chunk boundaries sit at file offsets 1020, 2044, …
    /// when there is a 4-byte prefix: the head completes the prefix's chunk, then every whole chunk that cannot be the
    /// last is hashed as aligned subtrees, each read by the task that hashes it (memory: one piece per thread), and
    /// the tail is streamed to the end of the file. Returns the number of file bytes hashed.
    /// </summary>
    private static long HashLargeBlake3(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long length, CompactBlake3Hasher hasher,
        string path, CancellationToken cancel, IEngineOutput? output)
    {
        var state = hasher.State;
        long offset = (ChunkLen - state.ChunkBytes()) % ChunkLen;
        if (offset > 0)
        {
            Span<byte> head = stackalloc byte[ChunkLen];
            var n = ReadFully(handle, head[..(int)offset], 0, path);
            state.Update(head[..n]);
            if (n < offset) return n;
        }
        var wholeChunks = (length - offset - 1) / ChunkLen;
        if (wholeChunks > 0)
        {
            var throttle = new ProgressThrottle(TimeSpan.FromMilliseconds(250), checkEvery: 1);
            var fileStart = offset;
            Action<long>? progress = output is null ? null : merged =>
            {
                if (!throttle.ShouldReport()) return;
                var at = fileStart + merged * ChunkLen;
                output.Progress(new ProgressInfo("Hashing " + path, $"{at >> 20} of {length >> 20} MiB", at, length));
            };
            state.AbsorbSubtrees(wholeChunks, FilePieceChunks, hasher.MaxThreads, (first, chunks, target) =>
            {
                var buffer = t_pieceBuffer ??= new byte[FilePieceChunks * ChunkLen];
                var piece = buffer.AsSpan(0, chunks * ChunkLen);
                if (ReadFully(handle, piece, fileStart + first * ChunkLen, path) < piece.Length)
                    throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Reading '{path}' failed: the file became shorter while it was hashed.", path);
                Blake3Lanes.SubtreeChainingValue(piece, target.Counter, target.Output);
            }, cancel, progress);
            offset += wholeChunks * ChunkLen;
        }
        return HashStreamed(handle, hasher, offset, path, cancel);
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the file ends; returns the bytes read.</summary>
    private static int ReadFully(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> buffer, long offset, string path)
    {
        var total = 0;
        try
        {
            while (total < buffer.Length)
            {
                var n = RandomAccess.Read(handle, buffer[total..], offset + total);
                if (n == 0) break;
                total += n;
            }
        }
        catch (IOException ex)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Reading '{path}' failed: {ex.Message}", path, ex);
        }
        return total;
    }
}
