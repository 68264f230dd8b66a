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
/// A manifest is a CAS object (JSON) that names other objects. Garbage collection follows manifests from refs,
/// so a result or proof stored as a manifest keeps every blob it references alive.
/// </summary>
public sealed class CasManifest
{
    public const string Marker = "requiem_manifest";
    public const string Version = "1";

    /// <summary>What the manifest describes, e.g. <c>exec_result</c>, <c>proof_bundle</c>.</summary>
    public required string Kind { get; init; }
    /// <summary>Digests of the objects this manifest keeps alive.</summary>
    public required IReadOnlyList<string> References { get; init; }
    /// <summary>The document itself (a result, a bundle), stored verbatim.</summary>
    public JsonElement? Body { get; init; }

    public byte[] ToJsonBytes()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString(Marker, Version);
            w.WriteString("kind", Kind);
            w.WriteStartArray("references");
            foreach (var r in References) w.WriteStringValue(r);
            w.WriteEndArray();
            if (Body is { } body)
            {
                w.WritePropertyName("body");
                body.WriteTo(w);
            }
            w.WriteEndObject();
        }
        // Canonical bytes, so that the same manifest always has the same name.
        return CanonicalJson.Canonicalize(Encoding.UTF8.GetString(ms.ToArray()));
    }

    /// <summary>Parses a manifest, or returns null when the bytes are not one.</summary>
    public static CasManifest? TryParse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 2 || bytes[0] != (byte)'{') return null;
        try
        {
            var reader = new Utf8JsonReader(bytes);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (!root.TryGetProperty(Marker, out _)) return null;
            var refs = new List<string>();
            if (root.TryGetProperty("references", out var arr) && arr.ValueKind == JsonValueKind.Array)
            {
                foreach (var r in arr.EnumerateArray())
                {
                    if (r.ValueKind == JsonValueKind.String && Hex.IsDigest(r.GetString())) refs.Add(r.GetString()!.ToLowerInvariant());
                }
            }
            return new CasManifest
            {
                Kind = root.TryGetProperty("kind", out var k) ? k.GetString() ?? "" : "",
                References = refs,
                Body = root.TryGetProperty("body", out var b) ? b.Clone() : null,
            };
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>
/// Content-addressable store, format "v2": objects named by the <c>cas:</c> BLAKE3 digest of their uncompressed
/// bytes under <c>objects/ab/</c>; every write goes to <c>tmp/</c>, is flushed, then renamed into place, so a
/// reader never sees a partial object and concurrent writers of the same object both succeed; every read
/// re-verifies the digest.
/// </summary>
public sealed class CasStore
{
    public const string ConfigFileName = "config";
    public const string ZstdSuffix = ".zst";
    private const int CopyBuffer = 1 << 20;

    private readonly HashPrimitive _hash;

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
            ReadConfig(config, root);
        }
        else
        {
            if (File.Exists(root))
                throw new RequiemException("NotACasStore", ErrorKind.InvalidArgument, $"'{root}' is a file, not a CAS store directory.", root);
            var exists = Directory.Exists(root);
            if (exists && Directory.EnumerateFileSystemEntries(root).Any())
                throw new RequiemException("NotACasStore", ErrorKind.InvalidArgument,
                    $"'{root}' is not a CAS store (no '{ConfigFileName}' file) and is not empty; refusing to write into it.", root);
            if (!exists && !create)
                throw new RequiemException("CasNotFound", ErrorKind.ObjectNotFound, $"There is no CAS store at '{root}'.", root);
            Initialize(root);
        }
        var store = new CasStore(root, hash);
        Directory.CreateDirectory(store.ObjectsDirectory);
        Directory.CreateDirectory(store.TempDirectory);
        Directory.CreateDirectory(store.RefsDirectory);
        return store;
    }

    private static void Initialize(string root)
    {
        try
        {
            Directory.CreateDirectory(root);
            var json = $"{{\"cas_version\":\"{EngineInfo.CasFormatVersion}\",\"hash\":\"blake3\",\"domain\":\"cas:\",\"layout\":\"objects/xx/<hash>[.zst]\"}}\n";
            var tmp = Path.Combine(root, ConfigFileName + "." + Guid.NewGuid().ToString("n") + ".tmp");
            File.WriteAllText(tmp, json);
            try { File.Move(tmp, Path.Combine(root, ConfigFileName), overwrite: false); }
            catch (IOException) when (File.Exists(Path.Combine(root, ConfigFileName))) { File.Delete(tmp); }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("CasWriteError", ErrorKind.WriteError, $"Cannot create a CAS store at '{root}': {ex.Message}", root, ex);
        }
    }

    private static void ReadConfig(string config, string root)
    {
        string version;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(config));
            version = doc.RootElement.GetProperty("cas_version").GetString() ?? "";
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or IOException)
        {
            throw new RequiemException("NotACasStore", ErrorKind.InvalidData, $"'{config}' is not a valid CAS store config: {ex.Message}", root, ex);
        }
        if (version != EngineInfo.CasFormatVersion)
            throw new RequiemException("UnsupportedCasVersion", ErrorKind.InvalidData,
                $"The store at '{root}' has format '{version}'; this engine reads '{EngineInfo.CasFormatVersion}'.", root);
    }

    /// <summary>Final path of an object in the given encoding (the file may not exist).</summary>
    public string ObjectPath(string hash, CasEncoding encoding)
    {
        var name = encoding == CasEncoding.Zstd ? hash + ZstdSuffix : hash;
        return Path.Combine(ObjectsDirectory, hash[..2], name);
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

    public CasPutResult PutBytes(ReadOnlySpan<byte> data, CasEncoding encoding = CasEncoding.Identity, int level = 3)
    {
        var hash = _hash.HashBytes(data, HashDomain.Cas);
        if (Locate(hash) is { } existing)
            return new CasPutResult { Hash = hash, Size = data.Length, StoredSize = new FileInfo(existing.Path).Length, Encoding = existing.Encoding, Existed = true };

        var tmp = NewTempPath();
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                if (encoding == CasEncoding.Zstd)
                {
                    using var compressor = new Compressor(level);
                    fs.Write(compressor.Wrap(data));
                }
                else
                {
                    fs.Write(data);
                }
                fs.Flush(flushToDisk: true);
            }
            return Publish(tmp, hash, data.Length, encoding);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw WriteError(ex);
        }
    }

    /// <summary>Streams a file into the store (hashing and, for zstd, compressing on the way), never holding it in memory.</summary>
    public CasPutResult PutFile(string path, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default)
    {
        using var source = HashPrimitive.OpenForRead(path);
        using var input = new FileStream(source, FileAccess.Read, 1);
        return PutStream(input, encoding, level, cancel);
    }

    public CasPutResult PutStream(Stream input, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default)
    {
        var tmp = NewTempPath();
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            string hash;
            long size = 0;
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            using (var hasher = _hash.CreateHasher(HashDomain.Cas))
            {
                Stream sink = encoding == CasEncoding.Zstd ? new CompressionStream(fs, level, leaveOpen: true) : fs;
                try
                {
                    int n;
                    while ((n = input.Read(buffer, 0, CopyBuffer)) > 0)
                    {
                        cancel.ThrowIfCancellationRequested();
                        hasher.UpdateParallel(buffer.AsSpan(0, n));
                        sink.Write(buffer, 0, n);
                        size += n;
                    }
                }
                finally
                {
                    if (!ReferenceEquals(sink, fs)) sink.Dispose();
                }
                fs.Flush(flushToDisk: true);
                hash = hasher.FinalizeHex();
            }
            if (Locate(hash) is { } existing)
            {
                TryDelete(tmp);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = new FileInfo(existing.Path).Length, Encoding = existing.Encoding, Existed = true };
            }
            return Publish(tmp, hash, size, encoding);
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

    public CasPutResult PutManifest(CasManifest manifest) => PutBytes(manifest.ToJsonBytes());

    private CasPutResult Publish(string tmp, string hash, long size, CasEncoding encoding)
    {
        var final = ObjectPath(hash, encoding);
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        var stored = new FileInfo(tmp).Length;
        try
        {
            File.Move(tmp, final, overwrite: false);
            return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
        }
        catch (IOException) when (File.Exists(final))
        {
            // Another writer published the same object first: same name, same bytes. Both succeed.
            TryDelete(tmp);
            return new CasPutResult { Hash = hash, Size = size, StoredSize = new FileInfo(final).Length, Encoding = encoding, Existed = true };
        }
    }

    /// <summary>
    /// Streams an object's uncompressed bytes to <paramref name="destination"/> while re-hashing them; throws
    /// <c>CasObjectCorrupt</c> (after the bytes were written: callers write to a temp file and discard it) when the
    /// digest does not match, and <c>CasObjectNotFound</c> when absent.
    /// </summary>
    public long CopyTo(string hash, Stream destination, CancellationToken cancel = default)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var located = Locate(hash) ?? throw NotFound(hash);
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            using var file = new FileStream(located.Path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);
            using Stream source = located.Encoding == CasEncoding.Zstd ? new DecompressionStream(file, leaveOpen: true) : file;
            using var hasher = _hash.CreateHasher(HashDomain.Cas);
            long total = 0;
            int n;
            try
            {
                while ((n = source.Read(buffer, 0, CopyBuffer)) > 0)
                {
                    cancel.ThrowIfCancellationRequested();
                    hasher.UpdateParallel(buffer.AsSpan(0, n));
                    destination.Write(buffer, 0, n);
                    total += n;
                }
            }
            catch (ZstdException ex)
            {
                throw Corrupt(hash, "zstd frame does not decode: " + ex.Message, ex);
            }
            var actual = hasher.FinalizeHex();
            if (actual != hash) throw Corrupt(hash, $"content hashes to {actual}");
            return total;
        }
        catch (IOException ex) when (ex is not FileNotFoundException)
        {
            throw Corrupt(hash, "read failed: " + ex.Message, ex);
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
    public CasManifest ReadManifest(string hash) =>
        CasManifest.TryParse(ReadAllBytes(hash))
        ?? throw new RequiemException("NotAManifest", ErrorKind.InvalidData, $"CAS object {hash} is not a manifest.", hash);

    /// <summary>All object hashes in the store (unordered, streaming).</summary>
    public IEnumerable<string> EnumerateHashes()
    {
        if (!Directory.Exists(ObjectsDirectory)) yield break;
        foreach (var shard in Directory.EnumerateDirectories(ObjectsDirectory))
        {
            foreach (var file in Directory.EnumerateFiles(shard))
            {
                var name = Path.GetFileName(file);
                if (name.EndsWith(ZstdSuffix, StringComparison.Ordinal)) name = name[..^ZstdSuffix.Length];
                if (Hex.IsDigest(name)) yield return name;
            }
        }
    }

    // ---- refs: named roots for garbage collection ----

    /// <summary>Points the ref <paramref name="name"/> (e.g. <c>results/abc</c>) at an object, atomically.</summary>
    public void SetRef(string name, string hash)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        if (!Contains(hash)) throw NotFound(hash);
        var path = RefPath(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = NewTempPath();
        try
        {
            File.WriteAllText(tmp, hash + "\n");
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw WriteError(ex);
        }
    }

    public string? GetRef(string name)
    {
        var path = RefPath(name);
        if (!File.Exists(path)) return null;
        var text = File.ReadAllText(path).Trim();
        return Hex.IsDigest(text) ? text.ToLowerInvariant() : null;
    }

    public bool RemoveRef(string name)
    {
        var path = RefPath(name);
        if (!File.Exists(path)) return false;
        File.Delete(path);
        return true;
    }

    /// <summary>Every ref as (name, hash); names use '/' separators.</summary>
    public IEnumerable<(string Name, string Hash)> EnumerateRefs()
    {
        if (!Directory.Exists(RefsDirectory)) yield break;
        foreach (var file in Directory.EnumerateFiles(RefsDirectory, "*", SearchOption.AllDirectories))
        {
            var name = Path.GetRelativePath(RefsDirectory, file).Replace('\\', '/');
            string text;
            try { text = File.ReadAllText(file).Trim(); }
            catch (IOException) { continue; }
            if (Hex.IsDigest(text)) yield return (name, text.ToLowerInvariant());
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

    public string NewTempPath() => Path.Combine(TempDirectory, Guid.NewGuid().ToString("n") + ".tmp");

    internal static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private RequiemException WriteError(Exception ex)
    {
        var full = ex is IOException io && (io.HResult & 0xFFFF) is 28 or 112; // ENOSPC / ERROR_DISK_FULL
        return new RequiemException(full ? "CasDiskFull" : "CasWriteError", full ? ErrorKind.ResourceUnavailable : ErrorKind.WriteError,
            $"Writing to the CAS at '{Root}' failed: {ex.Message}", Root, ex);
    }

    public static RequiemException NotFound(string hash) =>
        new("CasObjectNotFound", ErrorKind.ObjectNotFound, $"CAS object {hash} is not in the store.", hash);

    public static RequiemException Corrupt(string hash, string why, Exception? inner = null) =>
        new("CasObjectCorrupt", ErrorKind.InvalidData, $"CAS object {hash} is corrupt: {why}.", hash, inner);
}
