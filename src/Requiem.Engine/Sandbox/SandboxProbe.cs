using System.Diagnostics;

namespace Requiem.Engine.Sandbox;

/// <summary>Control names used in results (<c>sandbox.enforced</c>), health and policy explanations.</summary>
public static class Controls
{
    public const string WorkspaceConfinement = "workspace_confinement";
    public const string CleanEnvironment = "clean_environment";
    public const string StdinClosed = "stdin_closed";
    public const string OutputLimit = "output_limit";
    public const string Timeout = "timeout";
    public const string ProcessTreeKill = "process_tree_kill";
    public const string MemoryLimit = "rlimit_memory";
    public const string CpuLimit = "rlimit_cpu";
    public const string OpenFilesLimit = "rlimit_open_files";
    public const string ProcessLimit = "process_limit";
    public const string NetworkIsolation = "network_isolation";
    public const string JobObjects = "job_objects";
    public const string SeccompBpf = "seccomp_bpf";
    public const string FilesystemIsolation = "filesystem_isolation";
}

/// <summary>One probed capability: status is <c>enforced</c>, <c>partial</c> or <c>unsupported</c>.</summary>
public sealed class SandboxCapability
{
    public SandboxCapability(string name, string status, string mechanism, string detail)
    {
        Name = name;
        Status = status;
        Mechanism = mechanism;
        Detail = detail;
    }

    public string Name { get; }
    public string Status { get; }
    public string Mechanism { get; }
    public string Detail { get; }

    public override string ToString() => $"{Name}: {Status} ({Mechanism})";
}

/// <summary>
/// What this machine can actually enforce, found by trying each mechanism once per process (a network namespace is
/// entered, a prlimit'ed command reads back its limits, a pids cgroup is made to refuse a fork). Nothing is declared.
/// </summary>
public sealed class SandboxProbe
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<SandboxProbe>> s_probes = new(StringComparer.Ordinal);

    /// <summary>
    /// The probe for the launcher currently selected (<see cref="LauncherCandidate"/>): run on first use, then cached
    /// for the life of the process, so changing <c>$env:REQUIEM_LAUNCHER</c> takes effect at the next run.
    /// </summary>
    public static SandboxProbe Current
    {
        get
        {
            var launcher = LauncherCandidate();
            return s_probes.GetOrAdd(launcher ?? "", _ => new Lazy<SandboxProbe>(() => Run(launcher), LazyThreadSafetyMode.ExecutionAndPublication)).Value;
        }
    }

    public string Platform { get; private set; } = "";
    public bool IsRoot { get; private set; }
    public string? Sh { get; private set; }
    public string? Bwrap { get; private set; }
    public string? Unshare { get; private set; }
    public string? Prlimit { get; private set; }
    /// <summary>The native launcher (requiem-launch, built from src/native) when it was found and its PID namespace works.</summary>
    public string? Launcher { get; private set; }
    /// <summary>requiem-launch needs <c>--userns</c> (a user namespace mapping the caller to itself) because we are not root.</summary>
    public bool LauncherNeedsUserNs { get; private set; }
    public bool LauncherNetNamespace { get; private set; }
    /// <summary>requiem-launch applied RLIMIT_AS/CPU/NOFILE/NPROC and the probe read them back.</summary>
    public bool LauncherLimits { get; private set; }
    /// <summary>deny_network runs join one held empty namespace (<see cref="SharedNetworkNamespace"/>) instead of making one each.</summary>
    public bool LauncherSharedNetns { get; private set; }
    /// <summary>
    /// The command cannot undo its namespaces: not root (a user namespace gives it no power over the host's), or root
    /// with CAP_SYS_ADMIN/CAP_NET_ADMIN dropped (requiem-launch itself, or setpriv in the tool chain) — probed.
    /// </summary>
    public bool NamespacesHold { get; private set; }
    /// <summary>util-linux setpriv, used in the tool chain to drop CAP_SYS_ADMIN/CAP_NET_ADMIN from root commands.</summary>
    public string? Setpriv { get; private set; }
    public bool BwrapPidNamespace { get; private set; }
    public bool BwrapNetNamespace { get; private set; }
    public bool UnsharePidNamespace { get; private set; }
    public bool UnshareNetNamespace { get; private set; }
    /// <summary>True when unshare needs a user namespace (<c>-r</c>) because we are not root.</summary>
    public bool UnshareNeedsUserNs { get; private set; }
    public bool PrlimitWorks { get; private set; }
    /// <summary>RLIMIT_NPROC binds (not root: root ignores it).</summary>
    public bool NprocRlimitBinds { get; private set; }
    /// <summary>A directory under which a per-run pids cgroup can be made (root only), or null.</summary>
    public string? PidsCgroupBase { get; private set; }
    public bool JobObjectsWork { get; private set; }
    /// <summary>coreutils <c>env --default-signal=PIPE</c>, used to undo the SIGPIPE-ignored disposition the .NET host would pass on.</summary>
    public string? EnvDefaultSignal { get; private set; }
    public IReadOnlyList<string> Notes { get; private set; } = Array.Empty<string>();
    public IReadOnlyList<SandboxCapability> Capabilities { get; private set; } = Array.Empty<SandboxCapability>();
    public TimeSpan ProbeDuration { get; private set; }

    /// <summary>
    /// What isolates runs: "requiem-launch" (the native launcher: one exec, namespaces and rlimits set with the
    /// kernel's own calls), else "unshare" (util-linux; about a tenth of bwrap's start time from a .NET host here,
    /// see docs/BENCH.md), else "bwrap", or null when no PID namespace can be made.
    /// </summary>
    public string? Isolator => Launcher is not null ? "requiem-launch" : UnsharePidNamespace ? "unshare" : BwrapPidNamespace ? "bwrap" : null;

    public bool NetworkIsolationAvailable => Isolator switch
    {
        "requiem-launch" => LauncherNetNamespace,
        "bwrap" => BwrapNetNamespace,
        "unshare" => UnshareNetNamespace,
        _ => false,
    };

    /// <summary>rlimits can be applied before the command's first instruction (by requiem-launch or prlimit).</summary>
    public bool LimitsAvailable => Isolator == "requiem-launch" ? LauncherLimits : PrlimitWorks;

    public bool ProcessLimitAvailable => PidsCgroupBase is not null || (LimitsAvailable && NprocRlimitBinds) || JobObjectsWork;

    public string StatusOf(string control) => Capabilities.FirstOrDefault(c => c.Name == control)?.Status ?? "unsupported";

    public IReadOnlyList<string> Names(string status) => Capabilities.Where(c => c.Status == status).Select(c => c.Name).ToArray();

    /// <summary>A copy of this probe as a machine without network namespaces would report it (for tests of the strict/permissive paths).</summary>
    internal SandboxProbe WithoutNetworkIsolation()
    {
        var copy = (SandboxProbe)MemberwiseClone();
        copy.BwrapNetNamespace = copy.UnshareNetNamespace = copy.LauncherNetNamespace = false;
        copy.Capabilities = Capabilities.Select(c => c.Name == Controls.NetworkIsolation ? Unsupported(c.Name, "simulated: no network namespace") : c).ToArray();
        return copy;
    }

    /// <summary>A copy that makes per-run pids cgroups under <paramref name="dir"/> (tests: a folder that is not a cgroup makes setup fail).</summary>
    internal SandboxProbe WithPidsCgroupBase(string dir)
    {
        var copy = (SandboxProbe)MemberwiseClone();
        copy.PidsCgroupBase = dir;
        return copy;
    }

    /// <summary>
    /// The launcher to use: <c>$REQUIEM_LAUNCHER</c> (a path, or <c>none</c> to use the tool chain), else
    /// <c>requiem-launch</c> next to Requiem.Engine.dll (present when the build found a C compiler).
    /// </summary>
    public static string? LauncherCandidate()
    {
        var configured = Environment.GetEnvironmentVariable("REQUIEM_LAUNCHER");
        if (string.Equals(configured, "none", StringComparison.OrdinalIgnoreCase)) return null;
        return string.IsNullOrEmpty(configured) ? s_builtLauncher : configured;
    }

    /// <summary>Where the build puts the launcher: next to Requiem.Engine.dll (looked up once, not on every run).</summary>
    private static readonly string? s_builtLauncher =
        Path.GetDirectoryName(typeof(SandboxProbe).Assembly.Location) is { Length: > 0 } dir ? Path.Combine(dir, "requiem-launch") : null;

    /// <summary>Runs a fresh probe (tests use this; everyone else uses <see cref="Current"/>).</summary>
    public static SandboxProbe Run() => Run(LauncherCandidate());

    /// <summary>Runs a fresh probe with the given launcher (null: probe and use the external tool chain only).</summary>
    public static SandboxProbe Run(string? launcher)
    {
        var sw = Stopwatch.StartNew();
        if (OperatingSystem.IsWindows()) return ProbeWindows(sw);
        if (!OperatingSystem.IsLinux())
        {
            var caps = Common().Concat(new[]
            {
                Unsupported(Controls.ProcessTreeKill, "no process-tree isolation on this OS"),
                Unsupported(Controls.MemoryLimit, "not implemented on this OS"),
                Unsupported(Controls.CpuLimit, "not implemented on this OS"),
                Unsupported(Controls.OpenFilesLimit, "not implemented on this OS"),
                Unsupported(Controls.ProcessLimit, "not implemented on this OS"),
                Unsupported(Controls.NetworkIsolation, "not implemented on this OS"),
            }).ToList();
            return new SandboxProbe { Platform = Environment.OSVersion.Platform.ToString(), Capabilities = caps, ProbeDuration = sw.Elapsed };
        }
        return ProbeLinux(sw, launcher);
    }

    private static IEnumerable<SandboxCapability> Common() => new[]
    {
        new SandboxCapability(Controls.WorkspaceConfinement, "enforced", "path resolution before the run",
            "cwd, inputs, outputs and relative commands must resolve inside workspace_root; '..', absolute paths and symlinks leading out are refused"),
        new SandboxCapability(Controls.CleanEnvironment, "enforced", "environment built from env_allowlist/env_denylist + request env",
            "nothing is inherited unless allowlisted; TZ=UTC, LC_ALL=C, LANG=C are fixed"),
        new SandboxCapability(Controls.StdinClosed, "enforced", "pipe closed at start", "stdin reads EOF unless the request gives stdin"),
        new SandboxCapability(Controls.OutputLimit, "enforced", "bounded capture", "bytes beyond max_output_bytes are read and discarded; memory stays flat"),
        new SandboxCapability(Controls.Timeout, "enforced", "engine timer", "timeout_ms, then the whole process tree is killed"),
    };

    private static SandboxCapability Unsupported(string name, string why) => new(name, "unsupported", "none", why);

    private static SandboxProbe ProbeLinux(Stopwatch sw, string? launcherCandidate)
    {
        var notes = new List<string>();
        var isRoot = Geteuid() == 0;
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh");
        var bwrap = Which("bwrap", "/usr/bin/bwrap", "/usr/local/bin/bwrap");
        var unshare = Which("unshare", "/usr/bin/unshare", "/bin/unshare");
        var prlimit = Which("prlimit", "/usr/bin/prlimit", "/bin/prlimit");
        var cat = Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";

        var launcher = ProbeLauncher(launcherCandidate, isRoot, cat, notes);
        bool bwrapPid = false, bwrapNet = false, unsharePid = false, unshareNet = false, needUserNs = false, prOk = false;
        string? envDefault = null, setpriv = null;
        if (launcher is not null)
        {
            notes.Add("bwrap, unshare, prlimit and env were not probed: requiem-launch isolates runs by itself");
        }
        else
        {
            ProbeToolChain(isRoot, sh, bwrap, unshare, prlimit, cat, notes,
                out bwrapPid, out bwrapNet, out unsharePid, out unshareNet, out needUserNs, out prOk, out envDefault);
            if (isRoot && unsharePid && !needUserNs) setpriv = ProbeSetpriv(cat, notes);
        }
        var limitsOk = launcher?.Limits ?? prOk;
        var nprocBinds = limitsOk && !isRoot;

        string? cgroup = null;
        if (isRoot && launcher is not null)
        {
            // Counted in the run's cgroup: the launcher, the namespace's init and sh (3); sh's subshell is the 4th.
            cgroup = ProbePidsCgroup(procs => Exec(launcher.Path, new[] { "--pidns", "--cgroup-procs", procs, "--", sh ?? "/bin/sh", "-c", "(exit 0) && echo forked" }),
                refuse: 3, allow: 4, notes);
        }
        else if (isRoot && sh is not null)
        {
            cgroup = ProbePidsCgroup(procs => Exec(sh, new[] { "-c", "echo 0 > \"$0\" && (exit 0) && echo forked", procs }), refuse: 1, allow: 8, notes);
        }

        var caps = Common().ToList();
        var isolator = launcher is not null ? "requiem-launch" : unsharePid ? "unshare" : bwrapPid ? "bwrap" : null;
        // A root command that keeps CAP_SYS_ADMIN can setns() back into the host's namespaces (seen here with unshare).
        var hold = isolator switch
        {
            "requiem-launch" => launcher!.UserNs || launcher.DropsCaps,
            "unshare" => needUserNs || setpriv is not null,
            "bwrap" => true, // bwrap gives the command no capabilities unless --cap-add is used
            _ => false,
        };
        const string escape = "; but the command runs as root with CAP_SYS_ADMIN and could join the host's namespaces (setpriv was not usable to drop it)";
        var dropped = isRoot && hold && isolator != "bwrap" ? "; CAP_SYS_ADMIN is dropped, so a root command cannot join another PID namespace" : "";
        caps.Add(isolator switch
        {
            "requiem-launch" => new SandboxCapability(Controls.ProcessTreeKill, hold ? "enforced" : "partial",
                "requiem-launch: unshare(2) CLONE_NEWPID, init bound to the launcher with PR_SET_PDEATHSIG",
                "the command runs as PID 2 of a fresh PID namespace; when its init exits or is killed every descendant dies, setsid escapees included" + (hold ? dropped : escape)),
            "bwrap" => new SandboxCapability(Controls.ProcessTreeKill, "enforced", "bwrap --unshare-pid --die-with-parent (PID namespace)",
                "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included"),
            "unshare" => new SandboxCapability(Controls.ProcessTreeKill, hold ? "enforced" : "partial",
                "unshare --pid --fork --kill-child (PID namespace, sh as init)" + (setpriv is not null ? ", setpriv" : ""),
                "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included" + (hold ? dropped : escape)),
            _ => new SandboxCapability(Controls.ProcessTreeKill, "partial", "descendant walk (/proc)",
                "no PID namespace available: descendants are found by parent pid and killed; a double-forked daemon that reparented to init escapes"),
        });
        var netOk = isolator switch { "requiem-launch" => launcher!.Net, "bwrap" => bwrapNet, "unshare" => unshareNet, _ => false };
        var netDropped = isRoot && hold && isolator != "bwrap" ? "; CAP_SYS_ADMIN and CAP_NET_ADMIN are dropped, so a root command can neither join another namespace nor bring an interface up" : "";
        caps.Add(netOk
            ? new SandboxCapability(Controls.NetworkIsolation, hold ? "enforced" : "partial",
                isolator switch
                {
                    "requiem-launch" => launcher!.SharedNetns
                        ? "requiem-launch: one held empty network namespace (unshare(2) CLONE_NEWNET), joined by inode with setns(2)"
                        : "requiem-launch: unshare(2) CLONE_NEWNET",
                    "bwrap" => "bwrap --unshare-net (network namespace)",
                    _ => "unshare --net (network namespace)" + (setpriv is not null ? ", setpriv" : ""),
                },
                "deny_network runs the command in an empty network namespace (loopback only, down); even 127.0.0.1 listeners outside are unreachable" + (hold ? netDropped : escape))
            : Unsupported(Controls.NetworkIsolation, "no working network namespace (" + (isolator ?? "no requiem-launch/bwrap/unshare") + ")"));
        if (limitsOk)
        {
            var how = launcher is not null ? "requiem-launch: setrlimit(2) in the command's process before execve" : "prlimit";
            caps.Add(new SandboxCapability(Controls.MemoryLimit, "enforced", $"{how} (RLIMIT_AS)", "address-space limit set before exec: allocations beyond it fail"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, "enforced", $"{how} (RLIMIT_CPU)", "CPU seconds, soft = hard: the kernel kills the process at the limit"));
            caps.Add(new SandboxCapability(Controls.OpenFilesLimit, "enforced", $"{how} (RLIMIT_NOFILE)", "open descriptors per process"));
        }
        else
        {
            var why = launcher is not null ? "requiem-launch could not apply rlimits" : "prlimit unavailable";
            caps.Add(Unsupported(Controls.MemoryLimit, why));
            caps.Add(Unsupported(Controls.CpuLimit, why));
            caps.Add(Unsupported(Controls.OpenFilesLimit, why));
        }
        if (cgroup is not null)
            caps.Add(new SandboxCapability(Controls.ProcessLimit, "enforced", "pids cgroup (pids.max)",
                "a per-run pids cgroup joined before exec; forks beyond max_processes fail"));
        else if (nprocBinds)
            caps.Add(new SandboxCapability(Controls.ProcessLimit, "partial", launcher is not null ? "requiem-launch: setrlimit(2) RLIMIT_NPROC" : "prlimit --nproc (RLIMIT_NPROC)",
                "bounds forks, but counts every process of this user, not only the run's"));
        else
            caps.Add(Unsupported(Controls.ProcessLimit, isRoot ? "running as root (RLIMIT_NPROC does not bind root) and no writable pids cgroup" : "no rlimits available"));
        caps.Add(Unsupported(Controls.SeccompBpf, "no syscall filter is installed"));
        caps.Add(Unsupported(Controls.FilesystemIsolation, "the command can read and write outside the workspace; only the request's own paths are confined"));

        return new SandboxProbe
        {
            Platform = "linux",
            IsRoot = isRoot,
            Sh = sh,
            Bwrap = bwrap,
            Unshare = unshare,
            Prlimit = prlimit,
            Launcher = launcher?.Path,
            LauncherNeedsUserNs = launcher?.UserNs ?? false,
            LauncherNetNamespace = launcher?.Net ?? false,
            LauncherLimits = launcher?.Limits ?? false,
            LauncherSharedNetns = launcher?.SharedNetns ?? false,
            NamespacesHold = hold,
            Setpriv = setpriv,
            BwrapPidNamespace = bwrapPid,
            BwrapNetNamespace = bwrapNet,
            UnsharePidNamespace = unsharePid,
            UnshareNetNamespace = unshareNet,
            UnshareNeedsUserNs = needUserNs,
            PrlimitWorks = prOk,
            NprocRlimitBinds = nprocBinds,
            PidsCgroupBase = cgroup,
            EnvDefaultSignal = envDefault,
            Notes = notes,
            Capabilities = caps,
            ProbeDuration = sw.Elapsed,
        };
    }

    private sealed record LauncherResult(string Path, bool UserNs, bool Net, bool SharedNetns, bool Limits, bool DropsCaps);

    /// <summary>
    /// Tries requiem-launch for real: the command must see itself as PID 2 with SIGPIPE at its default, only a
    /// loopback interface with --netns, and read back the rlimits it was given.
    /// </summary>
    private static LauncherResult? ProbeLauncher(string? path, bool isRoot, string cat, List<string> notes)
    {
        if (path is null)
        {
            notes.Add("requiem-launch disabled (REQUIEM_LAUNCHER=none): using the external tool chain");
            return null;
        }
        var file = LauncherFile.Check(path);
        if (!file.Usable)
        {
            notes.Add($"requiem-launch {file.Problem}: using the external tool chain. Fix: {file.Fix}");
            return null;
        }
        if (file.RestoredExecuteBit) notes.Add($"requiem-launch: restored the execute bit of {path} (an install from a package does not keep it)");
        foreach (var userNs in isRoot ? new[] { false, true } : new[] { true })
        {
            var pre = userNs ? new[] { "--userns" } : Array.Empty<string>();
            var r = Exec(path, pre.Concat(new[] { "--pidns", "--", cat, "/proc/self/status" }).ToArray());
            // /proc is the host's, so "Pid" is the host pid; NSpid ends with the pid in the innermost namespace.
            if (!(r.Ok && StatusField(r.Out, "NSpid")?.Split('\t', ' ').LastOrDefault() == "2" && SigPipeAtDefault(r.Out)))
            {
                notes.Add($"requiem-launch {(userNs ? "--userns " : "")}--pidns did not work: " + r.Describe());
                continue;
            }
            // As root, deny_network runs share one held namespace; otherwise (or if it cannot be held) each makes its own.
            var shared = userNs ? null : SharedNetworkNamespace.Get(path);
            var netArgs = shared is { } h
                ? new[] { "--join-netns", h.Path, "--netns-inode", h.Inode.ToString(System.Globalization.CultureInfo.InvariantCulture) }
                : new[] { "--netns" };
            var n = Exec(path, pre.Concat(new[] { "--pidns" }).Concat(netArgs).Concat(new[] { "--", cat, "/proc/self/net/dev" }).ToArray());
            var net = n.Ok && OnlyLoopback(n.Out);
            if (!net) notes.Add($"requiem-launch {string.Join(' ', netArgs)} did not isolate the network: " + n.Describe());
            if (!userNs && shared is null) notes.Add("requiem-launch --hold-netns did not work: deny_network runs make their own namespace");
            var dropsCaps = false;
            if (!userNs)
            {
                var c = Exec(path, new[] { "--pidns", "--netns", "--", cat, "/proc/self/status" });
                dropsCaps = c.Ok && LacksCapabilities(c.Out);
                if (!dropsCaps) notes.Add("requiem-launch did not drop CAP_SYS_ADMIN/CAP_NET_ADMIN: " + c.Describe());
            }
            var l = Exec(path, pre.Concat(new[] { "--pidns", "--as", ProbeAs, "--cpu", ProbeCpu, "--nofile", ProbeNofile, "--nproc", ProbeNproc, "--", cat, "/proc/self/limits" }).ToArray());
            var limits = l.Ok && ProbeLimitsReadBack(l.Out);
            if (!limits) notes.Add("requiem-launch did not apply rlimits: " + l.Describe());
            return new LauncherResult(path, userNs, net, net && shared is not null, limits, dropsCaps);
        }
        return null;
    }

    private const int CapNetAdmin = 12, CapSysAdmin = 21;

    /// <summary>CAP_SYS_ADMIN and CAP_NET_ADMIN are gone from the effective and bounding sets in a /proc/pid/status text.</summary>
    private static bool LacksCapabilities(string status)
    {
        const ulong mask = (1UL << CapNetAdmin) | (1UL << CapSysAdmin);
        return ulong.TryParse(StatusField(status, "CapEff"), System.Globalization.NumberStyles.HexNumber, null, out var eff)
               && ulong.TryParse(StatusField(status, "CapBnd"), System.Globalization.NumberStyles.HexNumber, null, out var bnd)
               && (eff & mask) == 0 && (bnd & mask) == 0;
    }

    /// <summary>setpriv that removes CAP_SYS_ADMIN/CAP_NET_ADMIN from a root command (tool chain only), or null.</summary>
    private static string? ProbeSetpriv(string cat, List<string> notes)
    {
        var setpriv = Which("setpriv", "/usr/bin/setpriv", "/bin/setpriv");
        if (setpriv is null)
        {
            notes.Add("setpriv (util-linux) not found: root commands keep CAP_SYS_ADMIN and could leave their namespaces");
            return null;
        }
        var r = Exec(setpriv, SetprivDropArgs.Append(cat).Append("/proc/self/status").ToArray());
        if (r.Ok && LacksCapabilities(r.Out)) return setpriv;
        notes.Add("setpriv did not drop CAP_SYS_ADMIN/CAP_NET_ADMIN: " + r.Describe());
        return null;
    }

    /// <summary>setpriv arguments that take CAP_SYS_ADMIN and CAP_NET_ADMIN away for good (inheritable and bounding sets).</summary>
    internal static readonly string[] SetprivDropArgs = { "--inh-caps=-sys_admin,-net_admin", "--bounding-set=-sys_admin,-net_admin", "--" };

    private static string? StatusField(string status, string name) =>
        status.Split('\n').Where(l => l.StartsWith(name + ":", StringComparison.Ordinal)).Select(l => l[(name.Length + 1)..].Trim()).FirstOrDefault();

    private static bool SigPipeAtDefault(string status) =>
        ulong.TryParse(StatusField(status, "SigIgn"), System.Globalization.NumberStyles.HexNumber, null, out var ign) && (ign & (1UL << 12)) == 0;

    /// <summary>The fallback: util-linux unshare (or bubblewrap), prlimit and coreutils env, each tried for real.</summary>
    private static void ProbeToolChain(bool isRoot, string? sh, string? bwrap, string? unshare, string? prlimit, string cat, List<string> notes,
        out bool bwrapPid, out bool bwrapNet, out bool unsharePid, out bool unshareNet, out bool needUserNs, out bool prOk, out string? envDefault)
    {
        bwrapPid = bwrapNet = unsharePid = unshareNet = needUserNs = prOk = false;
        envDefault = null;
        if (bwrap is not null && sh is not null)
        {
            var r = Exec(bwrap, new[] { "--dev-bind", "/", "/", "--unshare-pid", "--die-with-parent", "--new-session", "--", sh, "-c", "echo $$" });
            bwrapPid = r.Ok && r.Out.Trim() == "2";
            if (!bwrapPid) notes.Add("bwrap --unshare-pid did not work: " + r.Describe());
            if (bwrapPid)
            {
                var n = Exec(bwrap, new[] { "--dev-bind", "/", "/", "--unshare-pid", "--unshare-net", "--die-with-parent", "--", cat, "/proc/self/net/dev" });
                bwrapNet = n.Ok && OnlyLoopback(n.Out);
                if (!bwrapNet) notes.Add("bwrap --unshare-net did not isolate the network: " + n.Describe());
            }
        }
        else if (bwrap is null) notes.Add("bwrap (bubblewrap) not found");
        if (unshare is not null && sh is not null)
        {
            foreach (var userNs in isRoot ? new[] { false, true } : new[] { true })
            {
                var pre = userNs ? new[] { "-r" } : Array.Empty<string>();
                var r = Exec(unshare, pre.Concat(new[] { "--fork", "--pid", "--kill-child", "--", sh, "-c", "echo $$" }).ToArray());
                if (!(r.Ok && r.Out.Trim() == "1"))
                {
                    notes.Add($"unshare {(userNs ? "-r " : "")}--pid did not work: " + r.Describe());
                    continue;
                }
                unsharePid = true;
                needUserNs = userNs;
                var n = Exec(unshare, pre.Concat(new[] { "--fork", "--pid", "--kill-child", "--net", "--", cat, "/proc/self/net/dev" }).ToArray());
                unshareNet = n.Ok && OnlyLoopback(n.Out);
                if (!unshareNet) notes.Add("unshare --net did not isolate the network: " + n.Describe());
                break;
            }
        }
        else if (unshare is null) notes.Add("unshare (util-linux) not found");
        if (prlimit is not null)
        {
            var r = Exec(prlimit, new[] { "--as=" + ProbeAs, "--cpu=" + ProbeCpu, "--nofile=" + ProbeNofile, "--nproc=" + ProbeNproc, "--", cat, "/proc/self/limits" });
            prOk = r.Ok && ProbeLimitsReadBack(r.Out);
            if (!prOk) notes.Add("prlimit did not apply limits: " + r.Describe());
        }
        else notes.Add("prlimit (util-linux) not found");
        if (Which("env", "/usr/bin/env", "/bin/env") is { } envTool)
        {
            // The probe itself runs from .NET, so SIGPIPE is ignored on entry: only a reset makes `yes | head` kill yes.
            var r = Exec(envTool, new[] { "--default-signal=PIPE", "--", cat, "/proc/self/status" });
            if (r.Ok && SigPipeAtDefault(r.Out)) envDefault = envTool;
            else notes.Add("env --default-signal=PIPE is not available: commands inherit SIGPIPE ignored from the .NET host (" + r.Describe() + ")");
        }
    }

    /// <summary>
    /// Finds a pids cgroup hierarchy where a per-run cgroup can be made and really bounds forks: with pids.max =
    /// <paramref name="refuse"/> the probe command's fork must fail, with <paramref name="allow"/> it must succeed.
    /// </summary>
    private static string? ProbePidsCgroup(Func<string, ProbeRun> tryFork, int refuse, int allow, List<string> notes)
    {
        foreach (var (root, own) in PidsHierarchies())
        {
            var baseDir = Path.Combine(root, own.TrimStart('/'), "requiem");
            var probe = Path.Combine(baseDir, "probe-" + Environment.ProcessId);
            try
            {
                Directory.CreateDirectory(probe);
                var procs = Path.Combine(probe, "cgroup.procs");
                File.WriteAllText(Path.Combine(probe, "pids.max"), refuse.ToString(System.Globalization.CultureInfo.InvariantCulture));
                var limited = tryFork(procs);
                File.WriteAllText(Path.Combine(probe, "pids.max"), allow.ToString(System.Globalization.CultureInfo.InvariantCulture));
                var allowed = tryFork(procs);
                if (!limited.Out.Contains("forked") && allowed.Out.Contains("forked")) return baseDir;
                notes.Add($"pids cgroup at {baseDir} did not bound forks ({limited.Describe()} / {allowed.Describe()})");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                notes.Add($"pids cgroup at {baseDir} is not usable: {ex.Message}");
            }
            finally
            {
                RemoveCgroup(probe);
            }
        }
        return null;
    }

    private static IEnumerable<(string Root, string Own)> PidsHierarchies()
    {
        string[] lines;
        try { lines = File.ReadAllLines("/proc/self/cgroup"); }
        catch (IOException) { yield break; }
        foreach (var line in lines)
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            if (parts[1].Split(',').Contains("pids") && Directory.Exists("/sys/fs/cgroup/pids"))
                yield return ("/sys/fs/cgroup/pids", parts[2]);
        }
        // cgroup v2 at the root of the hierarchy (e.g. a container with its own cgroup namespace).
        const string v2 = "/sys/fs/cgroup";
        if (lines.Contains("0::/") && File.Exists(Path.Combine(v2, "cgroup.controllers")))
        {
            bool hasPids;
            try
            {
                hasPids = File.ReadAllText(Path.Combine(v2, "cgroup.controllers")).Split(' ', '\n').Contains("pids");
                if (hasPids && !File.ReadAllText(Path.Combine(v2, "cgroup.subtree_control")).Split(' ', '\n').Contains("pids"))
                    File.WriteAllText(Path.Combine(v2, "cgroup.subtree_control"), "+pids");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { hasPids = false; }
            if (hasPids) yield return (v2, "/");
        }
    }

    /// <summary>Kills whatever is left in a per-run cgroup and removes it (best effort, a few retries).</summary>
    public static void RemoveCgroup(string dir)
    {
        if (!Directory.Exists(dir)) return;
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                foreach (var line in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")))
                {
                    if (int.TryParse(line, out var pid)) Kill(pid, 9);
                }
                Directory.Delete(dir);
                return;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Thread.Sleep(2);
            }
        }
    }

    private static SandboxProbe ProbeWindows(Stopwatch sw)
    {
        var ok = OperatingSystem.IsWindows() && WindowsJob.Probe(out _);
        var caps = Common().ToList();
        if (ok)
        {
            caps.Add(new SandboxCapability(Controls.JobObjects, "enforced", "Job Object", "the process is created suspended, assigned to a job, then resumed"));
            caps.Add(new SandboxCapability(Controls.ProcessTreeKill, "enforced", "Job Object KILL_ON_JOB_CLOSE", "closing or terminating the job kills every process in it"));
            caps.Add(new SandboxCapability(Controls.MemoryLimit, "enforced", "Job Object JOB_OBJECT_LIMIT_PROCESS_MEMORY", "committed memory per process"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, "enforced", "Job Object JOB_OBJECT_LIMIT_JOB_TIME", "user-mode CPU time of the whole job"));
            caps.Add(new SandboxCapability(Controls.ProcessLimit, "enforced", "Job Object JOB_OBJECT_LIMIT_ACTIVE_PROCESS", "active processes in the job"));
        }
        else
        {
            foreach (var c in new[] { Controls.JobObjects, Controls.MemoryLimit, Controls.CpuLimit, Controls.ProcessLimit })
                caps.Add(Unsupported(c, "Job Objects could not be created"));
            caps.Add(new SandboxCapability(Controls.ProcessTreeKill, "partial", "Process.Kill(entireProcessTree)", "descendants found by parent id"));
        }
        caps.Add(Unsupported(Controls.OpenFilesLimit, "Windows has no per-process handle-count limit"));
        caps.Add(Unsupported(Controls.NetworkIsolation, "AppContainer network isolation is not implemented"));
        caps.Add(Unsupported(Controls.SeccompBpf, "not applicable on Windows"));
        caps.Add(Unsupported(Controls.FilesystemIsolation, "the command can read and write outside the workspace"));
        return new SandboxProbe { Platform = "windows", JobObjectsWork = ok, Capabilities = caps, ProbeDuration = sw.Elapsed };
    }

    private static bool OnlyLoopback(string netDev)
    {
        var ifaces = netDev.Split('\n').Skip(2).Select(l => l.Split(':')[0].Trim()).Where(s => s.Length > 0).ToList();
        return ifaces.Count > 0 && ifaces.All(i => i == "lo");
    }

    // Unusual values, so that reading them back proves they were applied and are not the machine's defaults.
    private const string ProbeAs = "1073741824", ProbeCpu = "97", ProbeNofile = "93", ProbeNproc = "4093";

    /// <summary>/proc/self/limits shows the four probe limits, soft = hard.</summary>
    private static bool ProbeLimitsReadBack(string limits) =>
        LimitIs(limits, "Max cpu time", ProbeCpu) && LimitIs(limits, "Max open files", ProbeNofile)
        && LimitIs(limits, "Max address space", ProbeAs) && LimitIs(limits, "Max processes", ProbeNproc);

    private static bool LimitIs(string limits, string name, string value) =>
        limits.Split('\n').Any(l => l.StartsWith(name, StringComparison.Ordinal) &&
                                    l[name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: >= 2 } f && f[0] == value && f[1] == value);

    internal static string? Which(string name, params string[] candidates)
    {
        foreach (var c in candidates) if (File.Exists(c)) return c;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    private readonly record struct ProbeRun(bool Ok, int ExitCode, string Out, string Err)
    {
        public string Describe()
        {
            var text = (Err.Length > 0 ? Err : Out).Trim();
            return $"exit {ExitCode}: {(text.Length > 300 ? text[..300] + "…" : text)}";
        }
    }

    private static ProbeRun Exec(string file, string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.StandardInput.Close();
            var outTask = p.StandardOutput.ReadToEndAsync();
            var errTask = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(5000))
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                return new ProbeRun(false, -1, "", "timed out");
            }
            p.WaitForExit();
            return new ProbeRun(p.ExitCode == 0, p.ExitCode, outTask.Result, errTask.Result);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return new ProbeRun(false, -1, "", ex.Message);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint geteuid();

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    internal static uint Geteuid() => OperatingSystem.IsWindows() ? 1u : geteuid();

    internal static void Kill(int pid, int sig)
    {
        if (!OperatingSystem.IsWindows()) kill(pid, sig);
    }
}
