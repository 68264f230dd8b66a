namespace Requiem.Engine.Sandbox;

/// <summary>
/// What of the host's file system a command sees (<c>policy.filesystem</c>), as an ordered list of mounts that
/// requiem-launch builds in the command's mount namespace before <c>pivot_root</c>. The same builder serves the health
/// probe and every run, so the probe tests exactly what runs.
/// <list type="bullet">
/// <item><c>workspace</c> (default): the host's root read-only, the workspace read-write, a private empty /tmp and
/// /var/tmp, a minimal /dev, the command's own /proc, and <c>hidden_paths</c> masked by empty read-only tmpfs.</item>
/// <item><c>hermetic</c>: an empty read-only root with only the workspace (read-write), the declared inputs (read-only)
/// and <c>readonly_paths</c>, plus a private /tmp and /var/tmp, a minimal /dev and the command's own /proc.</item>
/// <item><c>host</c>: no file-system isolation (the command's own /proc and a read-only cgroupfs still apply).</item>
/// </list>
/// </summary>
public static class FilesystemView
{
    public const string Host = "host", Workspace = "workspace", Hermetic = "hermetic";

    public static readonly IReadOnlySet<string> Modes = new HashSet<string>(StringComparer.Ordinal) { Host, Workspace, Hermetic };

    /// <summary>
    /// The toolchain roots and the few /etc files programs need to start (docs/SECURITY.md says why each): bound
    /// read-only in hermetic mode where they exist. Sorted, as the request parser normalises them.
    /// </summary>
    public static readonly string[] DefaultReadonlyPaths =
    {
        "/bin", "/etc/alternatives", "/etc/group", "/etc/hosts", "/etc/ld.so.cache", "/etc/nsswitch.conf", "/etc/passwd",
        "/lib", "/lib32", "/lib64", "/libx32", "/sbin", "/usr",
    };

    /// <summary>Masked in workspace mode where they exist; <c>~</c> is the home directory of the user running the engine.</summary>
    public static readonly string[] DefaultHiddenPaths = { "/home", "/root", "/run/secrets", "~" };

    /// <summary>
    /// The launcher's <c>--root</c> and mount options for a run, or an empty list for <c>host</c>. Host paths that do
    /// not exist are left out; each is given with its parent's symlinks resolved (the launcher recreates a symlink to a
    /// directory, such as /lib → usr/lib, as the symlink).
    /// </summary>
    public static List<string> LauncherArgs(string mode, string workspaceRoot, IEnumerable<string> inputs, IEnumerable<string> readonlyPaths, IEnumerable<string> hiddenPaths)
    {
        var args = new List<string>();
        if (mode == Host) return args;
        void Add(string option, string path) { args.Add(option); args.Add(path); }
        args.AddRange(new[] { "--root", mode == Hermetic ? "tmpfs" : "ro-host" });
        var privateDirs = new[] { "/tmp", "/var/tmp" }.Where(d => mode == Hermetic || Directory.Exists(d)).ToArray();
        foreach (var d in privateDirs) Add("--tmpfs", d);
        if (mode == Workspace)
        {
            var hidden = new List<string>();
            foreach (var h in hiddenPaths.Select(HomeOrPath).Where(p => p is not null).Select(p => Resolve(p!)).Where(Directory.Exists).Order(StringComparer.Ordinal))
            {
                if (h == "/" || privateDirs.Concat(hidden).Any(d => IsUnder(h, d)) || IsUnder(h, "/proc") || IsUnder(h, "/dev")) continue;
                hidden.Add(h);
                Add("--hide", h);
            }
        }
        Add("--dev", "/dev");
        if (mode == Hermetic)
        {
            foreach (var p in readonlyPaths.Select(Resolve).Where(Exists).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (privateDirs.Any(d => IsUnder(p, d)) || IsUnder(p, "/proc") || IsUnder(p, "/dev")) continue;
                Add("--ro-bind", p);
            }
        }
        Add("--bind", workspaceRoot);
        if (mode == Hermetic)
        {
            foreach (var input in inputs.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (input != workspaceRoot) Add("--ro-bind", input);
            }
        }
        return args;
    }

    private static string? HomeOrPath(string p)
    {
        if (p != "~") return p;
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return string.IsNullOrEmpty(home) || !Path.IsPathFullyQualified(home) ? null : Path.TrimEndingDirectorySeparator(home);
    }

    /// <summary>The path with its parent's symlinks resolved (its last component kept as it is).</summary>
    private static string Resolve(string path)
    {
        var parent = Path.GetDirectoryName(path);
        if (parent is null or "/") return path;
        return Path.Combine(WorkspacePaths.RealPath(parent), Path.GetFileName(path));
    }

    private static bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    private static bool IsUnder(string path, string dir) => path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal);
}
