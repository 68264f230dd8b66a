using System.Text;
using Requiem.Engine.Hashing;

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
        var located = _store.Locate(hash) ?? throw _store.NotFound(hash);
        CasStore.Freshen(located.Path); // a GC running now must not remove what a new ref is about to name
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
        _store.NotifyDocumentWritten(CasLayout.RefName(name));
    }

    public string? Get(string name)
    {
        var path = Layout.RefPath(name);
        if (!File.Exists(path)) return null;
        string text;
        try { text = File.ReadAllText(path).Trim(); }
        catch (FileNotFoundException) { return null; }
        return Hex.IsDigest(text) ? text.ToLowerInvariant() : null;
    }

    public bool Remove(string name)
    {
        var path = Layout.RefPath(name);
        if (!File.Exists(path)) return false;
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw _store.WriteError(ex);
        }
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
            try { text = File.ReadAllText(file).Trim(); }
            catch (FileNotFoundException) { continue; } // removed meanwhile
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { text = null; }
            yield return (name, text is not null && Hex.IsDigest(text) ? text.ToLowerInvariant() : null);
        }
    }
}
