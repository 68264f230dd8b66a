namespace Requiem.Engine.Cas;

/// <summary>
/// A backend in a folder (a shared mount, or tests): the same names as files, created with a no-replace rename so
/// two writers of one object both succeed and one copy remains.
/// </summary>
public sealed class FileSystemCasBackend : ICasBackend
{
    private readonly string _root;

    public FileSystemCasBackend(string root) => _root = Path.GetFullPath(root);

    public string Description => "directory " + _root;

    private string PathOf(string name) => Path.Combine(_root, name.Replace('/', Path.DirectorySeparatorChar));

    public void Probe(CancellationToken cancel)
    {
        try { Directory.CreateDirectory(_root); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CasBackendUnavailableException($"The folder {_root} cannot be used: {ex.Message}", ex);
        }
    }

    public bool Exists(string name, CancellationToken cancel) => File.Exists(PathOf(name));

    public bool CreateFromFile(string name, string path, CancellationToken cancel)
    {
        var final = PathOf(name);
        if (File.Exists(final)) return false;
        var tmp = final + "." + Guid.NewGuid().ToString("n") + CasLayout.TempSuffix;
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        File.Copy(path, tmp);
        return PublishNoReplace(tmp, final);
    }

    public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel)
    {
        var final = PathOf(name);
        if (!overwrite && File.Exists(final)) return false;
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        var tmp = final + "." + Guid.NewGuid().ToString("n") + CasLayout.TempSuffix;
        File.WriteAllBytes(tmp, content.ToArray());
        if (overwrite)
        {
            File.Move(tmp, final, overwrite: true);
            return true;
        }
        return PublishNoReplace(tmp, final);
    }

    private static bool PublishNoReplace(string tmp, string final)
    {
        try
        {
            File.Move(tmp, final, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(final))
        {
            CasStore.TryDelete(tmp);
            return false;
        }
    }

    public bool Download(string name, Stream destination, CancellationToken cancel)
    {
        FileStream file;
        try { file = new FileStream(PathOf(name), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException) { return false; }
        using (file) file.CopyTo(destination);
        return true;
    }

    public bool Download(string name, Stream destination, long maxBytes, CancellationToken cancel)
    {
        FileStream file;
        try { file = new FileStream(PathOf(name), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException) { return false; }
        using (file)
        {
            if (file.Length > maxBytes) throw new CasBlobTooLargeException(name, maxBytes, file.Length);
            file.CopyTo(new CappedWriteStream(destination, maxBytes, name)); // a file that grows meanwhile is still cut off
        }
        return true;
    }

    public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel)
    {
        if (!Directory.Exists(_root)) yield break;
        foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
        {
            var name = Path.GetRelativePath(_root, file).Replace('\\', '/');
            if (!name.StartsWith(prefix, StringComparison.Ordinal) || name.EndsWith(CasLayout.TempSuffix, StringComparison.Ordinal)) continue;
            long size;
            try { size = new FileInfo(file).Length; } catch (FileNotFoundException) { continue; }
            yield return new CasBackendItem(name, size);
        }
    }

    public bool Delete(string name, CancellationToken cancel)
    {
        var path = PathOf(name);
        if (!File.Exists(path)) return false;
        File.Delete(path);
        return true;
    }
}
