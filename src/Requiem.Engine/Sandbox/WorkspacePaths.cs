namespace Requiem.Engine.Sandbox;

/// <summary>
/// Workspace confinement for the paths a request names (cwd, inputs, outputs, a relative command): absolute paths,
/// <c>..</c> escapes and symlinks that lead outside the workspace are refused with typed errors.
/// Error ids: WorkspaceNotFound, AbsolutePathNotAllowed, PathEscapesWorkspace, SymlinkEscapesWorkspace.
/// </summary>
public static class WorkspacePaths
{
    private static readonly StringComparison s_cmp = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <summary>The workspace root with every symlink resolved; it must exist and be a directory.</summary>
    public static string ResolveRoot(string workspaceRoot)
    {
        if (!Path.IsPathFullyQualified(workspaceRoot))
            throw new RequiemException("WorkspaceRootNotAbsolute", ErrorKind.InvalidArgument, $"workspace_root '{workspaceRoot}' must be an absolute path.", workspaceRoot);
        var real = RealPath(Path.GetFullPath(workspaceRoot));
        if (!Directory.Exists(real))
            throw new RequiemException("WorkspaceNotFound", ErrorKind.ObjectNotFound, $"workspace_root '{workspaceRoot}' is not an existing directory.", workspaceRoot);
        return real;
    }

    /// <summary>Resolves <paramref name="relative"/> inside <paramref name="realRoot"/>, refusing every way out.</summary>
    public static string Confine(string realRoot, string relative, string field)
    {
        if (relative.Length == 0) relative = ".";
        if (Path.IsPathRooted(relative) || (relative.Length > 0 && (relative[0] == '/' || relative[0] == '\\')))
            throw new RequiemException("AbsolutePathNotAllowed", ErrorKind.SecurityError,
                $"{field} '{relative}' is absolute; paths in a request must be relative to workspace_root.", relative);
        var depth = 0;
        foreach (var seg in relative.Split('/', '\\'))
        {
            if (seg is "" or ".") continue;
            if (seg == "..")
            {
                if (--depth < 0)
                    throw new RequiemException("PathEscapesWorkspace", ErrorKind.SecurityError,
                        $"{field} '{relative}' leaves the workspace through '..'.", relative);
            }
            else depth++;
        }
        var full = RealPath(Path.GetFullPath(Path.Combine(realRoot, relative)));
        if (!IsWithin(realRoot, full))
            throw new RequiemException("SymlinkEscapesWorkspace", ErrorKind.SecurityError,
                $"{field} '{relative}' resolves to '{full}' through a symbolic link, outside the workspace '{realRoot}'.", relative);
        return full;
    }

    public static bool IsWithin(string root, string path)
    {
        if (string.Equals(root, path, s_cmp)) return true;
        var prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, s_cmp);
    }

    /// <summary>
    /// Resolves every symbolic link in an absolute path (components that do not exist are kept as written). Linear in
    /// the path's length: below the first component that does not exist nothing is looked up (nothing can exist there),
    /// and the path is built in one buffer instead of one new string per component.
    /// </summary>
    public static string RealPath(string absolute)
    {
        var root = Path.GetPathRoot(absolute) ?? "/";
        var pending = new List<string>(Split(absolute[root.Length..]));
        pending.Reverse();
        var stack = new Stack<string>(pending);
        var current = new System.Text.StringBuilder(root, absolute.Length + 16);
        var ends = new Stack<int>();      // current's length before each appended component, for ".."
        var missingDepth = 0;            // components appended since the first one that does not exist
        var hops = 0;
        while (stack.Count > 0)
        {
            var c = stack.Pop();
            if (c is "" or ".") continue;
            if (c == "..")
            {
                if (ends.Count > 0) current.Length = ends.Pop();
                if (missingDepth > 0) missingDepth--;
                continue;
            }
            var before = current.Length;
            if (current.Length > 0 && current[^1] != Path.DirectorySeparatorChar && current[^1] != Path.AltDirectorySeparatorChar)
                current.Append(Path.DirectorySeparatorChar);
            current.Append(c);
            ends.Push(before);
            if (missingDepth > 0)
            {
                missingDepth++;
                continue;
            }
            var candidate = current.ToString();
            string? target = null;
            var exists = false;
            try
            {
                FileSystemInfo fi = Directory.Exists(candidate) ? new DirectoryInfo(candidate) : new FileInfo(candidate);
                exists = fi.Exists;
                if (fi.Exists || fi.LinkTarget is not null) target = fi.LinkTarget;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            if (target is null)
            {
                if (!exists) missingDepth = 1;
                continue;
            }
            if (++hops > 40)
                throw new RequiemException("SymlinkLoop", ErrorKind.InvalidArgument, $"Too many symbolic links while resolving '{absolute}'.", absolute);
            current.Length = ends.Pop();
            var targetRoot = Path.IsPathRooted(target) ? Path.GetPathRoot(target) ?? root : null;
            var parts = Split(targetRoot is not null ? target[targetRoot.Length..] : target);
            if (targetRoot is not null)
            {
                current.Clear().Append(targetRoot);
                ends.Clear();
            }
            for (var i = parts.Length - 1; i >= 0; i--) stack.Push(parts[i]);
        }
        return current.ToString();
    }

    private static string[] Split(string s) => s.Split('/', '\\');
}
