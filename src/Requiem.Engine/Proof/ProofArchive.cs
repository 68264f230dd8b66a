using System.Formats.Tar;
using System.Text;
using System.Text.Json;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Proof;

/// <summary>What Export-RequiemProof wrote.</summary>
public sealed class ProofArchiveInfo
{
    public required string Path { get; init; }
    public required string MerkleRoot { get; init; }
    public required bool Signed { get; init; }
    /// <summary>Number of CAS objects in the archive.</summary>
    public required int ObjectCount { get; init; }
    /// <summary>Uncompressed bytes of those objects.</summary>
    public required long ObjectBytes { get; init; }
    /// <summary>Size of the archive file.</summary>
    public required long Length { get; init; }
}

/// <summary>
/// The portable proof archive: a POSIX ustar file (any <c>tar</c> reads it) holding <c>manifest.json</c>,
/// <c>proof.json</c> (the bundle or envelope file, byte for byte) and <c>objects/&lt;digest&gt;</c> (the raw bytes of every
/// CAS object the proof references; <c>BLAKE3("cas:" ‖ bytes)</c> equals the file name).
/// </summary>
public static class ProofArchive
{
    public const string ArchiveVersion = "1";
    public const string ManifestName = "manifest.json";
    public const string BundleName = "proof.json";
    public const string ObjectsPrefix = "objects/";
    private const long MaxDocumentBytes = 16 << 20;
    private static readonly DateTimeOffset FixedTime = DateTimeOffset.FromUnixTimeSeconds(0);

    /// <summary>The bundle inside a proof file (bare bundle, or the payload of a DSSE envelope); <c>InvalidProofBundle</c> otherwise.</summary>
    public static (ProofBundle Bundle, IReadOnlyList<string> KeyIds) ReadDocument(ReadOnlySpan<byte> document, object? target)
    {
        var bytes = document;
        if (bytes.Length > 0 && bytes[^1] == (byte)'\n') bytes = bytes[..^1];
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData, "Not a valid proof bundle: not valid UTF-8.", target);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.ToArray()); }
        catch (JsonException ex) { throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData, "Not a valid proof bundle: not valid JSON: " + ex.Message, target, ex); }
        using (doc)
        {
            if (DsseEnvelope.LooksLikeEnvelope(doc.RootElement))
            {
                var problems = new List<string>();
                var envelope = DsseEnvelope.FromElement(doc.RootElement, problems);
                if (envelope is null)
                    throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData, "Not a valid proof envelope: " + string.Join("; ", problems), target);
                return (ProofBundle.Parse(envelope.Payload, target), envelope.Signatures.Select(s => s.KeyId).ToArray());
            }
            return (ProofBundle.Parse(bytes, target), Array.Empty<string>());
        }
    }

    /// <summary>The CAS objects a bundle names: request, transcript, policy, outputs, and input files the store holds.</summary>
    public static List<string> ReferencedObjects(ProofBundle bundle, Func<string, bool> has)
    {
        var list = new List<string> { bundle.RequestObject, bundle.ReplayTranscriptDigest, bundle.PolicyDigest };
        list.AddRange(bundle.OutputDigests);
        list.AddRange(bundle.InputDigests.Skip(1).Where(has));
        return list.Distinct(StringComparer.Ordinal).ToList();
    }

    public static ProofArchiveInfo Export(CasStore store, byte[] document, string outPath, bool force, CancellationToken cancel = default)
    {
        var (bundle, keyIds) = ReadDocument(document, outPath);
        var empty = ExecDocuments.EmptyObjectDigest(store.HashPrimitive);
        var objects = ReferencedObjects(bundle, store.Contains);
        foreach (var d in objects)
        {
            if (store.Contains(d)) continue;
            if (d == empty) { store.PutBytes(ReadOnlySpan<byte>.Empty); continue; }
            throw new RequiemException("ProofObjectMissing", ErrorKind.ObjectNotFound,
                $"The proof {bundle.MerkleRoot} references {d}, which is not in the CAS at '{store.Root}'.", d);
        }
        objects.Sort(StringComparer.Ordinal);

        var full = System.IO.Path.GetFullPath(outPath);
        if (Directory.Exists(full)) throw new RequiemException("InvalidArchivePath", ErrorKind.InvalidArgument, $"'{full}' is a directory.", full);
        if (!force && File.Exists(full))
            throw new RequiemException("ArchiveExists", ErrorKind.ResourceExists, $"'{full}' already exists; use -Force to replace it.", full);
        var dir = System.IO.Path.GetDirectoryName(full)!;
        var tmp = System.IO.Path.Combine(dir, "." + System.IO.Path.GetFileName(full) + "." + Guid.NewGuid().ToString("n") + ".tmp");
        long total = 0;
        try
        {
            Directory.CreateDirectory(dir);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
            {
                using (var writer = new TarWriter(fs, TarEntryFormat.Ustar, leaveOpen: true))
                {
                    var staged = new List<(string Digest, string File, long Bytes)>();
                    try
                    {
                        foreach (var d in objects)
                        {
                            cancel.ThrowIfCancellationRequested();
                            var staging = store.NewTempPath();
                            long n;
                            using (var sf = new FileStream(staging, FileMode.CreateNew, FileAccess.Write)) n = store.CopyTo(d, sf, cancel);
                            staged.Add((d, staging, n));
                            total += n;
                        }
                        WriteEntry(writer, ManifestName, ManifestJson(bundle, keyIds.Count > 0, staged.Select(s => (s.Digest, s.Bytes))));
                        WriteEntry(writer, BundleName, document);
                        foreach (var (d, file, _) in staged)
                        {
                            using var data = new FileStream(file, FileMode.Open, FileAccess.Read);
                            var entry = NewEntry(ObjectsPrefix + d);
                            entry.DataStream = data;
                            writer.WriteEntry(entry);
                        }
                    }
                    finally
                    {
                        foreach (var s in staged) CasStore.TryDelete(s.File);
                    }
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: force);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            CasStore.TryDelete(tmp);
            if (!force && File.Exists(full))
                throw new RequiemException("ArchiveExists", ErrorKind.ResourceExists, $"'{full}' already exists; use -Force to replace it.", full, ex);
            throw new RequiemException("ArchiveWriteError", ErrorKind.WriteError, $"Cannot write '{full}': {ex.Message}", full, ex);
        }
        catch
        {
            CasStore.TryDelete(tmp);
            throw;
        }
        return new ProofArchiveInfo
        {
            Path = full, MerkleRoot = bundle.MerkleRoot, Signed = keyIds.Count > 0, ObjectCount = objects.Count,
            ObjectBytes = total, Length = new FileInfo(full).Length,
        };
    }

    private static byte[] ManifestJson(ProofBundle bundle, bool signed, IEnumerable<(string Digest, long Bytes)> objects)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("archive_version", ArchiveVersion);
            w.WriteString("merkle_root", bundle.MerkleRoot);
            w.WriteString("bundle", BundleName);
            w.WriteBoolean("signed", signed);
            w.WriteStartArray("objects");
            foreach (var (d, n) in objects)
            {
                w.WriteStartObject();
                w.WriteString("digest", d);
                w.WriteNumber("bytes", n);
                w.WriteString("path", ObjectsPrefix + d);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        var canonical = CanonicalJson.Canonicalize(Encoding.UTF8.GetString(ms.ToArray()));
        return canonical.Concat("\n"u8.ToArray()).ToArray();
    }

    private static UstarTarEntry NewEntry(string name) => new(TarEntryType.RegularFile, name)
    {
        ModificationTime = FixedTime,
        Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        Uid = 0,
        Gid = 0,
    };

    private static void WriteEntry(TarWriter writer, string name, byte[] data)
    {
        var entry = NewEntry(name);
        entry.DataStream = new MemoryStream(data, writable: false);
        writer.WriteEntry(entry);
    }

    /// <summary>
    /// Imports an archive into a store: first every entry is checked (names, each object's <c>cas:</c> digest against its
    /// name, the manifest against the entries, the bundle against the manifest), and only then are objects stored, the
    /// bundle stored as a <c>proof_bundle</c> manifest and <c>proofs/&lt;merkle_root&gt;</c> set. Errors:
    /// InvalidProofArchive, ArchiveObjectCorrupt, InvalidProofBundle.
    /// </summary>
    public static ProofInfo Import(CasStore store, string archivePath, CancellationToken cancel = default)
    {
        var full = System.IO.Path.GetFullPath(archivePath);
        byte[]? manifest = null, document = null;
        var objectNames = new List<string>();
        try
        {
            using var fs = OpenArchive(full);
            using var reader = new TarReader(fs);
            TarEntry? entry;
            while ((entry = NextEntry(reader, full)) is not null)
            {
                cancel.ThrowIfCancellationRequested();
                var name = EntryName(entry);
                if (entry.EntryType is TarEntryType.Directory && (name.Length == 0 || name == ObjectsPrefix)) continue;
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                    throw Invalid(full, $"entry '{entry.Name}' is a {entry.EntryType}, not a regular file");
                if (name == ManifestName) manifest = ReadSmall(entry, full);
                else if (name == BundleName) document = ReadSmall(entry, full);
                else if (name.StartsWith(ObjectsPrefix, StringComparison.Ordinal) && ProofBundle.IsContractDigest(name[ObjectsPrefix.Length..]))
                {
                    var digest = name[ObjectsPrefix.Length..];
                    if (objectNames.Contains(digest)) throw Invalid(full, $"object {digest} appears twice");
                    using var hasher = store.HashPrimitive.CreateHasher(HashDomain.Cas);
                    var buffer = new byte[1 << 16];
                    int n;
                    var data = entry.DataStream ?? Stream.Null;
                    while ((n = data.Read(buffer, 0, buffer.Length)) > 0) hasher.Update(buffer.AsSpan(0, n));
                    var actual = hasher.FinalizeHex();
                    if (actual != digest)
                        throw new RequiemException("ArchiveObjectCorrupt", ErrorKind.InvalidData,
                            $"Archive '{full}': object {digest} is corrupt: its content hashes to {actual}. Nothing was imported.", digest);
                    objectNames.Add(digest);
                }
                else throw Invalid(full, $"unexpected entry '{name}'");
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or FormatException)
        {
            throw Invalid(full, ex.Message, ex);
        }
        if (manifest is null) throw Invalid(full, $"no {ManifestName}");
        if (document is null) throw Invalid(full, $"no {BundleName}");

        var (bundle, keyIds) = ReadDocument(document, full);
        var listed = ReadManifest(manifest, full, out var root);
        if (root != bundle.MerkleRoot) throw Invalid(full, $"{ManifestName} names merkle_root {root}, but {BundleName} has {bundle.MerkleRoot}");
        if (!listed.OrderBy(s => s, StringComparer.Ordinal).SequenceEqual(objectNames.OrderBy(s => s, StringComparer.Ordinal)))
            throw Invalid(full, $"the objects in the archive differ from the list in {ManifestName}");
        var required = ReferencedObjects(bundle, _ => false);
        var missing = required.Where(d => !objectNames.Contains(d)).ToList();
        if (missing.Count > 0) throw Invalid(full, $"objects the proof references are missing: {string.Join(", ", missing)}");
        // Only what the proof names may enter the store (its outputs, request, transcript, policy and input files):
        // anything else would be stored, and kept alive by the proof's manifest, without the proof vouching for it.
        var allowed = new HashSet<string>(ReferencedObjects(bundle, _ => true), StringComparer.Ordinal);
        var extra = objectNames.Where(d => !allowed.Contains(d)).ToList();
        if (extra.Count > 0)
            throw Invalid(full, $"it carries {extra.Count} object(s) the proof does not reference ({string.Join(", ", extra.Take(5))}{(extra.Count > 5 ? ", ..." : "")}); nothing was imported");

        // Second pass: every check passed; store the objects (re-hashed by the store on the way in).
        using (var fs = OpenArchive(full))
        using (var reader = new TarReader(fs))
        {
            TarEntry? entry;
            while ((entry = NextEntry(reader, full)) is not null)
            {
                var name = EntryName(entry);
                if (!name.StartsWith(ObjectsPrefix, StringComparison.Ordinal) || entry.EntryType is TarEntryType.Directory) continue;
                var digest = name[ObjectsPrefix.Length..];
                var put = store.PutStream(entry.DataStream ?? Stream.Null, CasEncoding.Identity, 3, cancel);
                if (put.Hash != digest)
                    throw new RequiemException("ArchiveObjectCorrupt", ErrorKind.InvalidData, $"Archive '{full}' changed while importing: object {digest} now hashes to {put.Hash}.", digest);
            }
        }
        var manifestHash = ProofBuilder.StoreManifest(store, TrimLf(document), objectNames.OrderBy(s => s, StringComparer.Ordinal).ToList(), bundle.MerkleRoot);
        return new ProofInfo
        {
            MerkleRoot = bundle.MerkleRoot,
            Signed = keyIds.Count > 0,
            KeyIds = keyIds,
            RequestDigest = bundle.RequestDigest,
            ResultDigest = bundle.ResultDigest,
            ManifestDigest = manifestHash,
            References = objectNames,
            Path = full,
            Bundle = bundle,
            Json = Encoding.UTF8.GetString(document),
        };
    }

    /// <summary>The entry name without a leading "./" (archives re-made with <c>tar -C dir .</c>); directories end with "/".</summary>
    private static string EntryName(TarEntry entry)
    {
        var name = entry.Name;
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        if (name == ".") name = "";
        if (entry.EntryType is TarEntryType.Directory && name.Length > 0 && !name.EndsWith('/')) name += "/";
        return name;
    }

    private static byte[] TrimLf(byte[] b) => b.Length > 0 && b[^1] == (byte)'\n' ? b[..^1] : b;

    private static FileStream OpenArchive(string full)
    {
        if (Directory.Exists(full))
            throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{full}' is a directory, not a proof archive.", full);
        try
        {
            return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"Archive '{full}' does not exist.", full, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot read '{full}': {ex.Message}", full, ex);
        }
    }

    private static TarEntry? NextEntry(TarReader reader, string full)
    {
        try { return reader.GetNextEntry(); }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or ArgumentException or EndOfStreamException)
        {
            throw Invalid(full, "not a tar archive: " + ex.Message, ex);
        }
    }

    private static byte[] ReadSmall(TarEntry entry, string full)
    {
        if (entry.Length > MaxDocumentBytes) throw Invalid(full, $"'{entry.Name}' is too large");
        using var ms = new MemoryStream();
        entry.DataStream?.CopyTo(ms);
        return ms.ToArray();
    }

    private static List<string> ReadManifest(byte[] manifest, string full, out string root)
    {
        try
        {
            using var doc = JsonDocument.Parse(manifest);
            var r = doc.RootElement;
            if (r.GetProperty("archive_version").GetString() != ArchiveVersion) throw Invalid(full, "unsupported archive_version");
            root = r.GetProperty("merkle_root").GetString() ?? "";
            var list = new List<string>();
            foreach (var o in r.GetProperty("objects").EnumerateArray()) list.Add(o.GetProperty("digest").GetString() ?? "");
            return list;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw Invalid(full, $"{ManifestName} is not valid: {ex.Message}", ex);
        }
    }

    private static RequiemException Invalid(string path, string why, Exception? inner = null) =>
        new("InvalidProofArchive", ErrorKind.InvalidData, $"'{path}' is not a valid proof archive: {why}.", path, inner);
}
