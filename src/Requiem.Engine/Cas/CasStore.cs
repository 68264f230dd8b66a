using System.Buffers;
using System.Text;
using System.Text.Json;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;
using ZstdSharp;

namespace Requiem.Engine.Cas;

/// <summary>How an object's bytes are kept on disk. The object's name is always the digest of the uncompressed bytes.</summary>
public enum CasEncoding
{
    /// <summary>The raw bytes, file <c>objects/ab/&lt;hash&gt;</c>.</summary>
    Identity,
    /// <summary>One standard zstd frame, file <c>objects/ab/&lt;hash&gt;.zst</c> (the zstd CLI decodes it).</summary>
    Zstd,
}

/// <summary>The outcome of storing one object.</summary>
public sealed class CasPutResult
{
    public required string Hash { get; init; }
    /// <summary>Uncompressed size in bytes.</summary>
    public required long Size { get; init; }
    /// <summary>Bytes on disk.</summary>
    public required long StoredSize { get; init; }
    public required CasEncoding Encoding { get; init; }
    /// <summary>True when the object was already in the store (deduplicated; nothing was written).</summary>
    public required bool Existed { get; init; }
}

/// <summary>
/// Content-addressable store, format "v2": objects named by the <c>cas:</c> BLAKE3 digest of their uncompressed
/// bytes under <c>objects/ab/</c>; every write goes to <c>tmp/</c>, is flushed, then renamed into place, so a
/// reader never sees a partial object and concurrent writers of the same object both succeed; every read
/// re-verifies the digest. See docs/CONTRACT.md, "CAS store format v2".
/// </summary>
public sealed partial class CasStore
{
    public const string ConfigFileName = "config";
    public const string ZstdSuffix = ".zst";
    public const string TempSuffix = ".tmp";
    /// <summary>Shortest hash prefix accepted by <see cref="ResolveHash"/> (like git's abbreviations).</summary>
    public const int MinimumPrefixLength = 4;
    /// <summary>Files up to this size are read whole into a pooled buffer (hash first, write only if new).</summary>
    public const int SmallObjectLimit = 4 << 20;
    private const int CopyBuffer = 1 << 20;

    private readonly HashPrimitive _hash;
    private readonly HashSet<string> _knownShards = new(StringComparer.Ordinal);
    private long _written;
    private long _deduplicated;
    private long _bytesWritten;
    // The counters above are flushed (reset) into the store's statistics file; these keep this handle's totals.
    private long _objectsWrittenHere;
    private long _objectsDeduplicatedHere;
    private long _storedBytesHere;
    private long _logicalWritten;
    private long _bytesDeduplicated;
    private long _verified;
    private long _bytesVerified;

    /// <summary>What this store handle has done so far (puts, deduplication, verified reads), for a command's summary.</summary>
    public CasActivity Activity => new()
    {
        ObjectsWritten = Interlocked.Read(ref _objectsWrittenHere),
        BytesWritten = Interlocked.Read(ref _logicalWritten),
        StoredBytesWritten = Interlocked.Read(ref _storedBytesHere),
        ObjectsDeduplicated = Interlocked.Read(ref _objectsDeduplicatedHere),
        BytesDeduplicated = Interlocked.Read(ref _bytesDeduplicated),
        ObjectsVerified = Interlocked.Read(ref _verified),
        BytesVerified = Interlocked.Read(ref _bytesVerified),
    };

    [ThreadStatic] private static ZstdSharp.Compressor? t_compressor;
    [ThreadStatic] private static int t_compressorLevel;

    private CasStore(string root, HashPrimitive hash)
    {
        Root = root;
        _hash = hash;
        ObjectsDirectory = Path.Combine(root, "objects");
        TempDirectory = Path.Combine(root, "tmp");
        RefsDirectory = Path.Combine(root, "refs");
    }

    public string Root { get; }
    public string ObjectsDirectory { get; }
    public string TempDirectory { get; }
    public string RefsDirectory { get; }
    public HashPrimitive HashPrimitive => _hash;

    // [tenants] A tenant's byte quota, checked before a new object becomes visible (Tenants/TenantQuota.cs); null: none.
    public Tenants.TenantQuota? Quota { get; set; }

    /// <summary>
    /// Opens the store at <paramref name="root"/>, creating it when the directory is missing or empty (and
    /// <paramref name="create"/> is set). A non-empty directory without a store config is refused (NotACasStore).
    /// </summary>
    public static CasStore Open(string root, HashPrimitive hash, bool create = true)
    {
        root = Path.GetFullPath(root);
        var config = Path.Combine(root, ConfigFileName);
        if (File.Exists(config))
        {
            var stored = ReadConfig(config, root);
            // Object names are digests of one algorithm: a session hashing with another could neither verify the
            // store's objects nor add objects whose names mean the same thing, so it is refused before any write.
            if (stored != ConfigHashName(hash))
                throw new RequiemException("CasAlgorithmMismatch", ErrorKind.InvalidOperation,
                    hash.IsFallback
                        ? $"The CAS at '{root}' was created for {stored} object names, but this session hashes with the SHA-256 fallback (BLAKE3 is unavailable); it refuses to verify or add objects there. Fix BLAKE3, or give the fallback a store of its own (-Cas)."
                        : $"The CAS at '{root}' was created for {stored} object names, but this session hashes with {hash.Algorithm}; it refuses to verify or add objects there. Use a store created for {hash.Algorithm} (-Cas).",
                    root);
        }
        else
        {
            if (File.Exists(root))
                throw new RequiemException("NotACasStore", ErrorKind.InvalidArgument, $"'{root}' is a file, not a CAS store directory.", root);
            if (Directory.Exists(config))
                throw new RequiemException("NotACasStore", ErrorKind.InvalidArgument, $"'{root}' is not a CAS store ('{ConfigFileName}' is a directory).", root);
            var exists = Directory.Exists(root);
            if (exists && Directory.EnumerateFileSystemEntries(root).Any(e => !IsInitializationEntry(e)))
                throw new RequiemException("NotACasStore", ErrorKind.InvalidArgument,
                    $"'{root}' is not a CAS store (no '{ConfigFileName}' file) and is not empty; refusing to write into it.", root);
            if (!exists && !create)
                throw new RequiemException("CasNotFound", ErrorKind.ObjectNotFound, $"There is no CAS store at '{root}'.", root);
            Initialize(root, hash);
        }
        var store = new CasStore(root, hash);
        try
        {
            Directory.CreateDirectory(store.ObjectsDirectory);
            Directory.CreateDirectory(store.TempDirectory);
            Directory.CreateDirectory(store.RefsDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("CasWriteError", ErrorKind.WriteError, $"Cannot prepare the CAS store at '{root}': {ex.Message}", root, ex);
        }
        return store;
    }

    /// <summary>Entries another process creates while initializing a store at the same moment (config temp file, skeleton folders).</summary>
    private static bool IsInitializationEntry(string entry)
    {
        var name = Path.GetFileName(entry);
        if (Directory.Exists(entry)) return name is "objects" or "tmp" or "refs";
        return name.StartsWith(ConfigFileName + ".", StringComparison.Ordinal) && name.EndsWith(TempSuffix, StringComparison.Ordinal);
    }

    /// <summary>The <c>hash</c> value of a store config: <c>blake3</c>, or <c>sha256</c> for a store created under the fallback.</summary>
    public static string ConfigHashName(HashPrimitive hash) => hash.IsFallback ? "sha256" : "blake3";

    private static void Initialize(string root, HashPrimitive hash)
    {
        string? tmp = null;
        try
        {
            Directory.CreateDirectory(root);
            var json = $"{{\"cas_version\":\"{EngineInfo.CasFormatVersion}\",\"hash\":\"{ConfigHashName(hash)}\",\"domain\":\"cas:\",\"layout\":\"objects/xx/<hash>[.zst]\"}}\n";
            tmp = Path.Combine(root, ConfigFileName + "." + Guid.NewGuid().ToString("n") + TempSuffix);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(Encoding.UTF8.GetBytes(json));
                fs.Flush(flushToDisk: true);
            }
            try { File.Move(tmp, Path.Combine(root, ConfigFileName), overwrite: false); }
            catch (IOException) when (File.Exists(Path.Combine(root, ConfigFileName))) { File.Delete(tmp); }
            tmp = null;
            CasNative.FsyncDirectory(root);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (tmp is not null) TryDelete(tmp); // a failed initialisation (e.g. a full disk) leaves nothing behind
            throw new RequiemException(IsDiskFull(ex) ? "CasDiskFull" : "CasWriteError", IsDiskFull(ex) ? ErrorKind.ResourceUnavailable : ErrorKind.WriteError,
                $"Cannot create a CAS store at '{root}': {ex.Message}", root, ex);
        }
    }

    /// <summary>Checks the config and returns its hash algorithm (<c>blake3</c> when the field is absent).</summary>
    private static string ReadConfig(string config, string root)
    {
        string version;
        string hash;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(config));
            version = doc.RootElement.GetProperty("cas_version").GetString() ?? "";
            hash = doc.RootElement.TryGetProperty("hash", out var h) ? h.GetString() ?? "" : "blake3";
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("NotACasStore", ErrorKind.InvalidData, $"'{config}' is not a valid CAS store config: {ex.Message}", root, ex);
        }
        if (version != EngineInfo.CasFormatVersion)
            throw new RequiemException("UnsupportedCasVersion", ErrorKind.InvalidData,
                $"The store at '{root}' has format '{version}'; this engine reads '{EngineInfo.CasFormatVersion}'.", root);
        return hash;
    }

    /// <summary>Final path of an object in the given encoding (the file may not exist). The hash is validated.</summary>
    public string ObjectPath(string hash, CasEncoding encoding)
    {
        if (!Hex.IsDigest(hash) || !IsLower(hash)) hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var name = encoding == CasEncoding.Zstd ? hash + ZstdSuffix : hash;
        return Path.Combine(ObjectsDirectory, hash[..2], name);
    }

    private static bool IsLower(string hex)
    {
        foreach (var c in hex) if (c is >= 'A' and <= 'F') return false;
        return true;
    }

    /// <summary>The file that holds an object, whichever its encoding, or null when absent.</summary>
    public (string Path, CasEncoding Encoding)? Locate(string hash)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var identity = ObjectPath(hash, CasEncoding.Identity);
        if (File.Exists(identity)) return (identity, CasEncoding.Identity);
        var zstd = ObjectPath(hash, CasEncoding.Zstd);
        if (File.Exists(zstd)) return (zstd, CasEncoding.Zstd);
        return null;
    }

    public bool Contains(string hash) => Locate(hash) is not null;

    // ---------------------------------------------------------------- put

    public CasPutResult PutBytes(ReadOnlySpan<byte> data, CasEncoding encoding = CasEncoding.Identity, int level = 3) =>
        PutSmall(data, encoding, level, stage: false, out _);

    /// <summary>Streams a file into the store (hashing and, for zstd, compressing on the way), never holding a large file in memory.</summary>
    public CasPutResult PutFile(string path, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default) =>
        PutFileCore(path, encoding, level, stage: false, cancel, out _);

    public CasPutResult PutStream(Stream input, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default)
    {
        var tmp = NewTempPath();
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            string hash;
            long size = 0;
            var incompressible = false;
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            using (var hasher = _hash.CreateHasher(HashDomain.Cas))
            {
                Stream sink = fs;
                if (encoding == CasEncoding.Zstd)
                {
                    // Record the content size in the frame header when it is known (statistics read it without decoding).
                    var known = input.CanSeek ? input.Length - input.Position : -1;
                    if (NativeZstdCompressStream.Enabled && NativeZstdCompressStream.Available)
                    {
                        // The system's libzstd (what the zstd CLI uses) is ~1.5x faster than the managed port; same format.
                        sink = new NativeZstdCompressStream(fs, level, known);
                    }
                    else
                    {
                        var cs = new CompressionStream(fs, level, leaveOpen: true);
                        if (known >= 0) cs.SetPledgedSrcSize((ulong)known);
                        sink = cs;
                    }
                }
                try
                {
                    if (encoding == CasEncoding.Zstd)
                    {
                        // Compression (the slow part) runs on its own thread while this one reads and hashes the next chunk.
                        using var pipe = new BackgroundWriter(sink, CopyBuffer);
                        while (true)
                        {
                            cancel.ThrowIfCancellationRequested();
                            var chunk = ArrayPool<byte>.Shared.Rent(CopyBuffer);
                            var n = input.Read(chunk, 0, CopyBuffer);
                            if (n <= 0) { ArrayPool<byte>.Shared.Return(chunk); break; }
                            if (n >= HashPrimitive.ParallelThreshold) hasher.UpdateParallel(chunk.AsSpan(0, n)); else hasher.Update(chunk.AsSpan(0, n));
                            pipe.Post(chunk, n);
                            size += n;
                        }
                        pipe.Complete();
                        if (sink is NativeZstdCompressStream native) native.Finish();
                    }
                    else
                    {
                        int n;
                        while ((n = input.Read(buffer, 0, CopyBuffer)) > 0)
                        {
                            cancel.ThrowIfCancellationRequested();
                            if (n >= HashPrimitive.ParallelThreshold) hasher.UpdateParallel(buffer.AsSpan(0, n)); else hasher.Update(buffer.AsSpan(0, n));
                            sink.Write(buffer, 0, n);
                            size += n;
                        }
                    }
                }
                finally
                {
                    if (!ReferenceEquals(sink, fs)) sink.Dispose();
                }
                // A frame no smaller than its content is replaced by the raw bytes below: never pay a flush for it.
                incompressible = encoding == CasEncoding.Zstd && fs.Length >= size;
                if (!incompressible) fs.Flush(flushToDisk: true);
                hash = hasher.FinalizeHex();
            }
            if (TryExisting(hash, size) is { } existing)
            {
                TryDelete(tmp);
                return existing;
            }
            if (incompressible)
            {
                // Zstd did not help: store the bytes raw (decoded from the frame; the input may not be readable twice).
                tmp = DecodeToRawTemp(tmp);
                encoding = CasEncoding.Identity;
            }
            return Publish(tmp, hash, size, encoding, durable: true);
        }
        catch (ZstdException ex)
        {
            TryDelete(tmp);
            throw new RequiemException("CasWriteError", ErrorKind.WriteError, $"zstd compression failed: {ex.Message}", Root, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw WriteError(ex);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Decodes a zstd temp file into a new, flushed raw temp file and deletes the first; returns the new path.</summary>
    private string DecodeToRawTemp(string zstdTemp)
    {
        var raw = NewTempPath();
        try
        {
            using (var source = new FileStream(zstdTemp, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
            using (var decoder = new DecompressionStream(source))
            using (var sink = new FileStream(raw, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                decoder.CopyTo(sink, CopyBuffer);
                sink.Flush(flushToDisk: true);
            }
        }
        catch
        {
            TryDelete(raw);
            throw;
        }
        TryDelete(zstdTemp);
        return raw;
    }

    /// <summary>
    /// Stores a manifest. Every object it references is freshened first (and must exist): a garbage collection running
    /// now treats young objects as roots, so nothing the new manifest names can be swept before its ref exists.
    /// </summary>
    public CasPutResult PutManifest(CasManifest manifest)
    {
        foreach (var reference in manifest.References)
        {
            var located = Locate(reference) ?? throw NotFound(reference);
            Freshen(located.Path);
        }
        return PutBytes(manifest.ToJsonBytes());
    }

    /// <summary>
    /// Starts a write batch: small objects are written to <c>tmp/</c> without a flush each; <see cref="CasWriteBatch.Commit"/>
    /// flushes them all with one syncfs, renames them into place, and syncs again. Same guarantees, far fewer flushes.
    /// </summary>
    public CasWriteBatch BeginBatch() => new(this, CasWriteBatch.DefaultParallelism);

    /// <summary>A batch whose puts run on <paramref name="parallelism"/> worker threads (1: on the caller's thread).</summary>
    public CasWriteBatch BeginBatch(int parallelism) => new(this, parallelism);

    /// <summary>
    /// Puts a file. With <paramref name="stage"/>, a small new object is written to tmp/ without a flush and its temp
    /// path returned in <paramref name="staged"/> (the caller flushes and publishes it); large files are always
    /// streamed, flushed and published.
    /// </summary>
    internal CasPutResult PutFileCore(string path, CasEncoding encoding, int level, bool stage, CancellationToken cancel, out StagedTemp? staged,
        bool mayHoldHandle = true)
    {
        staged = null;
        using var source = OpenSource(path);
        long length;
        try { length = RandomAccess.GetLength(source); }
        catch (IOException ex) { throw ReadError(ex, path); }
        if (length <= SmallObjectLimit)
        {
            var buffer = ArrayPool<byte>.Shared.Rent((int)length + 1);
            try
            {
                var total = 0;
                try
                {
                    while (total < buffer.Length)
                    {
                        var n = RandomAccess.Read(source, buffer.AsSpan(total), total);
                        if (n == 0) break;
                        total += n;
                    }
                }
                catch (IOException ex) { throw ReadError(ex, path); }
                catch (UnauthorizedAccessException ex) { throw ReadError(ex, path); }
                if (total < buffer.Length) return PutSmall(buffer.AsSpan(0, total), encoding, level, stage, out staged, mayHoldHandle);
                // The file grew while we read it: fall through to streaming.
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        using var input = new FileStream(source, FileAccess.Read, 1);
        try
        {
            return PutStream(input, encoding, level, cancel);
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasWriteError" && ex.InnerException is IOException io && !File.Exists(path))
        {
            throw ReadError(io, path);
        }
    }

    internal void CountDeduplicated(long size)
    {
        Interlocked.Increment(ref _deduplicated);
        Interlocked.Increment(ref _objectsDeduplicatedHere);
        Interlocked.Add(ref _bytesDeduplicated, size);
        Metrics.MetricsRegistry.Add(Metrics.Counter.CasPutTotal);
        Metrics.MetricsRegistry.Add(Metrics.Counter.CasPutDeduplicated);
    }

    private void CountWritten(long size, long stored)
    {
        Interlocked.Increment(ref _written);
        Interlocked.Increment(ref _objectsWrittenHere);
        Interlocked.Add(ref _storedBytesHere, stored);
        Interlocked.Add(ref _logicalWritten, size);
        Interlocked.Add(ref _bytesWritten, stored);
        Metrics.MetricsRegistry.Add(Metrics.Counter.CasPutTotal);
        Metrics.MetricsRegistry.Add(Metrics.Counter.CasBytesWritten, stored);
    }

    /// <summary>Writes pooled chunks to a stream on a background thread (bounded: at most four chunks in flight).</summary>
    private sealed class BackgroundWriter : IDisposable
    {
        private readonly System.Collections.Concurrent.BlockingCollection<(byte[] Buffer, int Count)> _queue = new(4);
        private readonly Task _worker;
        private volatile Exception? _error;

        public BackgroundWriter(Stream sink, int _)
        {
            _worker = Task.Factory.StartNew(() =>
            {
                foreach (var (buffer, count) in _queue.GetConsumingEnumerable())
                {
                    try
                    {
                        if (_error is null) sink.Write(buffer, 0, count);
                    }
                    catch (Exception ex)
                    {
                        _error = ex;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        public void Post(byte[] buffer, int count)
        {
            if (_error is { } e) { ArrayPool<byte>.Shared.Return(buffer); Rethrow(e); }
            _queue.Add((buffer, count));
        }

        /// <summary>Waits until everything is written; rethrows the writer's failure.</summary>
        public void Complete()
        {
            _queue.CompleteAdding();
            _worker.Wait();
            if (_error is { } e) Rethrow(e);
        }

        private static void Rethrow(Exception e) => System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();

        public void Dispose()
        {
            if (!_queue.IsAddingCompleted) _queue.CompleteAdding();
            try { _worker.Wait(); } catch (AggregateException) { }
            _queue.Dispose();
        }
    }

    /// <summary>A complete, not yet flushed object waiting in tmp/: a named file, or an unnamed (O_TMPFILE) one.</summary>
    internal sealed class StagedTemp : IDisposable
    {
        public StagedTemp(string path) => Path = path;
        public StagedTemp(Microsoft.Win32.SafeHandles.SafeFileHandle handle) => Handle = handle;
        public string? Path { get; private set; }
        public Microsoft.Win32.SafeHandles.SafeFileHandle? Handle { get; private set; }

        public void Flush()
        {
            if (Handle is not null) { RandomAccess.FlushToDisk(Handle); return; }
            using var fs = new FileStream(Path!, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            fs.Flush(flushToDisk: true);
        }

        /// <summary>Publishes (flush first!) and gives up ownership.</summary>
        public CasPutResult Publish(CasStore store, CasPutResult r)
        {
            if (Handle is { } h) { Handle = null; return store.PublishAnonymous(h, r.Hash, r.Size, r.Encoding, durable: false, stored: r.StoredSize); }
            var p = Path!;
            var result = store.Publish(p, r.Hash, r.Size, r.Encoding, durable: false, stored: r.StoredSize);
            Path = null;
            return result;
        }

        /// <summary>Discards an unpublished object: an unnamed file just vanishes; a named one is deleted.</summary>
        public void Dispose()
        {
            Handle?.Dispose();
            Handle = null;
            if (Path is not null) TryDelete(Path);
            Path = null;
        }
    }

    private static Microsoft.Win32.SafeHandles.SafeFileHandle OpenSource(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (UnauthorizedAccessException) when (Directory.Exists(path))
        {
            throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{path}' is a directory, not a file.", path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return HashPrimitive.OpenForRead(path); // the usual error ids (FileNotFound, FileReadError, PathIsDirectory)
        }
    }

    /// <summary>The result for an object that is already stored (freshened so that a concurrent GC keeps it), or null.</summary>
    private CasPutResult? TryExisting(string hash, long size)
    {
        if (IsKnownCorrupt(hash)) return null; // write the good bytes over the damaged object (see Publish)
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var identity = ObjectPath(hash, CasEncoding.Identity);
            var zstd = identity + ZstdSuffix;
            foreach (var (path, enc) in new[] { (identity, CasEncoding.Identity), (zstd, CasEncoding.Zstd) })
            {
                try
                {
                    var info = new FileInfo(path);
                    if (!info.Exists) continue;
                    // A truncated identity object is not a copy of these bytes: let the new write replace it.
                    if (enc == CasEncoding.Identity && info.Length != size) return null;
                    if (Freshen(path))
                    {
                        CountDeduplicated(size);
                        return new CasPutResult { Hash = hash, Size = size, StoredSize = info.Length, Encoding = enc, Existed = true };
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            }
        }
        return null;
    }

    /// <summary>Sets an object's mtime to now (like git's freshen): GC keeps anything younger than its grace period.</summary>
    private static bool Freshen(string path)
    {
        try
        {
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow);
            return true;
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
        catch (UnauthorizedAccessException) { return File.Exists(path); } // read-only store: still present
        catch (IOException) { return File.Exists(path); }
    }

    /// <summary>
    /// Puts bytes. With <paramref name="stage"/>, a new object is left complete and unflushed in tmp/ (returned in
    /// <paramref name="staged"/>): as an open unnamed (O_TMPFILE) file when <paramref name="mayHoldHandle"/>, else as a
    /// closed named temp file, so that a batch of any size holds a bounded number of descriptors.
    /// </summary>
    internal CasPutResult PutSmall(ReadOnlySpan<byte> data, CasEncoding encoding, int level, bool stage, out StagedTemp? staged, bool mayHoldHandle = true)
    {
        staged = null;
        var hash = _hash.HashBytes(data, HashDomain.Cas);
        if (TryExisting(hash, data.Length) is { } existing) return existing;

        string? tmp = null;
        Microsoft.Win32.SafeHandles.SafeFileHandle? anonymous = null;
        byte[]? compressed = null;
        try
        {
            ReadOnlySpan<byte> payload = data;
            if (encoding == CasEncoding.Zstd)
            {
                compressed = ArrayPool<byte>.Shared.Rent(Compressor.GetCompressBound(data.Length));
                var c = GetCompressor(level);
                var n = c.Wrap(data, compressed);
                // Zstd only when it helps: an object that does not shrink is stored raw (and the result says so).
                if (n < data.Length) payload = compressed.AsSpan(0, n);
                else encoding = CasEncoding.Identity;
            }
            var result = new CasPutResult { Hash = hash, Size = data.Length, StoredSize = payload.Length, Encoding = encoding, Existed = false };
            // Linux: an unnamed temp file in tmp/ (O_TMPFILE) that gets its final name in one linkat; it cannot be left
            // behind by a crash. Elsewhere (or where the file system lacks O_TMPFILE): a named temp file and a rename.
            anonymous = !stage || mayHoldHandle ? CasNative.OpenAnonymous(TempDirectory) : null;
            if (anonymous is not null)
            {
                RandomAccess.Write(anonymous, payload, 0);
                if (stage)
                {
                    staged = new StagedTemp(anonymous);
                    anonymous = null;
                    return result;
                }
                RandomAccess.FlushToDisk(anonymous);
                return PublishAnonymous(anonymous, hash, data.Length, encoding, durable: true, stored: payload.Length);
            }
            tmp = NewTempPath();
            using (var handle = File.OpenHandle(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                RandomAccess.Write(handle, payload, 0);
                if (!stage) RandomAccess.FlushToDisk(handle);
            }
            if (stage)
            {
                staged = new StagedTemp(tmp);
                tmp = null;
                return result;
            }
            var published = Publish(tmp, hash, data.Length, encoding, durable: true, stored: payload.Length);
            tmp = null;
            return published;
        }
        catch (ZstdException ex)
        {
            throw new RequiemException("CasWriteError", ErrorKind.WriteError, $"zstd compression failed: {ex.Message}", Root, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw WriteError(ex);
        }
        finally
        {
            anonymous?.Dispose();
            if (tmp is not null) TryDelete(tmp);
            if (compressed is not null) ArrayPool<byte>.Shared.Return(compressed);
        }
    }

    /// <summary>Like <see cref="Publish"/> for an unnamed (O_TMPFILE) temp file: linkat never replaces an existing object.</summary>
    internal CasPutResult PublishAnonymous(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string hash, long size, CasEncoding encoding, bool durable, long stored)
    {
        try
        {
            Quota?.Reserve(stored); // [tenants] over the quota: throws, and the unnamed file vanishes with its handle
            var final = ObjectPath(hash, encoding);
            var shard = Path.GetDirectoryName(final)!;
            for (var attempt = 0; ; attempt++)
            {
                EnsureShard(shard, force: attempt > 0);
                var linked = CasNative.LinkAnonymous(handle, final);
                if (linked == CasNative.RenameResult.DirectoryMissing && attempt < 3) continue;
                if (linked == CasNative.RenameResult.Renamed)
                {
                    if (durable) CasNative.FsyncDirectory(shard);
                    Healed(hash, encoding);
                    CountWritten(size, stored);
                    return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
                }
                if (linked != CasNative.RenameResult.Exists) throw new DirectoryNotFoundException($"The shard directory '{shard}' cannot be created.");
                var existing = new FileInfo(final);
                if (existing.Exists && (IsKnownCorrupt(hash) || (encoding == CasEncoding.Identity && existing.Length != size)))
                {
                    // A damaged object (recorded as corrupt, or of the wrong length): give ours a temp name, then replace it atomically.
                    var tmp = NewTempPath();
                    CasNative.LinkAnonymous(handle, tmp);
                    File.Move(tmp, final, overwrite: true);
                    if (durable) CasNative.FsyncDirectory(shard);
                    Healed(hash, encoding);
                    CountWritten(size, stored);
                    return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
                }
                if (!Freshen(final) && attempt < 3) continue; // removed by GC this instant: link ours
                CountDeduplicated(size);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = existing.Exists ? existing.Length : stored, Encoding = encoding, Existed = true };
            }
        }
        finally
        {
            handle.Dispose();
        }
    }

    private static Compressor GetCompressor(int level)
    {
        if (t_compressor is null || t_compressorLevel != level)
        {
            t_compressor?.Dispose();
            t_compressor = new Compressor(level);
            t_compressorLevel = level;
        }
        return t_compressor;
    }

    /// <summary>
    /// Renames a complete, flushed temp file to its final name without ever replacing an existing object
    /// (link-then-unlink on Unix). If the name already exists, another writer stored the same bytes: both succeed.
    /// </summary>
    internal CasPutResult Publish(string tmp, string hash, long size, CasEncoding encoding, bool durable, long stored = -1)
    {
        var final = ObjectPath(hash, encoding);
        var shard = Path.GetDirectoryName(final)!;
        if (stored < 0) stored = new FileInfo(tmp).Length;
        Quota?.Reserve(stored); // [tenants] over the quota: throws before the rename; callers delete the temp file
        for (var attempt = 0; ; attempt++)
        {
            EnsureShard(shard, force: attempt > 0);
            try
            {
                var renamed = CasNative.RenameNoReplace(tmp, final);
                if (renamed == CasNative.RenameResult.DirectoryMissing && attempt < 3) continue;
                if (renamed == CasNative.RenameResult.Exists) throw new IOException("exists", 17);
                if (renamed != CasNative.RenameResult.Renamed) File.Move(tmp, final, overwrite: false);
                if (durable) CasNative.FsyncDirectory(shard);
                Healed(hash, encoding);
                CountWritten(size, stored);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
            }
            catch (DirectoryNotFoundException) when (attempt < 3 && File.Exists(tmp))
            {
                // The shard directory vanished (removed by hand): recreate it and retry.
            }
            catch (IOException) when (File.Exists(final))
            {
                var existing = new FileInfo(final);
                if (existing.Exists && (IsKnownCorrupt(hash) || (encoding == CasEncoding.Identity && existing.Length != size)))
                {
                    // A damaged object (recorded as corrupt, or of the wrong length): replace it atomically with the good bytes.
                    File.Move(tmp, final, overwrite: true);
                    if (durable) CasNative.FsyncDirectory(shard);
                    Healed(hash, encoding);
                    CountWritten(size, stored);
                    return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
                }
                // Another writer published the same object first: same name, same bytes. Both succeed.
                if (!Freshen(final) && attempt < 3) continue; // ... unless GC removed it this instant: publish ours.
                TryDelete(tmp);
                CountDeduplicated(size);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = existing.Exists ? existing.Length : stored, Encoding = encoding, Existed = true };
            }
        }
    }

    private void EnsureShard(string shard, bool force)
    {
        lock (_knownShards)
        {
            if (!force && _knownShards.Contains(shard)) return;
        }
        Directory.CreateDirectory(shard);
        lock (_knownShards) _knownShards.Add(shard);
    }

    // ---------------------------------------------------------------- read

    /// <summary>
    /// Streams an object's uncompressed bytes to <paramref name="destination"/> while re-hashing them; throws
    /// <c>CasObjectCorrupt</c> (after the bytes were written: callers write to a temp file and discard it) when the
    /// digest does not match, and <c>CasObjectNotFound</c> when absent.
    /// </summary>
    public long CopyTo(string hash, Stream destination, CancellationToken cancel = default)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var located = Locate(hash) ?? throw NotFound(hash);
        try
        {
            var n = CopyFile(located.Path, located.Encoding, hash, destination, cancel);
            Metrics.MetricsRegistry.Add(Metrics.Counter.CasReadTotal);
            return n;
        }
        catch (FileNotFoundException)
        {
            throw NotFound(hash); // removed between Locate and open
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasObjectCorrupt")
        {
            Metrics.MetricsRegistry.Add(Metrics.Counter.CasCorruptDetected);
            RecordCorrupt(hash);
            throw;
        }
    }

    /// <summary>Decodes and verifies one object file; throws CasObjectCorrupt, or FileNotFoundException when it vanished.</summary>
    internal long CopyFile(string path, CasEncoding encoding, string hash, Stream destination, CancellationToken cancel, Action<long>? progress = null)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            FileStream file;
            try
            {
                file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);
            }
            catch (DirectoryNotFoundException ex)
            {
                throw new FileNotFoundException(ex.Message, path, ex);
            }
            catch (UnauthorizedAccessException ex)
            {
                throw new RequiemException("CasReadError", ErrorKind.PermissionDenied, $"CAS object {hash} cannot be read: {ex.Message}", hash, ex);
            }
            using (file)
            {
                using Stream source = encoding == CasEncoding.Zstd ? new DecompressionStream(file, leaveOpen: true) : file;
                using var hasher = _hash.CreateHasher(HashDomain.Cas);
                long total = 0;
                while (true)
                {
                    cancel.ThrowIfCancellationRequested();
                    int n;
                    try
                    {
                        n = source.Read(buffer, 0, CopyBuffer);
                    }
                    catch (Exception ex) when (ex is ZstdException or InvalidDataException or EndOfStreamException or InvalidOperationException)
                    {
                        throw Corrupt(hash, "zstd frame does not decode: " + ex.Message, ex);
                    }
                    catch (IOException ex)
                    {
                        throw Corrupt(hash, "read failed: " + ex.Message, ex);
                    }
                    if (n <= 0) break;
                    if (n >= HashPrimitive.ParallelThreshold) hasher.UpdateParallel(buffer.AsSpan(0, n)); else hasher.Update(buffer.AsSpan(0, n));
                    destination.Write(buffer, 0, n); // a destination failure (disk full) propagates as itself, not as corruption
                    total += n;
                    progress?.Invoke(n);
                }
                var actual = hasher.FinalizeHex();
                if (actual != hash) throw Corrupt(hash, $"content hashes to {actual}");
                Interlocked.Increment(ref _verified);
                Interlocked.Add(ref _bytesVerified, total);
                return total;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>An object's verified bytes (for small objects: manifests, results, text outputs).</summary>
    public byte[] ReadAllBytes(string hash, CancellationToken cancel = default)
    {
        using var ms = new MemoryStream();
        CopyTo(hash, ms, cancel);
        return ms.ToArray();
    }

    /// <summary>Reads and parses a manifest object; throws <c>NotAManifest</c> when the object is something else.</summary>
    public CasManifest ReadManifest(string hash)
    {
        var manifest = CasManifest.Parse(ReadAllBytes(hash), out var status, out var problem);
        if (manifest is not null) return manifest;
        throw status == CasManifestStatus.Invalid
            ? new RequiemException("InvalidManifest", ErrorKind.InvalidData, $"CAS object {hash} is not a valid manifest: {problem}.", hash)
            : new RequiemException("NotAManifest", ErrorKind.InvalidData, $"CAS object {hash} is not a manifest.", hash);
    }

    /// <summary>All object hashes in the store (unordered, streaming; a hash stored in both encodings appears twice).</summary>
    public IEnumerable<string> EnumerateHashes()
    {
        foreach (var (_, hash, _) in EnumerateObjectFiles(sorted: false)) yield return hash;
    }

    /// <summary>Every object file as (path, hash, encoding); files whose names are not objects are skipped.</summary>
    public IEnumerable<(string Path, string Hash, CasEncoding Encoding)> EnumerateObjectFiles(bool sorted = false)
    {
        if (!Directory.Exists(ObjectsDirectory)) yield break;
        IEnumerable<string> shards = Directory.EnumerateDirectories(ObjectsDirectory);
        if (sorted) shards = shards.OrderBy(s => s, StringComparer.Ordinal);
        foreach (var shard in shards)
        {
            IEnumerable<string> files;
            try { files = Directory.GetFiles(shard); }
            catch (DirectoryNotFoundException) { continue; }
            if (sorted) Array.Sort((string[])files, StringComparer.Ordinal);
            var shardName = Path.GetFileName(shard);
            foreach (var file in files)
            {
                if (ParseObjectName(Path.GetFileName(file)) is not { } parsed) continue;
                if (!parsed.Hash.StartsWith(shardName, StringComparison.Ordinal)) continue;
                yield return (file, parsed.Hash, parsed.Encoding);
            }
        }
    }

    /// <summary>Files under objects/ that are not objects (wrong name, wrong shard): reported by verification.</summary>
    public IEnumerable<string> EnumerateForeignFiles()
    {
        if (!Directory.Exists(ObjectsDirectory)) yield break;
        foreach (var entry in Directory.EnumerateFileSystemEntries(ObjectsDirectory))
        {
            if (File.Exists(entry)) { yield return entry; continue; }
            var shardName = Path.GetFileName(entry);
            var goodShard = shardName.Length == 2 && Hex.IsHex(shardName) && IsLower(shardName);
            foreach (var file in Directory.EnumerateFileSystemEntries(entry))
            {
                var parsed = ParseObjectName(Path.GetFileName(file));
                if (!goodShard || parsed is null || !parsed.Value.Hash.StartsWith(shardName, StringComparison.Ordinal) || !File.Exists(file))
                    yield return file;
            }
        }
    }

    private static (string Hash, CasEncoding Encoding)? ParseObjectName(string name)
    {
        var encoding = CasEncoding.Identity;
        if (name.EndsWith(ZstdSuffix, StringComparison.Ordinal))
        {
            name = name[..^ZstdSuffix.Length];
            encoding = CasEncoding.Zstd;
        }
        if (!Hex.IsDigest(name) || !IsLower(name)) return null;
        return (name, encoding);
    }

    /// <summary>
    /// Turns a full hash or a unique prefix (at least <see cref="MinimumPrefixLength"/> hex characters) into the
    /// object's full hash. Throws <c>InvalidDigest</c> (not hex, too short or long), <c>CasObjectNotFound</c>, or
    /// <c>AmbiguousHashPrefix</c> (listing the candidates).
    /// </summary>
    public string ResolveHash(string? hashOrPrefix)
    {
        var s = hashOrPrefix?.Trim() ?? "";
        if (s.Length == Hex.DigestLength) return Hex.NormalizeDigest(s, "CAS object hash");
        if (s.Length < MinimumPrefixLength || s.Length > Hex.DigestLength || !Hex.IsHex(s))
            throw new RequiemException("InvalidDigest", ErrorKind.InvalidArgument,
                $"'{hashOrPrefix}' is not a valid CAS object hash or prefix: expected {MinimumPrefixLength} to {Hex.DigestLength} hexadecimal characters.", hashOrPrefix);
        s = s.ToLowerInvariant();
        var matches = FindByPrefix(s, 11);
        return matches.Count switch
        {
            0 => throw NotFound(s),
            1 => matches[0],
            _ => throw new RequiemException("AmbiguousHashPrefix", ErrorKind.InvalidArgument,
                $"The prefix '{s}' matches more than one object: {string.Join(", ", matches.Take(10))}{(matches.Count > 10 ? ", ..." : "")}. Give more characters.", hashOrPrefix),
        };
    }

    /// <summary>Distinct hashes that start with a lowercase hex prefix (at most <paramref name="limit"/>), sorted.</summary>
    public List<string> FindByPrefix(string prefix, int limit = int.MaxValue)
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        prefix = prefix.ToLowerInvariant();
        if (!Hex.IsHex(prefix)) return new List<string>();
        IEnumerable<string> shards;
        if (prefix.Length >= 2)
        {
            var shard = Path.Combine(ObjectsDirectory, prefix[..2]);
            shards = Directory.Exists(shard) ? new[] { shard } : Array.Empty<string>();
        }
        else
        {
            shards = Directory.Exists(ObjectsDirectory)
                ? Directory.EnumerateDirectories(ObjectsDirectory, prefix + "*").OrderBy(x => x, StringComparer.Ordinal)
                : Array.Empty<string>();
        }
        foreach (var shard in shards)
        {
            foreach (var file in Directory.EnumerateFiles(shard, prefix.Length >= 2 ? prefix + "*" : "*"))
            {
                if (ParseObjectName(Path.GetFileName(file)) is { } p && p.Hash.StartsWith(prefix, StringComparison.Ordinal))
                {
                    found.Add(p.Hash);
                    if (found.Count >= limit) return found.ToList();
                }
            }
        }
        return found.ToList();
    }

    /// <summary>Information about one object from its file (not verified; see <see cref="GetInfo(string, bool, CancellationToken)"/>).</summary>
    public CasObjectInfo Describe(string path, string hash, CasEncoding encoding)
    {
        var info = new FileInfo(path);
        var size = encoding == CasEncoding.Identity ? info.Length : ReadZstdContentSize(path);
        return new CasObjectInfo
        {
            Hash = hash, Algorithm = _hash.Algorithm, Size = size, StoredSize = info.Length, Encoding = encoding, ObjectPath = path,
            LastWriteTimeUtc = info.LastWriteTimeUtc, Verified = false,
        };
    }

    /// <summary>Information about one object; with <paramref name="verify"/> the bytes are decoded and re-hashed (CasObjectCorrupt on mismatch).</summary>
    public CasObjectInfo GetInfo(string hash, bool verify = true, CancellationToken cancel = default)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var located = Locate(hash) ?? throw NotFound(hash);
        try
        {
            var info = new FileInfo(located.Path);
            long size;
            if (verify) size = CopyFile(located.Path, located.Encoding, hash, Stream.Null, cancel);
            else size = located.Encoding == CasEncoding.Identity ? info.Length : ReadZstdContentSize(located.Path);
            return new CasObjectInfo
            {
                Hash = hash, Algorithm = _hash.Algorithm, Size = size, StoredSize = info.Length, Encoding = located.Encoding, ObjectPath = located.Path,
                LastWriteTimeUtc = info.LastWriteTimeUtc, Verified = verify,
            };
        }
        catch (FileNotFoundException)
        {
            throw NotFound(hash);
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasObjectCorrupt")
        {
            RecordCorrupt(hash);
            throw;
        }
    }

    /// <summary>The uncompressed size recorded in a zstd frame header, or -1 when the frame does not record it.</summary>
    public static long ReadZstdContentSize(string path)
    {
        Span<byte> header = stackalloc byte[18];
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            var n = RandomAccess.Read(handle, header, 0);
            return ParseZstdContentSize(header[..n]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>Frame_Content_Size from a zstd frame header (RFC 8878 section 3.1.1.1), or -1 when absent or not a zstd frame.</summary>
    internal static long ParseZstdContentSize(ReadOnlySpan<byte> h)
    {
        if (h.Length < 5 || h[0] != 0x28 || h[1] != 0xB5 || h[2] != 0x2F || h[3] != 0xFD) return -1;
        var descriptor = h[4];
        var fcsFlag = descriptor >> 6;
        var singleSegment = (descriptor & 0x20) != 0;
        var dictIdSize = (descriptor & 0x03) switch { 0 => 0, 1 => 1, 2 => 2, _ => 4 };
        var fcsSize = fcsFlag switch { 0 => singleSegment ? 1 : 0, 1 => 2, 2 => 4, _ => 8 };
        if (fcsSize == 0) return -1;
        var offset = 5 + (singleSegment ? 0 : 1) + dictIdSize;
        if (h.Length < offset + fcsSize) return -1;
        ulong value = 0;
        for (var i = fcsSize - 1; i >= 0; i--) value = (value << 8) | h[offset + i];
        if (fcsSize == 2) value += 256;
        return value > long.MaxValue ? -1 : (long)value;
    }

    // ---------------------------------------------------------------- refs: named roots for garbage collection

    /// <summary>Points the ref <paramref name="name"/> (e.g. <c>results/abc</c>) at an object, atomically and durably.</summary>
    public void SetRef(string name, string hash)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var path = RefPath(name);
        var located = Locate(hash) ?? throw NotFound(hash);
        Freshen(located.Path); // a GC running now must not remove what a new ref is about to name
        var tmp = NewTempPath();
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(Encoding.ASCII.GetBytes(hash + "\n"));
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
            CasNative.FsyncDirectory(Path.GetDirectoryName(path)!);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            if (Directory.Exists(path))
                throw new RequiemException("InvalidRefName", ErrorKind.InvalidArgument, $"The ref '{name}' is a folder of other refs.", name, ex);
            throw WriteError(ex);
        }
    }

    public string? GetRef(string name)
    {
        var path = RefPath(name);
        if (!File.Exists(path)) return null;
        string text;
        try { text = File.ReadAllText(path).Trim(); }
        catch (FileNotFoundException) { return null; }
        return Hex.IsDigest(text) ? text.ToLowerInvariant() : null;
    }

    public bool RemoveRef(string name)
    {
        var path = RefPath(name);
        if (!File.Exists(path)) return false;
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw WriteError(ex);
        }
        // Remove emptied ref folders (but never refs/ itself).
        var dir = Path.GetDirectoryName(path);
        while (dir is not null && dir.Length > RefsDirectory.Length && dir.StartsWith(RefsDirectory, StringComparison.Ordinal))
        {
            try { Directory.Delete(dir); } catch (IOException) { break; } catch (UnauthorizedAccessException) { break; }
            dir = Path.GetDirectoryName(dir);
        }
        return true;
    }

    /// <summary>Every ref as (name, hash); names use '/' separators. Unreadable or malformed ref files are skipped.</summary>
    public IEnumerable<(string Name, string Hash)> EnumerateRefs()
    {
        foreach (var (name, hash) in EnumerateRefFiles())
        {
            if (hash is not null) yield return (name, hash);
        }
    }

    /// <summary>Every ref file as (name, hash-or-null): null when the file does not hold a digest.</summary>
    public IEnumerable<(string Name, string? Hash)> EnumerateRefFiles()
    {
        if (!Directory.Exists(RefsDirectory)) yield break;
        foreach (var file in Directory.EnumerateFiles(RefsDirectory, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
        {
            var name = Path.GetRelativePath(RefsDirectory, file).Replace('\\', '/');
            string? text;
            try { text = File.ReadAllText(file).Trim(); }
            catch (FileNotFoundException) { continue; } // removed meanwhile
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { text = null; }
            yield return (name, text is not null && Hex.IsDigest(text) ? text.ToLowerInvariant() : null);
        }
    }

    /// <summary>Validates a ref name: segments of [A-Za-z0-9._-], separated by '/', no '..', no leading dot.</summary>
    public string RefPath(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 200)
            throw InvalidRef(name);
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0 || segment[0] == '.') throw InvalidRef(name);
            foreach (var c in segment)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) throw InvalidRef(name);
            }
        }
        return Path.Combine(RefsDirectory, name.Replace('/', Path.DirectorySeparatorChar));
    }

    private static RequiemException InvalidRef(string name) =>
        new("InvalidRefName", ErrorKind.InvalidArgument,
            $"'{name}' is not a valid ref name: use segments of letters, digits, '.', '_' or '-', separated by '/' (no '..').", name);

    // ---------------------------------------------------------------- objects known to be corrupt

    /// <summary>
    /// Where a detected corruption is recorded (<c>corrupt/&lt;hash&gt;</c>): a put of the same bytes then rewrites the object
    /// instead of deduplicating against the damaged file. Costs the dedup path one stat; no object is ever re-read there.
    /// </summary>
    public string CorruptDirectory => Path.Combine(Root, "corrupt");

    private string CorruptMarker(string hash) => Path.Combine(CorruptDirectory, hash);

    /// <summary>Records that an object failed verification (best effort: a read-only store just cannot remember it).</summary>
    internal void RecordCorrupt(string hash)
    {
        try
        {
            Directory.CreateDirectory(CorruptDirectory);
            using var _ = new FileStream(CorruptMarker(hash), FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    internal bool IsKnownCorrupt(string hash) => File.Exists(CorruptMarker(hash));

    internal void ClearCorrupt(string hash)
    {
        if (IsKnownCorrupt(hash)) TryDelete(CorruptMarker(hash));
    }

    /// <summary>
    /// After good bytes were published for an object recorded as corrupt: removes the damaged file of the other encoding
    /// (readers prefer identity, so it could keep shadowing the good one) and forgets the record.
    /// </summary>
    private void Healed(string hash, CasEncoding published)
    {
        if (!IsKnownCorrupt(hash)) return;
        var other = ObjectPath(hash, published == CasEncoding.Identity ? CasEncoding.Zstd : CasEncoding.Identity);
        TryDelete(other);
        ClearCorrupt(hash);
    }

    // ---------------------------------------------------------------- temp files, counters, errors

    public string NewTempPath() => Path.Combine(TempDirectory, Guid.NewGuid().ToString("n") + TempSuffix);

    /// <summary>Files under <c>tmp/</c>: interrupted writes (or writes in progress right now).</summary>
    public IReadOnlyList<CasTempFile> EnumerateTempFiles(DateTime? now = null)
    {
        var list = new List<CasTempFile>();
        if (!Directory.Exists(TempDirectory)) return list;
        var t = now ?? DateTime.UtcNow;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            var info = new FileInfo(file);
            if (!info.Exists) continue;
            list.Add(new CasTempFile { Path = file, Size = info.Length, LastWriteTimeUtc = info.LastWriteTimeUtc, Age = t - info.LastWriteTimeUtc });
        }
        return list;
    }

    internal static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    internal static bool IsDiskFull(Exception ex) =>
        ex is IOException io && ((io.HResult & 0xFFFF) is 28 or 112 or 39 || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase));

    internal RequiemException WriteError(Exception ex)
    {
        var full = IsDiskFull(ex);
        return new RequiemException(full ? "CasDiskFull" : "CasWriteError", full ? ErrorKind.ResourceUnavailable : ErrorKind.WriteError,
            full ? $"The disk holding the CAS at '{Root}' is full; nothing was stored: {ex.Message}" : $"Writing to the CAS at '{Root}' failed: {ex.Message}",
            Root, ex);
    }

    private static RequiemException ReadError(Exception ex, string? path) =>
        new("FileReadError", ex is UnauthorizedAccessException ? ErrorKind.PermissionDenied : ErrorKind.ReadError,
            $"Cannot read '{path}': {ex.Message}", path, ex);

    public RequiemException NotFound(string hash) =>
        new("CasObjectNotFound", ErrorKind.ObjectNotFound, $"CAS object {hash} is not in the store at '{Root}'.", hash);

    public static RequiemException Corrupt(string hash, string why, Exception? inner = null) =>
        new("CasObjectCorrupt", ErrorKind.InvalidData,
            $"CAS object {hash} is corrupt: {why}. To repair it, add the original bytes again (Add-RequiemCasObject): a put replaces an object found corrupt.",
            hash, inner);
}
