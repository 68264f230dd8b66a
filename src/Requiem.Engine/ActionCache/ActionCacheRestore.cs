using Requiem.Engine.Cas;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.ActionCache;

/// <summary>
/// Restores an entry's output files into the workspace: every file is first copied from the CAS into a temp file beside
/// its destination while being re-hashed (a corrupt or missing object stops the restore), and only when all of them
/// verified are they renamed into place, one atomic rename each. A failed restore leaves the workspace as it was.
/// The files are not flushed to disk (an fsync per file made a hit 10–20 ms slower): like the files the command itself
/// writes, they are as durable as the file system makes them; the bytes stay durable in the CAS either way.
/// An entry is found by a key over the request, not over its outputs, so whoever can write the store (or the remote)
/// can write an entry with any output list: only files the request itself declares as outputs (a declared file, or a
/// file below a declared folder) are restored; anything else refuses the whole entry (<c>UndeclaredCacheOutput</c>).
/// </summary>
public static class ActionCacheRestore
{
    public const string TempSuffix = ".requiem-restore.tmp";

    /// <summary>Restores the files; throws the typed error of the first one that cannot be restored (nothing is then changed).</summary>
    public static void Restore(CasStore store, string workspaceRoot, IReadOnlyList<string> declaredOutputs, IReadOnlyList<ActionCacheOutputFile> files, CancellationToken cancel)
    {
        var root = WorkspacePaths.ResolveRoot(workspaceRoot);
        var declared = declaredOutputs.Select(Segments).ToArray();
        foreach (var f in files)
        {
            if (!declared.Any(d => IsAtOrBelow(Segments(f.Path), d)))
                throw new RequiemException("UndeclaredCacheOutput", ErrorKind.SecurityError,
                    $"The cached entry names the output '{f.Path}', which the request does not declare as an output; nothing was restored.", f.Path);
        }
        if (OperatingSystem.IsLinux())
        {
            RestoreThroughDescriptors(store, root, files, cancel);
            return;
        }
        var staged = new List<(string Temp, string Final)>(files.Count);
        var created = new List<string>(); // folders this restore made, deepest last; removed again if it fails
        try
        {
            foreach (var f in files)
            {
                cancel.ThrowIfCancellationRequested();
                var final = WorkspacePaths.Confine(root, f.Path, "output");
                if (Directory.Exists(final))
                    throw new RequiemException("CacheRestoreFailed", ErrorKind.WriteError,
                        $"The cached output '{f.Path}' cannot be restored: '{final}' is a directory.", f.Path);
                var dir = Path.GetDirectoryName(final)!;
                var missing = new List<string>();
                for (var d = dir; !Directory.Exists(d) && WorkspacePaths.IsWithin(root, d) && d != root; d = Path.GetDirectoryName(d)!) missing.Add(d);
                Directory.CreateDirectory(dir);
                missing.Reverse();
                created.AddRange(missing);
                // The folders just created (or already there) must still lead into the workspace.
                if (!WorkspacePaths.IsWithin(root, WorkspacePaths.RealPath(dir)))
                    throw new RequiemException("SymlinkEscapesWorkspace", ErrorKind.SecurityError,
                        $"The cached output '{f.Path}' would be restored outside the workspace through a symbolic link.", f.Path);
                var temp = Path.Combine(dir, "." + Path.GetFileName(final) + "." + Guid.NewGuid().ToString("n") + TempSuffix);
                staged.Add((temp, final));
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                {
                    var n = store.CopyTo(f.Digest, stream, cancel);
                    if (n != f.Bytes)
                        throw CasStore.Corrupt(f.Digest, $"the entry records {f.Bytes} bytes for '{f.Path}', the object holds {n}");
                }
                if (f.Executable && !OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(temp, File.GetUnixFileMode(temp) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
                }
            }
            foreach (var (temp, final) in staged) File.Move(temp, final, overwrite: true);
            staged.Clear();
            created.Clear();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("CacheRestoreFailed", ErrorKind.WriteError, $"A cached output could not be restored into '{root}': {ex.Message}", root, ex);
        }
        finally
        {
            foreach (var (temp, _) in staged)
            {
                try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
            for (var i = created.Count - 1; i >= 0; i--)
            {
                try { Directory.Delete(created[i]); } catch (IOException) { } catch (UnauthorizedAccessException) { } // only if empty
            }
        }
    }

    /// <summary>
    /// Linux: every parent folder is opened from the workspace root one component at a time without following links
    /// (created where missing), the staged file is created in the opened folder and renamed within it. A folder swapped
    /// for a symbolic link after any check can therefore not send a file outside the workspace.
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void RestoreThroughDescriptors(CasStore store, string root, IReadOnlyList<ActionCacheOutputFile> files, CancellationToken cancel)
    {
        var staged = new List<(int Folder, string Temp, string Name)>(files.Count);
        IO.DirectoryWalk walk;
        try
        {
            walk = IO.DirectoryWalk.Open(root);
        }
        catch (IOException ex)
        {
            throw new RequiemException("CacheRestoreFailed", ErrorKind.WriteError, $"A cached output could not be restored into '{root}': {ex.Message}", root, ex);
        }
        using var _ = walk;
        try
        {
            foreach (var f in files)
            {
                cancel.ThrowIfCancellationRequested();
                var final = WorkspacePaths.Confine(root, f.Path, "output");
                var segments = Path.GetRelativePath(root, final).Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
                if (segments.Length == 0 || segments.Any(x => x is "." or ".."))
                    throw new RequiemException("CacheRestoreFailed", ErrorKind.WriteError, $"The cached output '{f.Path}' does not name a file in the workspace.", f.Path);
                int folder;
                try
                {
                    folder = walk.OpenFolder(segments[..^1], create: true);
                }
                catch (IO.SpecialFileException ex) when (ex.What == "a symbolic link")
                {
                    throw new RequiemException("SymlinkEscapesWorkspace", ErrorKind.SecurityError,
                        $"The cached output '{f.Path}' would be restored through the symbolic link '{ex.Path}'; nothing was restored.", f.Path, ex);
                }
                var name = segments[^1];
                if (IO.DirectoryWalk.TypeOf(folder, name) == IO.NoFollowOpen.S_IFDIR)
                    throw new RequiemException("CacheRestoreFailed", ErrorKind.WriteError,
                        $"The cached output '{f.Path}' cannot be restored: '{final}' is a directory.", f.Path);
                var temp = "." + name + "." + Guid.NewGuid().ToString("n") + TempSuffix;
                using (var stream = IO.DirectoryWalk.CreateNew(folder, temp))
                {
                    staged.Add((folder, temp, name));
                    var n = store.CopyTo(f.Digest, stream, cancel);
                    if (n != f.Bytes)
                        throw CasStore.Corrupt(f.Digest, $"the entry records {f.Bytes} bytes for '{f.Path}', the object holds {n}");
                    if (f.Executable)
                        File.SetUnixFileMode(stream.SafeFileHandle, File.GetUnixFileMode(stream.SafeFileHandle) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
                }
            }
            foreach (var (folder, temp, name) in staged) IO.DirectoryWalk.Rename(folder, temp, name);
            staged.Clear();
            walk.KeepCreated();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("CacheRestoreFailed", ErrorKind.WriteError, $"A cached output could not be restored into '{root}': {ex.Message}", root, ex);
        }
        finally
        {
            foreach (var (folder, temp, _) in staged) IO.DirectoryWalk.TryUnlink(folder, temp);
            walk.RemoveCreated();
        }
    }

    /// <summary>A workspace-relative path as its lexical segments ('.' and empty ones dropped, '..' applied).</summary>
    private static List<string> Segments(string relative)
    {
        var segments = new List<string>();
        foreach (var s in relative.Split('/', '\\'))
        {
            if (s is "" or ".") continue;
            if (s == "..")
            {
                if (segments.Count > 0) segments.RemoveAt(segments.Count - 1);
                continue;
            }
            segments.Add(s);
        }
        return segments;
    }

    private static readonly StringComparer s_segmentComparer = OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    private static bool IsAtOrBelow(List<string> path, List<string> declared) =>
        path.Count >= declared.Count && declared.Select((s, i) => s_segmentComparer.Equals(s, path[i])).All(x => x);
}
