using System.Text;
using Requiem.Engine.Hashing;
using Requiem.Engine.IO;

namespace Requiem.Engine.Cas;

/// <summary>
/// Refs: named roots for garbage collection, one small file <c>refs/&lt;name&gt;</c> holding a hash. Written atomically
/// and durably (temp file, flush, rename); a ref always names an object present in the store when it is set.
/// </summary>
public sealed class CasRefStore
{
    private readonly CasStore _store;

    internal CasRefStore(CasStore store) => _store = store;

    private CasLayout Layout => _store.Layout;

    /// <summary>Points the ref <paramref name="name"/> (e.g. <c>results/abc</c>) at an object, atomically and durably.</summary>
    public void Set(string name, string hash)
    {
        hash = Hex.NormalizeDigest(hash, "CAS object hash");
        var path = Layout.RefPath(name);
        // With a remote store, an object only the remote holds is brought down (verified) first.
        var located = _store.LocateOrFetch(hash, CancellationToken.None) ?? throw _store.NotFound(hash);
        CasStore.Freshen(located.Path); // a GC running now must not remove what a new ref is about to name
        using var _ = _store.Remote?.LockRefs();
        Write(name, path, hash);
        _store.NotifyDocumentWritten(CasLayout.RefName(name));
    }

    private void Write(string name, string path, string hash)
    {
        var tmp = Layout.NewTempPath();
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
            CasStore.TryDelete(tmp);
            if (Directory.Exists(path))
                throw new RequiemException("InvalidRefName", ErrorKind.InvalidArgument, $"The ref '{name}' is a folder of other refs.", name, ex);
            throw _store.WriteError(ex);
        }
    }

    /// <summary>
    /// The hash a ref names, or null when there is no such ref. A ref missing locally is looked up in the remote store
    /// (when one is attached): a valid remote ref is written into the local store and returned; a removed one (tombstone),
    /// or one whose removal here is still waiting for upload, is not. Throws <c>InvalidRefFile</c> when something other
    /// than a regular file (a FIFO, a symbolic link, a device) sits at the ref's path.
    /// </summary>
    public string? Get(string name)
    {
        var path = Layout.RefPath(name);
        var text = ReadLocal(name, path, out var present);
        if (present) return text is not null && Hex.IsDigest(text) ? text.ToLowerInvariant() : null;
        return _store.Remote?.FetchRef(name);
    }

    /// <summary>The trimmed text of a local ref file; <paramref name="present"/> false when there is none.</summary>
    private static string? ReadLocal(string name, string path, out bool present)
    {
        byte[]? bytes;
        try
        {
            bytes = StoreFile.ReadSmall(path, MaxRefFileBytes);
        }
        catch (SpecialFileException ex)
        {
            throw new RequiemException("InvalidRefFile", ErrorKind.InvalidData, $"The ref '{name}' cannot be read: {ex.Message}.", name, ex);
        }
        present = bytes is not null;
        return bytes is null ? null : Encoding.ASCII.GetString(bytes).Trim();
    }

    /// <summary>A ref file is a digest and a newline; anything much larger is not a ref.</summary>
    internal const int MaxRefFileBytes = 4096;

    /// <summary>
    /// Writes a ref that came from the remote store into the local one (not journalled: the remote has it), unless a
    /// local ref appeared, or was removed, meanwhile. The caller holds the ref lock. Returns the hash the local ref now names.
    /// </summary>
    internal string? FillFromRemote(string name, string hash, bool removalPending)
    {
        var path = Layout.RefPath(name);
        var local = ReadLocal(name, path, out var present);
        if (present) return local is not null && Hex.IsDigest(local) ? local.ToLowerInvariant() : null;
        if (removalPending) return null; // removed here meanwhile: the removal wins over the copy just read
        Write(name, path, hash);
        return hash;
    }

    /// <summary>
    /// Removes a ref; false when there was none. With a remote store the removal is journalled and reaches the remote
    /// as a tombstone (an empty blob at the ref's name), so no agent reads the old value through again.
    /// </summary>
    public bool Remove(string name)
    {
        var path = Layout.RefPath(name);
        using var _ = _store.Remote?.LockRefs();
        if (!File.Exists(path) && new FileInfo(path).LinkTarget is null) return false;
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw _store.WriteError(ex);
        }
        _store.NotifyDocumentWritten(CasLayout.RefName(name));
        // Remove emptied ref folders (but never refs/ itself).
        var refs = Layout.RefsDirectory;
        var dir = Path.GetDirectoryName(path);
        while (dir is not null && dir.Length > refs.Length && dir.StartsWith(refs, StringComparison.Ordinal))
        {
            try { Directory.Delete(dir); } catch (IOException) { break; } catch (UnauthorizedAccessException) { break; }
            dir = Path.GetDirectoryName(dir);
        }
        return true;
    }

    /// <summary>Every ref as (name, hash); names use '/' separators. Unreadable or malformed ref files are skipped.</summary>
    public IEnumerable<(string Name, string Hash)> Enumerate()
    {
        foreach (var (name, hash) in EnumerateFiles())
        {
            if (hash is not null) yield return (name, hash);
        }
    }

    /// <summary>Every ref file as (name, hash-or-null): null when the file does not hold a digest.</summary>
    public IEnumerable<(string Name, string? Hash)> EnumerateFiles()
    {
        var refs = Layout.RefsDirectory;
        if (!Directory.Exists(refs)) yield break;
        foreach (var file in Directory.EnumerateFiles(refs, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
        {
            var name = Path.GetRelativePath(refs, file).Replace('\\', '/');
            string? text;
            try
            {
                var bytes = StoreFile.ReadSmall(file, MaxRefFileBytes); // a FIFO or link planted here is a damaged ref, not a hang
                if (bytes is null) continue; // removed meanwhile
                text = Encoding.ASCII.GetString(bytes).Trim();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { text = null; }
            yield return (name, text is not null && Hex.IsDigest(text) ? text.ToLowerInvariant() : null);
        }
    }
}
