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
    public const string ConfigFileName = CasLayout.ConfigFileName;
    public const string ZstdSuffix = CasLayout.ZstdSuffix;
    public const string TempSuffix = CasLayout.TempSuffix;
    /// <summary>Shortest hash prefix accepted by <see cref="ResolveHash"/> (like git's abbreviations).</summary>
    public const int MinimumPrefixLength = 4;
    /// <summary>Files up to this size are read whole into a pooled buffer (hash first, write only if new).</summary>
    public const int SmallObjectLimit = 4 << 20;
    private const int CopyBuffer = 1 << 20;

    private readonly HashPrimitive _hash;
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

    private CasStore(string root, HashPrimitive hash)
    {
        Root = root;
        _hash = hash;
        Layout = new CasLayout(root);
        Refs = new CasRefStore(this);
        Writer = new CasWriter(this);
    }

    public string Root { get; }
    /// <summary>Where everything of this store lives (the same names a remote backend uses).</summary>
    public CasLayout Layout { get; }
    /// <summary>The store's refs (named GC roots).</summary>
    public CasRefStore Refs { get; }
    public string ObjectsDirectory => Layout.ObjectsDirectory;
    public string TempDirectory => Layout.TempDirectory;
    public string RefsDirectory => Layout.RefsDirectory;
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
        var checkedAs = (root, ConfigHashName(hash));
        // A store this process has checked before, whose folder and config have not changed since, needs no new check.
        if (s_checked.TryGetValue(checkedAs, out var seen) && StoreStamp.Of(root) == seen) return new CasStore(root, hash);
        var store = OpenAndCheck(root, hash, create);
        if (StoreStamp.Of(root) is { } stamp && stamp.IsSettled) s_checked[checkedAs] = stamp;
        return store;
    }

    /// <summary>Stores opened and checked in this process, by root and hash name, with what their check saw.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Root, string Hash), StoreStamp> s_checked = new();

    /// <summary>
    /// What <see cref="OpenAndCheck"/> depends on, in two stats: the root folder's mtime (it changes when an entry of
    /// the root — objects/, tmp/, refs/, the config — is added, removed or renamed) and the config file's mtime and size.
    /// </summary>
    private readonly record struct StoreStamp(DateTime RootWritten, DateTime ConfigWritten, long ConfigSize)
    {
        /// <summary>Long enough ago that a later change cannot carry the same timestamp (file times tick coarsely).</summary>
        public bool IsSettled => DateTime.UtcNow - RootWritten > SettleTime && DateTime.UtcNow - ConfigWritten > SettleTime;

        private static readonly TimeSpan SettleTime = TimeSpan.FromSeconds(2);

        public static StoreStamp? Of(string root)
        {
            var folder = new DirectoryInfo(root);
            var config = new FileInfo(Path.Combine(root, ConfigFileName));
            if (!folder.Exists || !config.Exists) return null;
            return new StoreStamp(folder.LastWriteTimeUtc, config.LastWriteTimeUtc, config.Length);
        }
    }

    private static CasStore OpenAndCheck(string root, HashPrimitive hash, bool create)
    {
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
            {
                // Another process may have finished creating the store between the check above and this listing (its
                // config renamed into place, its folders made): then it is a store, opened (and checked) as one.
                if (File.Exists(config)) return OpenAndCheck(root, hash, create);
                throw new RequiemException("NotACasStore", ErrorKind.InvalidArgument,
                    $"'{root}' is not a CAS store (no '{ConfigFileName}' file) and is not empty; refusing to write into it.", root);
            }
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
    public string ObjectPath(string hash, CasEncoding encoding) => Layout.ObjectPath(hash, encoding);

    private static bool IsLower(string hex) => CasLayout.IsLower(hex);

    private static byte? ReadFirstByte(string path, CasEncoding encoding) => CasGarbageCollector.ReadFirstByte(path, encoding);

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

    // ---------------------------------------------------------------- remote store (CasRemote)

    /// <summary>The remote store behind this local one, or null when none is configured.</summary>
    public CasRemote? Remote { get; private set; }

    /// <summary>Puts a remote backend behind this store: reads that miss fall through to it, writes are journalled for upload.</summary>
    public CasRemote AttachRemote(ICasBackend backend) => Remote = new CasRemote(this, backend);

    /// <summary>
    /// Tells the remote tier that a small document under the store root (e.g. <c>ac/ab/&lt;key&gt;.json</c>) was written
    /// and must be uploaded. No-op without a remote.
    /// </summary>
    public void NotifyDocumentWritten(string relativeName) => Remote?.DocumentWritten(relativeName);

    /// <summary>
    /// Brings down, concurrently, the objects of <paramref name="hashes"/> missing locally (each re-hashed before use),
    /// so that the reads that follow find them here. No-op without a remote store; never fails (the reads report).
    /// </summary>
    public void Prefetch(IEnumerable<string> hashes, CancellationToken cancel = default) => Remote?.Prefetch(hashes, cancel);

    /// <summary>Brings a document missing locally down from the remote store (false without a remote, or when it is absent there).</summary>
    public bool TryFetchDocument(string relativeName, CancellationToken cancel = default, Func<byte[], bool>? accept = null) => Remote?.FetchDocument(relativeName, cancel, accept) ?? false;

    /// <summary>Locates an object, bringing it down from the remote store (verified) when it is missing locally.</summary>
    internal (string Path, CasEncoding Encoding)? LocateOrFetch(string hash, CancellationToken cancel) => LocateOrFetch(hash, cancel, out _);

    /// <param name="fetchedNow">True when the object just came down from the remote (and was re-hashed on the way).</param>
    internal (string Path, CasEncoding Encoding)? LocateOrFetch(string hash, CancellationToken cancel, out bool fetchedNow)
    {
        fetchedNow = false;
        var local = Locate(hash);
        if (local is not null || Remote is not { } remote) return local;
        switch (remote.FetchObject(hash, cancel))
        {
            case CasFetchOutcome.Fetched:
                fetchedNow = true;
                return Locate(hash);
            case CasFetchOutcome.Corrupt:
                throw new RequiemException("CasRemoteObjectCorrupt", ErrorKind.InvalidData,
                    $"CAS object {hash} is not in the local store, and its copy in the remote store ({remote.Backend.Description}) is corrupt: it was not used. " +
                    "Store the original bytes again (they are then uploaded), or remove the blob.", hash);
            case CasFetchOutcome.TooLarge:
                throw new RequiemException("CasRemoteObjectTooLarge", ErrorKind.LimitsExceeded,
                    $"CAS object {hash} is not in the local store, and its copy in the remote store ({remote.Backend.Description}) is larger than " +
                    $"remote.max_object_bytes ({remote.MaxObjectBytes} bytes): it was not downloaded. Raise remote.max_object_bytes in the config if the object is expected to be that large.", hash);
            default:
                return null;
        }
    }

    /// <summary>Publishes a downloaded, verified object (not journalled: the remote has it).</summary>
    internal void PublishFetched(string tmp, string hash, long size, CasEncoding encoding, long stored)
    {
        var remote = Remote;
        Publish(tmp, hash, size, encoding, durable: true, stored);
        remote?.ClearPending(CasLayout.ObjectName(hash, CasEncoding.Identity));
    }

    // ---------------------------------------------------------------- put

    /// <summary>The write path: staging in tmp/, hashing and compressing on the way, atomic publish.</summary>
    internal CasWriter Writer { get; }

    public CasPutResult PutBytes(ReadOnlySpan<byte> data, CasEncoding encoding = CasEncoding.Identity, int level = 3) =>
        Writer.PutSmall(data, encoding, level, stage: false, out _);

    /// <summary>Streams a file into the store (hashing and, for zstd, compressing on the way), never holding a large file in memory.</summary>
    public CasPutResult PutFile(string path, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default) =>
        Writer.PutFileCore(path, encoding, level, stage: false, cancel, out _);

    public CasPutResult PutStream(Stream input, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default) =>
        Writer.PutStream(input, encoding, level, cancel);

    internal CasPutResult PutFileCore(string path, CasEncoding encoding, int level, bool stage, CancellationToken cancel, out CasWriter.StagedTemp? staged,
        bool mayHoldHandle = true) => Writer.PutFileCore(path, encoding, level, stage, cancel, out staged, mayHoldHandle);

    internal CasPutResult PutSmall(ReadOnlySpan<byte> data, CasEncoding encoding, int level, bool stage, out CasWriter.StagedTemp? staged, bool mayHoldHandle = true) =>
        Writer.PutSmall(data, encoding, level, stage, out staged, mayHoldHandle);

    internal CasPutResult Publish(string tmp, string hash, long size, CasEncoding encoding, bool durable, long stored = -1) =>
        Writer.Publish(tmp, hash, size, encoding, durable, stored);

    internal static bool Freshen(string path) => CasWriter.Freshen(path);

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

    internal void CountDeduplicated(long size)
    {
        Interlocked.Increment(ref _deduplicated);
        Interlocked.Increment(ref _objectsDeduplicatedHere);
        Interlocked.Add(ref _bytesDeduplicated, size);
        Metrics.MetricsRegistry.Add(Metrics.Counter.CasPutTotal);
        Metrics.MetricsRegistry.Add(Metrics.Counter.CasPutDeduplicated);
    }

    /// <summary>A new object was published here: counted, and journalled for upload when a remote store is attached.</summary>
    internal void Written(string hash, long size, long stored)
    {
        CountWritten(size, stored);
        Remote?.ObjectWritten(hash);
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

    // ---------------------------------------------------------------- read

    /// <summary>
    /// Streams an object's uncompressed bytes to <paramref name="destination"/> while re-hashing them; throws
    /// <c>CasObjectCorrupt</c> (after the bytes were written: callers write to a temp file and discard it) when the
    /// digest does not match, and <c>CasObjectNotFound</c> when absent.
    /// </summary>
    public long CopyTo(string hash, Stream destination, CancellationToken cancel = default)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var located = LocateOrFetch(hash, cancel) ?? throw NotFound(hash);
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
            throw QuarantineAndReport(hash, located.Path, located.Encoding, ex);
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
                file = new FileStream(IO.StoreFile.OpenObject(path, out _), FileAccess.Read, 1);
            }
            catch (IO.SpecialFileException ex)
            {
                throw Corrupt(hash, $"the object file is {ex.What}, not a regular file; it was not read", ex);
            }
            catch (DirectoryNotFoundException ex)
            {
                throw new FileNotFoundException(ex.Message, path, ex);
            }
            catch (UnauthorizedAccessException ex)
            {
                throw new RequiemException("CasReadError", ErrorKind.PermissionDenied, $"CAS object {hash} cannot be read: {ex.Message}", hash, ex);
            }
            using (file) return CopyDecoded(file, encoding, hash, destination, buffer, cancel, progress);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Verifies an object's stored bytes from a stream (e.g. a blob being checked); throws CasObjectCorrupt on mismatch.</summary>
    internal long VerifyStream(Stream stored, CasEncoding encoding, string hash, CancellationToken cancel)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try { return CopyDecoded(stored, encoding, hash, Stream.Null, buffer, cancel, null); }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    private long CopyDecoded(Stream file, CasEncoding encoding, string hash, Stream destination, byte[] buffer, CancellationToken cancel, Action<long>? progress)
    {
        using Stream source = CasCodec.OpenDecoding(file, encoding);
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
        CountVerified(total);
        return total;
    }

    /// <summary>Counts an object whose bytes were re-hashed and matched (the store's verify counters).</summary>
    internal void CountVerified(long bytes)
    {
        Interlocked.Increment(ref _verified);
        Interlocked.Add(ref _bytesVerified, bytes);
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

    private static (string Hash, CasEncoding Encoding)? ParseObjectName(string name) => CasLayout.ParseObjectFileName(name);

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
        var located = LocateOrFetch(hash, cancel, out var fetchedNow) ?? throw NotFound(hash);
        try
        {
            var info = new FileInfo(located.Path);
            long size;
            if (verify && !fetchedNow) size = CopyFile(located.Path, located.Encoding, hash, Stream.Null, cancel);
            else
            {
                // An object that just came down was re-hashed while it was written: it is not read a second time.
                size = located.Encoding == CasEncoding.Identity ? info.Length : ReadZstdContentSize(located.Path);
                if (verify && size < 0) size = CopyFile(located.Path, located.Encoding, hash, Stream.Null, cancel);
            }
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
            throw QuarantineAndReport(hash, located.Path, located.Encoding, ex);
        }
    }

    /// <summary>The uncompressed size recorded in a zstd frame header, or -1 when the frame does not record it.</summary>
    public static long ReadZstdContentSize(string path) => CasCodec.ReadZstdContentSize(path);

    internal static long ParseZstdContentSize(ReadOnlySpan<byte> h) => CasCodec.ParseZstdContentSize(h);

    // ---------------------------------------------------------------- refs: named roots for garbage collection (CasRefStore)

    /// <summary>Points the ref <paramref name="name"/> (e.g. <c>results/abc</c>) at an object, atomically and durably.</summary>
    public void SetRef(string name, string hash) => Refs.Set(name, hash);

    public string? GetRef(string name) => Refs.Get(name);

    public bool RemoveRef(string name) => Refs.Remove(name);

    /// <summary>Every ref as (name, hash); names use '/' separators. Unreadable or malformed ref files are skipped.</summary>
    public IEnumerable<(string Name, string Hash)> EnumerateRefs() => Refs.Enumerate();

    /// <summary>Every ref file as (name, hash-or-null): null when the file does not hold a digest.</summary>
    public IEnumerable<(string Name, string? Hash)> EnumerateRefFiles() => Refs.EnumerateFiles();

    /// <summary>Validates a ref name: segments of [A-Za-z0-9._-], separated by '/', no '..', no leading dot.</summary>
    public string RefPath(string name) => Layout.RefPath(name);

    // ---------------------------------------------------------------- damaged objects: moved to quarantine/

    /// <summary>Where damaged object files are moved (<c>quarantine/</c>, outside <c>objects/</c>): kept as evidence, never read as objects.</summary>
    public string QuarantineDirectory => Layout.QuarantineDirectory;

    /// <summary>
    /// Moves a damaged object file out of <c>objects/</c> into <c>quarantine/&lt;file name&gt;.&lt;UTC time&gt;.&lt;random&gt;</c>
    /// with one rename, so no read finds it and no put deduplicates against it: a put of the original bytes simply stores
    /// them again. The moved file is checked once more; if it verifies (a writer replaced the damaged file with good
    /// bytes between our read and the rename) it is put back. Returns the quarantine path, or null when nothing was moved
    /// (a read-only store, or another reader moved it first).
    /// </summary>
    internal string? Quarantine(string hash, string path, CasEncoding encoding)
    {
        var target = Path.Combine(QuarantineDirectory,
            $"{Path.GetFileName(path)}.{DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmssfff'Z'", System.Globalization.CultureInfo.InvariantCulture)}.{Guid.NewGuid().ToString("n")[..8]}");
        try
        {
            Directory.CreateDirectory(QuarantineDirectory);
            var moved = CasNative.RenameNoReplace(path, target);
            if (moved == CasNative.RenameResult.DirectoryMissing) return null; // already moved (or removed) by someone else
            if (moved != CasNative.RenameResult.Renamed) File.Move(path, target, overwrite: false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        try
        {
            CopyFile(target, encoding, hash, Stream.Null, CancellationToken.None);
        }
        catch (Exception ex) when (ex is RequiemException or IOException or UnauthorizedAccessException)
        {
            return target; // still damaged (or unreadable): it stays in quarantine
        }
        // Good bytes: a concurrent repair published them under the name just before our rename. Put them back.
        if (CasNative.RenameNoReplace(target, path) is CasNative.RenameResult.Exists) TryDelete(target);
        else if (File.Exists(target) && !File.Exists(path))
        {
            try { File.Move(target, path, overwrite: false); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        return null;
    }

    /// <summary>The error for a damaged object found by a read: the file is quarantined and the message says where it went.</summary>
    internal RequiemException QuarantineAndReport(string hash, string path, CasEncoding encoding, RequiemException corrupt)
    {
        var moved = Quarantine(hash, path, encoding);
        if (moved is null) return corrupt;
        return new RequiemException("CasObjectCorrupt", ErrorKind.InvalidData, corrupt.Message + $" The damaged file was moved to '{moved}'.", hash, corrupt.InnerException);
    }

    /// <summary>Every file in <c>quarantine/</c> as (hash, encoding, path), newest last per hash; files not named by this store are skipped.</summary>
    public IEnumerable<(string Hash, CasEncoding Encoding, string Path)> EnumerateQuarantined()
    {
        List<string> files;
        try
        {
            if (!Directory.Exists(QuarantineDirectory)) yield break;
            files = Directory.EnumerateFiles(QuarantineDirectory).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            yield break;
        }
        foreach (var file in files)
        {
            var name = Path.GetFileName(file);
            if (name.Length < 65 || name[64] != '.' || !Hex.IsDigest(name[..64]) || !IsLower(name[..64])) continue;
            var encoding = name.AsSpan(64).StartsWith(CasLayout.ZstdSuffix + ".") ? CasEncoding.Zstd : CasEncoding.Identity;
            yield return (name[..64], encoding, file);
        }
    }

    /// <summary>The newest quarantined file of an object, or null (looked up only when reporting a missing or damaged object).</summary>
    public string? FindQuarantined(string hash)
    {
        try
        {
            if (!Directory.Exists(QuarantineDirectory)) return null;
            return Directory.EnumerateFiles(QuarantineDirectory, hash + "*").Order(StringComparer.Ordinal).LastOrDefault();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    // ---------------------------------------------------------------- temp files, counters, errors

    public string NewTempPath() => Layout.NewTempPath();

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

    internal static RequiemException ReadError(Exception ex, string? path) =>
        new("FileReadError", ex is UnauthorizedAccessException ? ErrorKind.PermissionDenied : ErrorKind.ReadError,
            $"Cannot read '{path}': {ex.Message}", path, ex);

    /// <summary>CasObjectNotFound; CasObjectCorrupt instead when the object is absent because it was found damaged (quarantine/).</summary>
    public RequiemException NotFound(string hash) =>
        FindQuarantined(hash) is { } q
            ? Corrupt(hash, $"it was found damaged earlier and moved to '{q}'")
            : new("CasObjectNotFound", ErrorKind.ObjectNotFound, $"CAS object {hash} is not in the store at '{Root}'.", hash);

    public static RequiemException Corrupt(string hash, string why, Exception? inner = null) =>
        new("CasObjectCorrupt", ErrorKind.InvalidData,
            $"CAS object {hash} is corrupt: {why}. To repair it, add the original bytes again (Add-RequiemCasObject): a damaged object is moved to quarantine/ when found, and a put then stores the bytes anew.",
            hash, inner);
}
