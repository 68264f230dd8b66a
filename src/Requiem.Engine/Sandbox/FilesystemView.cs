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
    /// The mounts of a run in order (empty for <c>host</c>). Host paths that do not exist are left out; each is given
    /// with its parent's symlinks resolved. Every isolator renders this one layout into its own options
    /// (<see cref="LauncherArgs(FilesystemLayout)"/>, <see cref="BwrapArgs"/>).
    /// </summary>
    public static FilesystemLayout Layout(string mode, string workspaceRoot, IEnumerable<string> inputs, IEnumerable<string> readonlyPaths, IEnumerable<string> hiddenPaths)
    {
        var mounts = new List<FilesystemMount>();
        if (mode == Host) return new FilesystemLayout(mode, mounts);
        void Add(MountKind kind, string path, string? symlinkTarget = null) => mounts.Add(new FilesystemMount(kind, path, symlinkTarget));
        var privateDirs = new[] { "/tmp", "/var/tmp" }.Where(d => mode == Hermetic || Directory.Exists(d)).ToArray();
        foreach (var d in privateDirs) Add(MountKind.Tmpfs, d);
        if (mode == Workspace)
        {
            var hidden = new List<string>();
            foreach (var h in hiddenPaths.Select(HomeOrPath).Where(p => p is not null).Select(p => Resolve(p!)).Where(Directory.Exists).Order(StringComparer.Ordinal))
            {
                if (h == "/" || privateDirs.Concat(hidden).Any(d => IsUnder(h, d)) || IsUnder(h, "/proc") || IsUnder(h, "/dev")) continue;
                hidden.Add(h);
                Add(MountKind.Hide, h);
            }
        }
        Add(MountKind.Dev, "/dev");
        if (mode == Hermetic)
        {
            foreach (var (p, target) in ResolvedReadonlyPaths(readonlyPaths))
            {
                if (privateDirs.Any(d => IsUnder(p, d)) || IsUnder(p, "/proc") || IsUnder(p, "/dev")) continue;
                Add(MountKind.ReadOnlyBind, p, target);
            }
        }
        Add(MountKind.Bind, workspaceRoot);
        if (mode == Hermetic)
        {
            foreach (var input in inputs.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (input != workspaceRoot) Add(MountKind.ReadOnlyBind, input, DirectorySymlinkTarget(input));
            }
        }
        return new FilesystemLayout(mode, mounts);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, ResolvedList> s_readonly = new(StringComparer.Ordinal);

    /// <summary>
    /// Directory modification times closer than this to the moment a list was resolved are not trusted: file times
    /// come from a clock that advances in ticks of a few milliseconds, so a change in the same tick would leave the
    /// time as it was. Such a list is resolved again on every run until its directories have been quiet this long.
    /// </summary>
    internal static readonly TimeSpan StampMargin = TimeSpan.FromSeconds(1);

    /// <summary>A resolved list and the modification time of every directory its resolution read.</summary>
    private sealed record ResolvedList((string Path, string? Target)[] Paths, (string Directory, DateTime Modified)[] Stamps, bool Trusted);

    /// <summary>
    /// <c>readonly_paths</c> resolved (parents' symlinks, existence, symlinks to directories), sorted: the costly part
    /// of a hermetic layout (about 0.5 ms for the default toolchain roots, a dozen path walks). A resolved list is kept
    /// per list and reused while every directory the resolution read (each path's parents, its resolved parents, and a
    /// symlink's target's parents) has the modification time it had: a path that appears, goes away, changes type or
    /// is re-pointed changes an entry of one of those directories, so the next run resolves the list again (for the
    /// default list that check is three stats: /, /etc, /usr). Hidden paths and inputs are never cached: they are
    /// resolved for every run.
    /// </summary>
    internal static (string Path, string? Target)[] ResolvedReadonlyPaths(IEnumerable<string> readonlyPaths)
    {
        var list = readonlyPaths as IReadOnlyCollection<string> ?? readonlyPaths.ToArray();
        var key = string.Join('\0', list);
        if (s_readonly.TryGetValue(key, out var cached) && cached.Trusted && cached.Stamps.All(st => Directory.GetLastWriteTimeUtc(st.Directory) == st.Modified))
            return cached.Paths;
        var resolvedAt = DateTime.UtcNow;
        var read = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var p in list)
        {
            AddParents(read, p);
            var resolved = Resolve(p);
            AddParents(read, resolved);
            if (new FileInfo(resolved).LinkTarget is { } target)
                AddParents(read, WorkspacePaths.RealPath(Path.GetFullPath(target, Path.GetDirectoryName(resolved) ?? "/")));
        }
        var stamps = read.Select(d => (d, Directory.GetLastWriteTimeUtc(d))).ToArray();
        var paths = list.Select(Resolve).Where(Exists).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Select(p => (p, DirectorySymlinkTarget(p))).ToArray();
        var trusted = stamps.All(st => st.Item2 < resolvedAt - StampMargin);
        if (s_readonly.Count > 64) s_readonly.Clear(); // requests with many distinct lists: stay small
        s_readonly[key] = new ResolvedList(paths, stamps, trusted);
        return paths;
    }

    /// <summary>Every directory above <paramref name="path"/> ("/usr/bin": "/usr" and "/").</summary>
    private static void AddParents(SortedSet<string> into, string path)
    {
        for (var d = Path.GetDirectoryName(path); !string.IsNullOrEmpty(d); d = Path.GetDirectoryName(d)) into.Add(d);
    }

    /// <summary>The launcher's <c>--root</c> and mount options for a run, or an empty list for <c>host</c>.</summary>
    public static List<string> LauncherArgs(string mode, string workspaceRoot, IEnumerable<string> inputs, IEnumerable<string> readonlyPaths, IEnumerable<string> hiddenPaths) =>
        LauncherArgs(Layout(mode, workspaceRoot, inputs, readonlyPaths, hiddenPaths));

    /// <summary>requiem-launch options for a layout (the launcher recreates a symlink to a directory as the symlink itself).</summary>
    public static List<string> LauncherArgs(FilesystemLayout layout)
    {
        var args = new List<string>();
        if (layout.IsHost) return args;
        args.AddRange(new[] { "--root", layout.Mode == Hermetic ? "tmpfs" : "ro-host" });
        foreach (var m in layout.Mounts)
        {
            args.Add(m.Kind switch
            {
                MountKind.Tmpfs => "--tmpfs",
                MountKind.Hide => "--hide",
                MountKind.Dev => "--dev",
                MountKind.Bind => "--bind",
                _ => "--ro-bind",
            });
            args.Add(m.Path);
        }
        return args;
    }

    /// <summary>
    /// bubblewrap options for the same layout, mount for mount: the host's root read-only (<c>workspace</c>) or bwrap's
    /// empty root made read-only at the end (<c>hermetic</c>); private /tmp and /var/tmp (mode 1777), hidden paths as
    /// empty tmpfs made read-only after the binds below them, bwrap's minimal /dev, the run's own /proc (bwrap makes
    /// /proc/sys and the other kernel knobs read-only), /sys/fs/cgroup masked as by the launcher, and a symlink to a
    /// directory recreated as the symlink. <c>host</c>: the host's tree as it is, with the run's own /proc and a
    /// read-only cgroupfs.
    /// </summary>
    public static List<string> BwrapArgs(FilesystemLayout layout)
    {
        if (layout.IsHost)
        {
            var host = new List<string> { "--dev-bind", "/", "/", "--proc", "/proc" };
            AddProcTunables(host);
            host.AddRange(new[] { "--ro-bind-try", "/sys/fs/cgroup", "/sys/fs/cgroup" });
            return host;
        }
        var args = new List<string>();
        if (layout.Mode != Hermetic) args.AddRange(new[] { "--ro-bind", "/", "/" });
        foreach (var m in layout.Mounts)
        {
            switch (m.Kind)
            {
                case MountKind.Tmpfs: args.AddRange(new[] { "--perms", "1777", "--tmpfs", m.Path }); break;
                case MountKind.Hide: args.AddRange(new[] { "--tmpfs", m.Path }); break;
                case MountKind.Dev: args.AddRange(new[] { "--dev", m.Path }); break;
                case MountKind.Bind: args.AddRange(new[] { "--bind", m.Path, m.Path }); break;
                default:
                    if (m.SymlinkTarget is { } target) args.AddRange(new[] { "--symlink", target, m.Path });
                    else args.AddRange(new[] { "--ro-bind", m.Path, m.Path });
                    break;
            }
        }
        args.AddRange(new[] { "--proc", "/proc" });
        AddProcTunables(args);
        if (layout.Mode != Hermetic && Directory.Exists("/sys/fs/cgroup"))
            args.AddRange(new[] { "--perms", "0555", "--tmpfs", "/sys/fs/cgroup", "--remount-ro", "/sys/fs/cgroup" });
        foreach (var m in layout.Mounts.Where(m => m.Kind == MountKind.Hide)) args.AddRange(new[] { "--remount-ro", m.Path });
        if (layout.Mode == Hermetic) args.AddRange(new[] { "--remount-ro", "/" });
        return args;
    }

    /// <summary>
    /// The kernel's writable knobs a uid-0 command without capabilities could still reach by file permissions alone
    /// (writing /proc/sys/kernel/hostname needs no capability), read-only as the launcher makes them: bwrap's own
    /// <c>--proc</c> covers only some of them on some versions.
    /// </summary>
    private static void AddProcTunables(List<string> args)
    {
        foreach (var p in new[] { "/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/acpi" })
            args.AddRange(new[] { "--ro-bind-try", p, p });
    }

    /// <summary>The link's target when <paramref name="path"/> is a symlink to a directory (such as /lib → usr/lib), else null.</summary>
    private static string? DirectorySymlinkTarget(string path)
    {
        var info = new FileInfo(path);
        return info.LinkTarget is { } target && Directory.Exists(path) ? target : null;
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

public enum MountKind
{
    /// <summary>An empty writable tmpfs (private /tmp, /var/tmp).</summary>
    Tmpfs,
    /// <summary>An empty tmpfs over a hidden path, read-only once the mounts below it are made.</summary>
    Hide,
    /// <summary>A minimal /dev.</summary>
    Dev,
    /// <summary>A read-write bind of the host path at the same path (the workspace).</summary>
    Bind,
    /// <summary>A read-only bind (readonly_paths, declared inputs).</summary>
    ReadOnlyBind,
}

/// <summary>One mount of a run's file-system view; <see cref="SymlinkTarget"/> is set for a symlink to a directory.</summary>
public sealed record FilesystemMount(MountKind Kind, string Path, string? SymlinkTarget);

/// <summary>The ordered mounts of one run's file-system view (<see cref="FilesystemView.Layout"/>).</summary>
public sealed record FilesystemLayout(string Mode, IReadOnlyList<FilesystemMount> Mounts)
{
    public bool IsHost => Mode == FilesystemView.Host;
}
