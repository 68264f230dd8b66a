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

/// <summary>How far a control is in force on this machine, as the probe observed it.</summary>
public enum CapabilityStatus
{
    Enforced,
    /// <summary>In force with a stated gap (the probe saw what a command could still do).</summary>
    Partial,
    Unsupported,
}

/// <summary>One probed capability; <see cref="Status"/> is its status as the contract spells it.</summary>
public sealed class SandboxCapability
{
    public SandboxCapability(string name, CapabilityStatus state, string mechanism, string detail)
    {
        Name = name;
        State = state;
        Mechanism = mechanism;
        Detail = detail;
    }

    public string Name { get; }
    public CapabilityStatus State { get; }
    /// <summary><c>enforced</c>, <c>partial</c> or <c>unsupported</c> (health JSON, views).</summary>
    public string Status => ContractName(State);
    public string Mechanism { get; }
    public string Detail { get; }

    public static string ContractName(CapabilityStatus status) => status switch
    {
        CapabilityStatus.Enforced => "enforced",
        CapabilityStatus.Partial => "partial",
        _ => "unsupported",
    };

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
    /// for the life of the process, so changing <c>$env:REQUIEM_LAUNCHER</c> or <c>$env:REQUIEM_BWRAP</c> takes effect at the next run.
    /// </summary>
    public static SandboxProbe Current
    {
        get
        {
            var launcher = LauncherCandidate();
            var bwrap = Environment.GetEnvironmentVariable("REQUIEM_BWRAP") ?? "";
            return s_probes.GetOrAdd((launcher ?? "") + "\n" + bwrap, _ => new Lazy<SandboxProbe>(() => Run(launcher), LazyThreadSafetyMode.ExecutionAndPublication)).Value;
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
    /// The command cannot undo its namespaces or reach the host's processes: a probe command run exactly as runs are
    /// launched had no capability in any set, no_new_privs, a /proc showing only its own PID namespace, and could not
    /// read the caller's /proc/PID/environ (<see cref="Isolation"/>).
    /// </summary>
    public bool NamespacesHold { get; private set; }
    /// <summary>What the isolation probe command observed about itself (null when no PID namespace could be made).</summary>
    public IsolationObservation? Isolation { get; private set; }
    /// <summary>util-linux setpriv, used in the tool chain to drop every capability and set no_new_privs.</summary>
    public string? Setpriv { get; private set; }
    /// <summary>util-linux mount, used by the tool chain's namespace init to make /proc/sys and /sys/fs/cgroup read-only.</summary>
    public string? Mount { get; private set; }
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
    /// What isolates runs: "requiem-launch" (the native launcher: one exec, namespaces, mounts, seccomp and rlimits set
    /// with the kernel's own calls), else "bwrap" (bubblewrap: namespaces, the same file-system view and seccomp program,
    /// setpriv inside), else "unshare" (util-linux, no file-system isolation or seccomp), or null when no PID namespace
    /// can be made.
    /// </summary>
    public string? Isolator => LinuxIsolator?.Name;

    /// <summary>The mechanism that launches runs and probe commands on Linux (null elsewhere).</summary>
    public LinuxIsolator? LinuxIsolator { get; private set; }

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

    public CapabilityStatus StatusOf(string control) => Capabilities.FirstOrDefault(c => c.Name == control)?.State ?? CapabilityStatus.Unsupported;

    public IReadOnlyList<string> Names(CapabilityStatus status) => Capabilities.Where(c => c.State == status).Select(c => c.Name).ToArray();

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

    /// <summary>
    /// bubblewrap to probe when there is no launcher: <c>$REQUIEM_BWRAP</c> (a path, or <c>none</c> to leave bwrap out),
    /// else <c>bwrap</c> from /usr/bin, /usr/local/bin or PATH.
    /// </summary>
    public static string? BwrapCandidate()
    {
        var configured = Environment.GetEnvironmentVariable("REQUIEM_BWRAP");
        if (string.Equals(configured, "none", StringComparison.OrdinalIgnoreCase)) return null;
        return string.IsNullOrEmpty(configured) ? Which("bwrap", "/usr/bin/bwrap", "/usr/local/bin/bwrap") : configured;
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
                Unsupported(Controls.WorkspaceConfinement, "not implemented on this OS: the command can write outside its workspace"),
                Unsupported(Controls.FilesystemIsolation, "not implemented on this OS"),
            }).ToList();
            return new SandboxProbe { Platform = Environment.OSVersion.Platform.ToString(), Capabilities = caps, ProbeDuration = sw.Elapsed };
        }
        return ProbeLinux(sw, launcher);
    }

    private static IEnumerable<SandboxCapability> Common() => new[]
    {
        new SandboxCapability(Controls.CleanEnvironment, CapabilityStatus.Enforced, "environment built from env_allowlist/env_denylist + request env",
            "nothing is inherited unless allowlisted; TZ=UTC, LC_ALL=C, LANG=C are fixed"),
        new SandboxCapability(Controls.StdinClosed, CapabilityStatus.Enforced, "pipe closed at start", "stdin reads EOF unless the request gives stdin"),
        new SandboxCapability(Controls.OutputLimit, CapabilityStatus.Enforced, "bounded capture", "bytes beyond max_output_bytes are read and discarded; memory stays flat"),
        new SandboxCapability(Controls.Timeout, CapabilityStatus.Enforced, "engine timer", "timeout_ms, then the whole process tree is killed"),
    };

    private static SandboxCapability Unsupported(string name, string why) => new(name, CapabilityStatus.Unsupported, "none", why);

    private static SandboxProbe ProbeLinux(Stopwatch sw, string? launcherCandidate)
    {
        var notes = new List<string>();
        var isRoot = Interop.Libc.Geteuid() == 0;
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh");
        var bwrap = BwrapCandidate();
        if (bwrap is not null && !File.Exists(bwrap)) { notes.Add($"bwrap not found at {bwrap} (REQUIEM_BWRAP)"); bwrap = null; }
        var unshare = Which("unshare", "/usr/bin/unshare", "/bin/unshare");
        var prlimit = Which("prlimit", "/usr/bin/prlimit", "/bin/prlimit");
        var cat = Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";

        var launcher = ProbeLauncher(launcherCandidate, isRoot, cat, notes);
        bool bwrapPid = false, bwrapNet = false, unsharePid = false, unshareNet = false, needUserNs = false, prOk = false;
        string? envDefault = null, setpriv = null, mount = null;
        LinuxIsolator isolatorImpl;
        IsolationObservation? isolation;
        FilesystemObservation? fs = null;
        var seccomp = false;
        if (launcher is not null)
        {
            notes.Add("bwrap, unshare, prlimit and env were not probed: requiem-launch isolates runs by itself");
            (isolatorImpl, isolation, fs, seccomp) = (launcher.Isolator, launcher.Isolation, launcher.Filesystem, launcher.Seccomp);
        }
        else
        {
            ProbeToolChain(isRoot, sh, bwrap, unshare, prlimit, cat, notes,
                out bwrapPid, out bwrapNet, out unsharePid, out unshareNet, out needUserNs, out prOk, out envDefault);
            if (bwrapPid)
            {
                setpriv = ProbeSetprivInBwrap(bwrap!, cat, notes);
                // bwrap takes the program on a descriptor, which the engine's process host opens in bwrap's process.
                var program = Processes.ProcessHost.Supported ? SeccompFilter.File : null;
                if (program is null) notes.Add($"no seccomp program for bwrap on {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}");
                var bw = new BubblewrapIsolator(bwrap!, sh) { Setpriv = setpriv, Prlimit = prOk ? prlimit : null, EnvDefaultSignal = envDefault, SeccompProgram = program };
                isolatorImpl = bw;
                // What a command launched exactly as runs are could do, observed (not assumed from the mechanism).
                isolation = ObserveIsolation(bw, notes, "bwrap");
                fs = ProbeFilesystem(bw, notes);
                seccomp = program is not null && ProbeSeccomp(bw, notes);
            }
            else
            {
                if (unsharePid) setpriv = ProbeSetpriv(cat, needUserNs ? unshare : null, notes);
                if (unsharePid) mount = Which("mount", "/usr/bin/mount", "/bin/mount");
                if (unsharePid && mount is null) notes.Add("mount (util-linux) not found: /proc/sys and /sys/fs/cgroup stay writable for a root command");
                isolatorImpl = new UnshareIsolator(unsharePid ? unshare : null, sh)
                {
                    UserNamespace = needUserNs, Mount = mount, Setpriv = setpriv, Prlimit = prOk ? prlimit : null, EnvDefaultSignal = envDefault,
                };
                isolation = unsharePid ? ObserveIsolation(isolatorImpl, notes, "the tool chain") : null;
            }
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
        var isolator = isolatorImpl.Name;
        var hold = isolation is { Isolated: true };
        var escape = "; but a probe command " + (isolation?.Describe() ?? "could not be observed") + ", so a root command could leave its namespaces or read the caller's memory";
        var dropped = hold ? "; probed: the command has no capabilities (bounding set empty, no_new_privs), sees only its own PID namespace in /proc and cannot read the caller's environment" : "";
        caps.Add(isolator switch
        {
            "requiem-launch" => new SandboxCapability(Controls.ProcessTreeKill, hold ? CapabilityStatus.Enforced : CapabilityStatus.Partial,
                "requiem-launch: unshare(2) CLONE_NEWPID|CLONE_NEWNS (own /proc), init bound to the launcher with PR_SET_PDEATHSIG, every capability dropped",
                "the command runs as PID 2 of a fresh PID namespace; when its init exits or is killed every descendant dies, setsid escapees included" + (hold ? dropped : escape)),
            "bwrap" => new SandboxCapability(Controls.ProcessTreeKill, hold ? CapabilityStatus.Enforced : CapabilityStatus.Partial,
                "bwrap --unshare-pid --die-with-parent (PID namespace with its own /proc)" + (setpriv is not null ? ", setpriv" : ", --cap-drop ALL"),
                "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included" + (hold ? dropped : escape)),
            "unshare" => new SandboxCapability(Controls.ProcessTreeKill, hold ? CapabilityStatus.Enforced : CapabilityStatus.Partial,
                "unshare --pid --fork --mount-proc --kill-child (PID namespace with its own /proc, sh as init)" + (setpriv is not null ? ", setpriv" : ""),
                "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included" + (hold ? dropped : escape)),
            _ => Processes.ProcessHost.Supported
                ? new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Partial, "process group",
                    "no PID namespace available: the command's process group is killed; a descendant that left it (setsid) escapes")
                : new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Partial, "descendant walk (/proc)",
                    "no PID namespace available: descendants are found by parent pid and killed; a double-forked daemon that reparented to init escapes"),
        });
        var netOk = isolator switch { "requiem-launch" => launcher!.Net, "bwrap" => bwrapNet, "unshare" => unshareNet, _ => false };
        var netDropped = hold ? "; probed: no capabilities, so a root command can neither join another namespace nor bring an interface up" : "";
        caps.Add(netOk
            ? new SandboxCapability(Controls.NetworkIsolation, hold ? CapabilityStatus.Enforced : CapabilityStatus.Partial,
                isolator switch
                {
                    "requiem-launch" => launcher!.SharedNetns
                        ? "requiem-launch: one held empty network namespace (unshare(2) CLONE_NEWNET), joined by inode with setns(2)"
                        : "requiem-launch: unshare(2) CLONE_NEWNET",
                    "bwrap" => "bwrap --unshare-net (network namespace)" + (setpriv is not null ? ", setpriv" : ""),
                    _ => "unshare --net (network namespace)" + (setpriv is not null ? ", setpriv" : ""),
                },
                "deny_network runs the command in an empty network namespace (loopback only, down); even 127.0.0.1 listeners outside are unreachable" + (hold ? netDropped : escape))
            : Unsupported(Controls.NetworkIsolation, "no working network namespace (" + (isolator ?? "no requiem-launch/bwrap/unshare") + ")"));
        if (limitsOk)
        {
            var how = launcher is not null ? "requiem-launch: setrlimit(2) in the command's process before execve" : "prlimit";
            caps.Add(new SandboxCapability(Controls.MemoryLimit, CapabilityStatus.Enforced, $"{how} (RLIMIT_AS)", "address-space limit set before exec: allocations beyond it fail"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, CapabilityStatus.Enforced, $"{how} (RLIMIT_CPU)", "CPU seconds, soft = hard: the kernel kills the process at the limit"));
            caps.Add(new SandboxCapability(Controls.OpenFilesLimit, CapabilityStatus.Enforced, $"{how} (RLIMIT_NOFILE)", "open descriptors per process"));
        }
        else
        {
            var why = launcher is not null ? "requiem-launch could not apply rlimits" : "prlimit unavailable";
            caps.Add(Unsupported(Controls.MemoryLimit, why));
            caps.Add(Unsupported(Controls.CpuLimit, why));
            caps.Add(Unsupported(Controls.OpenFilesLimit, why));
        }
        if (cgroup is not null && isolation is { Isolated: true, CgroupWritable: false })
            caps.Add(new SandboxCapability(Controls.ProcessLimit, CapabilityStatus.Enforced, "pids cgroup (pids.max)",
                "a per-run pids cgroup joined before exec; forks beyond max_processes fail; probed: the command sees no writable cgroup file system, so it can neither raise pids.max nor leave its cgroup"));
        else if (cgroup is not null)
            caps.Add(new SandboxCapability(Controls.ProcessLimit, CapabilityStatus.Partial, "pids cgroup (pids.max)",
                "a per-run pids cgroup joined before exec bounds forks, but a probe command " + (isolation?.Describe() ?? "could not be observed") + ", so a root command could raise its pids.max or leave its cgroup"));
        else if (nprocBinds)
            caps.Add(new SandboxCapability(Controls.ProcessLimit, CapabilityStatus.Partial, launcher is not null ? "requiem-launch: setrlimit(2) RLIMIT_NPROC" : "prlimit --nproc (RLIMIT_NPROC)",
                "bounds forks, but counts every process of this user, not only the run's"));
        else
            caps.Add(Unsupported(Controls.ProcessLimit, isRoot ? "running as root (RLIMIT_NPROC does not bind root) and no writable pids cgroup" : "no rlimits available"));
        const string deniedCalls = "EPERM for mount, umount2, pivot_root, the new mount API, unshare, setns, clone with namespace flags, ptrace, process_vm_readv/writev, kexec_*, init/finit/delete_module, bpf, perf_event_open, keyctl, add_key, request_key, open_by_handle_at, reboot, swapon/swapoff, userfaultfd; probed: the command's status showed the filter and unshare(CLONE_NEWUSER) was refused";
        var arch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant();
        caps.Add(seccomp
            ? new SandboxCapability(Controls.SeccompBpf, CapabilityStatus.Enforced, isolator == "bwrap"
                    ? $"bwrap --seccomp: requiem-launch's seccomp-bpf program ({arch}, architecture checked in the filter), built by the engine"
                    : $"requiem-launch --seccomp: seccomp-bpf filter ({arch}, architecture checked in the filter)",
                deniedCalls)
            : Unsupported(Controls.SeccompBpf, isolator switch
            {
                "requiem-launch" => "the launcher could not install its filter (an architecture other than x86_64/aarch64, or a kernel without seccomp; see ProbeNotes)",
                "bwrap" => "bwrap could not install the filter (an architecture other than x86_64/aarch64, or a kernel without seccomp; see ProbeNotes)",
                _ => "no system-call filter with the unshare tool chain (install bubblewrap, or build requiem-launch)",
            }));
        var fsMechanism = isolator == "bwrap"
            ? "bwrap: a new root (the host's read-only, or an empty tmpfs), --ro-bind/--bind/--tmpfs/--dev/--proc in the mount namespace"
            : "requiem-launch: mount namespace, a new root (the host's read-only, or an empty tmpfs), bind mounts, pivot_root, old root detached";
        var noFsIsolation = isolator is "requiem-launch" or "bwrap" ? null : "no file-system isolation with the unshare tool chain (install bubblewrap, or build requiem-launch)";
        caps.Add(fs is { Confined: true }
            ? new SandboxCapability(Controls.WorkspaceConfinement, CapabilityStatus.Enforced, fsMechanism,
                "probed: a command could write its workspace but not /, /etc or /usr (read-only), and its /tmp was private; cwd, inputs and outputs must also resolve inside workspace_root")
            : Unsupported(Controls.WorkspaceConfinement, noFsIsolation is not null
                ? noFsIsolation + ": the command can write outside its workspace (only the request's own paths are checked)"
                : "the probe command could write outside its workspace or the mounts could not be made (see ProbeNotes)"));
        caps.Add(fs is { Confined: true, Isolated: true }
            ? new SandboxCapability(Controls.FilesystemIsolation, CapabilityStatus.Enforced, fsMechanism,
                "probed: in workspace mode the hidden paths were empty; in hermetic mode /root, /home, /opt, /var/lib, /etc/hostname, /etc/shadow and the caller's home did not exist, and mounting failed")
            : Unsupported(Controls.FilesystemIsolation, noFsIsolation is not null
                ? noFsIsolation + ": the command sees the host's files"
                : "the probe command saw undeclared host files or the mounts could not be made (see ProbeNotes)"));

        return new SandboxProbe
        {
            Platform = "linux",
            LinuxIsolator = isolatorImpl,
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
            Isolation = isolation,
            Setpriv = setpriv,
            Mount = mount,
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

    private sealed record LauncherResult(LauncherIsolator Isolator, bool Net, IsolationObservation? Isolation, FilesystemObservation Filesystem, bool Seccomp)
    {
        public string Path => Isolator.Path;
        public bool UserNs => Isolator.UserNamespace;
        public bool SharedNetns => Isolator.SharedNetns;
        public bool Limits => Isolator.Limits;
    }

    /// <summary>
    /// The isolator's seccomp, tried: the filter must show in /proc/self/status and refuse unshare(CLONE_NEWUSER), which
    /// the dropped capabilities alone would allow (an unprivileged user namespace), so the refusal is the filter's.
    /// </summary>
    private static bool ProbeSeccomp(LinuxIsolator isolator, List<string> notes)
    {
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh") ?? "/bin/sh";
        var unshare = Which("unshare", "/usr/bin/unshare", "/bin/unshare");
        const string script = "grep '^Seccomp:' /proc/self/status; if [ -n \"$0\" ] && \"$0\" -U true 2>/dev/null; then echo userns-made; fi; echo probe=done";
        var r = Exec(isolator.Build(new LaunchSpec { Command = sh, Argv = new[] { "-c", script, unshare ?? "" }, WorkingDirectory = "/", Seccomp = true }), "/");
        var ok = r.Out.Contains("probe=done", StringComparison.Ordinal) && StatusField(r.Out, "Seccomp") == "2"
                 && unshare is not null && !r.Out.Contains("userns-made", StringComparison.Ordinal);
        if (!ok) notes.Add($"{isolator.Name} seccomp: " + (unshare is null ? "unshare (util-linux) not found to try the filter; " : "") + r.Describe());
        return ok;
    }

    /// <summary>What the file-system probe saw: writes confined to the workspace (and a private /tmp); nothing undeclared visible.</summary>
    private sealed record FilesystemObservation(bool Confined, bool Isolated);

    /// <summary>
    /// Runs a probe command in workspace and in hermetic mode, built by the isolator from <see cref="FilesystemView.Layout"/>
    /// exactly as runs are: it tries to write /, /etc and /usr, looks for a file in the host's /tmp, lists the hidden paths, looks
    /// for undeclared host paths, and tries to mount; the host is then checked for anything it managed to write.
    /// </summary>
    private static FilesystemObservation ProbeFilesystem(LinuxIsolator isolator, List<string> notes)
    {
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh") ?? "/bin/sh";
        var tag = "requiem-probe-" + Guid.NewGuid().ToString("n");
        var dir = Directory.CreateTempSubdirectory("requiem-fsprobe-");
        var hostMarker = Path.Combine(Path.GetTempPath(), tag + "-marker");
        var strays = new[] { "/" + tag, "/etc/" + tag, "/usr/" + tag, Path.Combine(Path.GetTempPath(), tag + "-inner") };
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (string.IsNullOrEmpty(home) || home == "/") home = "/nonexistent-home";
        try
        {
            File.WriteAllText(hostMarker, "");
            var ws = WorkspacePaths.RealPath(dir.FullName);
            string common = "cd \"$0\" || exit 3; "
                + $"for f in /{tag} /etc/{tag} /usr/{tag}; do (: > \"$f\") 2>/dev/null && echo \"wrote-outside $f\"; done; "
                + "(: > \"$0/inside\") 2>/dev/null && echo wrote-inside; "
                + "[ -e \"$1\" ] && echo host-tmp-visible; "
                + $"(: > /tmp/{tag}-inner) 2>/dev/null || echo tmp-not-writable; "
                + "(mount -t tmpfs requiem /tmp) 2>/dev/null && echo mounted; (mount -o remount,rw /) 2>/dev/null && echo remounted; ";
            var workspaceScript = common
                + "for d in /root /home \"$2\"; do if [ -d \"$d\" ] && [ -n \"$(ls -A \"$d\" 2>/dev/null)\" ]; then echo \"hidden-visible $d\"; fi; done; echo probe=done";
            var hermeticScript = common
                + "for p in /root /home /opt /srv /var/lib /etc/hostname /etc/shadow \"$2\"; do [ -e \"$p\" ] && echo \"visible $p\"; done; echo probe=done";
            ProbeRun Run(string mode, string script) => Exec(isolator.Build(new LaunchSpec
            {
                Command = sh,
                Argv = new[] { "-c", script, ws, hostMarker, home },
                WorkingDirectory = ws,
                Filesystem = FilesystemView.Layout(mode, ws, Array.Empty<string>(), FilesystemView.DefaultReadonlyPaths, FilesystemView.DefaultHiddenPaths),
            }), ws);
            var w = Run(FilesystemView.Workspace, workspaceScript);
            var h = Run(FilesystemView.Hermetic, hermeticScript);
            var leaked = strays.Where(File.Exists).ToArray();
            static bool Clean(ProbeRun r) => r.Out.Contains("probe=done", StringComparison.Ordinal) && r.Out.Contains("wrote-inside", StringComparison.Ordinal)
                && !r.Out.Contains("wrote-outside", StringComparison.Ordinal) && !r.Out.Contains("host-tmp-visible", StringComparison.Ordinal)
                && !r.Out.Contains("tmp-not-writable", StringComparison.Ordinal) && !r.Out.Contains("mounted", StringComparison.Ordinal);
            var confined = Clean(w) && leaked.Length == 0;
            var isolated = confined && Clean(h) && !w.Out.Contains("hidden-visible", StringComparison.Ordinal) && !h.Out.Contains("visible ", StringComparison.Ordinal);
            if (!confined || !isolated)
                notes.Add($"{isolator.Name} file-system probe: workspace mode: " + w.Describe() + "; hermetic mode: " + h.Describe()
                          + (leaked.Length > 0 ? "; written on the host: " + string.Join(", ", leaked) : ""));
            return new FilesystemObservation(confined, isolated);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            notes.Add($"{isolator.Name} file-system probe could not run: " + ex.Message);
            return new FilesystemObservation(false, false);
        }
        finally
        {
            foreach (var f in strays.Append(hostMarker))
            {
                try { File.Delete(f); } catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            }
            try { dir.Delete(recursive: true); } catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
    }

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
            var l = Exec(path, pre.Concat(new[] { "--pidns", "--as", ProbeAs, "--cpu", ProbeCpu, "--nofile", ProbeNofile, "--nproc", ProbeNproc, "--", cat, "/proc/self/limits" }).ToArray());
            var limits = l.Ok && ProbeLimitsReadBack(l.Out);
            if (!limits) notes.Add("requiem-launch did not apply rlimits: " + l.Describe());
            var isolator = new LauncherIsolator(path, userNs) { SharedNetns = net && shared is not null, Limits = limits };
            var isolation = ObserveIsolation(isolator, notes, "requiem-launch");
            var fs = ProbeFilesystem(isolator, notes);
            var seccomp = ProbeSeccomp(isolator, notes);
            return new LauncherResult(isolator, net, isolation, fs, seccomp);
        }
        return null;
    }

    /// <summary>A capability set in /proc/pid/status that is all zero.</summary>
    private static bool NoCapabilities(string status, string field) =>
        ulong.TryParse(StatusField(status, field), System.Globalization.NumberStyles.HexNumber, null, out var v) && v == 0;

    /// <summary>setpriv that takes every capability away for good and sets no_new_privs (tool chain only), or null.</summary>
    /// <remarks>Not root, it is tried where runs use it: inside <c>unshare -r</c>'s user namespace (outside it, dropping needs CAP_SETPCAP).</remarks>
    private static string? ProbeSetpriv(string cat, string? userNsUnshare, List<string> notes)
    {
        var setpriv = Which("setpriv", "/usr/bin/setpriv", "/bin/setpriv");
        if (setpriv is null)
        {
            notes.Add("setpriv (util-linux) not found: commands keep their capabilities and could leave their namespaces");
            return null;
        }
        var args = LinuxIsolator.SetprivDropArgs.Append(cat).Append("/proc/self/status");
        var r = userNsUnshare is null
            ? Exec(setpriv, args.ToArray())
            : Exec(userNsUnshare, new[] { "-r", "--", setpriv }.Concat(args).ToArray());
        if (r.Ok && NoCapabilities(r.Out, "CapBnd") && NoCapabilities(r.Out, "CapEff") && StatusField(r.Out, "NoNewPrivs") == "1") return setpriv;
        notes.Add("setpriv did not drop every capability: " + r.Describe());
        return null;
    }

    /// <summary>setpriv as bwrap runs it (inside, after bwrap's own set-up), tried: every capability set empty and no_new_privs.</summary>
    private static string? ProbeSetprivInBwrap(string bwrap, string cat, List<string> notes)
    {
        var setpriv = Which("setpriv", "/usr/bin/setpriv", "/bin/setpriv");
        if (setpriv is null)
        {
            notes.Add("setpriv (util-linux) not found: bwrap runs with --cap-drop ALL, which leaves a root command its bounding set");
            return null;
        }
        var r = Exec(bwrap, new[] { "--dev-bind", "/", "/", "--unshare-pid", "--die-with-parent", "--", setpriv }.Concat(LinuxIsolator.SetprivDropArgs).Concat(new[] { cat, "/proc/self/status" }).ToArray());
        if (r.Ok && NoCapabilities(r.Out, "CapBnd") && NoCapabilities(r.Out, "CapEff") && StatusField(r.Out, "NoNewPrivs") == "1") return setpriv;
        notes.Add("setpriv inside bwrap did not drop every capability: " + r.Describe());
        return null;
    }

    /// <summary>
    /// What a root command could do to get out, tried for real: the probe shell reports its capability sets and
    /// no_new_privs, how many processes its /proc shows, whether the caller's pid is visible and its environment
    /// readable, and whether any cgroup file under /sys/fs/cgroup opens for writing.
    /// </summary>
    internal const string IsolationScript =
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status; "
        + "echo \"pids=$(ls /proc | grep -c '^[0-9]')\"; "
        + "if [ -e /proc/$0 ]; then echo host_pid=visible; fi; "
        + "if cat /proc/$0/environ >/dev/null 2>&1; then echo host_environ=readable; fi; "
        + "if (: >> /proc/sys/kernel/hostname) 2>/dev/null; then echo proc_sys=writable; fi; "
        + "for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/*/cgroup.procs; do "
        + "if [ -f \"$f\" ] && (: >> \"$f\") 2>/dev/null; then echo cgroup=writable; break; fi; done; echo probe=done";

    private static IsolationObservation? ObserveIsolation(LinuxIsolator isolator, List<string> notes, string what)
    {
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh") ?? "/bin/sh";
        var r = Exec(isolator.Build(new LaunchSpec
        {
            Command = sh,
            Argv = new[] { "-c", IsolationScript, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            WorkingDirectory = "/",
        }), "/");
        if (!r.Out.Contains("probe=done", StringComparison.Ordinal))
        {
            notes.Add($"{what}: the isolation probe command did not run: " + r.Describe());
            return null;
        }
        var o = new IsolationObservation(
            CapabilitiesDropped: new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }.All(f => NoCapabilities(r.Out, f)),
            NoNewPrivs: StatusField(r.Out, "NoNewPrivs") == "1",
            VisibleProcesses: int.TryParse(StatusField(r.Out, "pids"), out var n) ? n : -1,
            HostPidVisible: r.Out.Contains("host_pid=visible", StringComparison.Ordinal),
            HostEnvironReadable: r.Out.Contains("host_environ=readable", StringComparison.Ordinal),
            CgroupWritable: r.Out.Contains("cgroup=writable", StringComparison.Ordinal),
            ProcSysWritable: r.Out.Contains("proc_sys=writable", StringComparison.Ordinal));
        if (!o.Isolated) notes.Add($"{what}: the isolation probe command {o.Describe()}");
        return o;
    }

    private static string? StatusField(string status, string name) =>
        status.Split('\n').Where(l => l.StartsWith(name + ":", StringComparison.Ordinal) || l.StartsWith(name + "=", StringComparison.Ordinal))
            .Select(l => l[(name.Length + 1)..].Trim()).FirstOrDefault();

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
        else if (bwrap is null)
        {
            notes.Add(string.Equals(Environment.GetEnvironmentVariable("REQUIEM_BWRAP"), "none", StringComparison.OrdinalIgnoreCase)
                ? "bwrap disabled (REQUIEM_BWRAP=none)"
                : "bwrap (bubblewrap) not found: no file-system isolation or seccomp without requiem-launch");
        }
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
        if (Processes.ProcessHost.Supported)
        {
            // Runs and probes are started with every signal at its default disposition (posix_spawn SETSIGDEF).
            notes.Add("SIGPIPE is reset by the engine's process host (posix_spawn), so env is not needed in the chain");
        }
        else if (Which("env", "/usr/bin/env", "/bin/env") is { } envTool)
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
    public static void RemoveCgroup(string dir) => RunCgroup.Remove(dir);

    private static SandboxProbe ProbeWindows(Stopwatch sw)
    {
        var ok = OperatingSystem.IsWindows() && WindowsJob.Probe(out _);
        var caps = Common().ToList();
        if (ok)
        {
            caps.Add(new SandboxCapability(Controls.JobObjects, CapabilityStatus.Enforced, "Job Object", "the process is created suspended, assigned to a job, then resumed"));
            caps.Add(new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Enforced, "Job Object KILL_ON_JOB_CLOSE", "closing or terminating the job kills every process in it"));
            caps.Add(new SandboxCapability(Controls.MemoryLimit, CapabilityStatus.Enforced, "Job Object JOB_OBJECT_LIMIT_PROCESS_MEMORY", "committed memory per process"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, CapabilityStatus.Enforced, "Job Object JOB_OBJECT_LIMIT_JOB_TIME", "user-mode CPU time of the whole job"));
            caps.Add(new SandboxCapability(Controls.ProcessLimit, CapabilityStatus.Enforced, "Job Object JOB_OBJECT_LIMIT_ACTIVE_PROCESS", "active processes in the job"));
        }
        else
        {
            foreach (var c in new[] { Controls.JobObjects, Controls.MemoryLimit, Controls.CpuLimit, Controls.ProcessLimit })
                caps.Add(Unsupported(c, "Job Objects could not be created"));
            caps.Add(new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Partial, "Process.Kill(entireProcessTree)", "descendants found by parent id"));
        }
        caps.Add(Unsupported(Controls.OpenFilesLimit, "Windows has no per-process handle-count limit"));
        caps.Add(Unsupported(Controls.NetworkIsolation, "AppContainer network isolation is not implemented"));
        caps.Add(Unsupported(Controls.SeccompBpf, "not applicable on Windows"));
        caps.Add(Unsupported(Controls.FilesystemIsolation, "the command can read and write outside the workspace"));
        caps.Add(Unsupported(Controls.WorkspaceConfinement, "the command can write outside its workspace (only the request's own paths are checked)"));
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

    private static ProbeRun Exec(LaunchCommand command, string workingDirectory) => Exec(command.File, command.Args.ToArray(), workingDirectory, command.Files);

    /// <summary>Runs a probe command as runs are started (the process host on Linux), with a 5 s limit.</summary>
    private static ProbeRun Exec(string file, string[] args, string? workingDirectory = null, IReadOnlyList<(int Fd, string Path)>? files = null)
    {
        if (Processes.ProcessHost.Supported) return ExecHosted(file, args, workingDirectory, files ?? Array.Empty<(int, string)>());
        if (files is { Count: > 0 }) return new ProbeRun(false, -1, "", "descriptors can only be passed by the process host");
        return ExecPortable(file, args, workingDirectory);
    }

    private static ProbeRun ExecHosted(string file, string[] args, string? workingDirectory, IReadOnlyList<(int Fd, string Path)> files)
    {
        Processes.HostedProcess p;
        try
        {
            var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>().Select(e => $"{e.Key}={e.Value}").ToArray();
            p = Processes.ProcessHost.Start(new Processes.ProcessSpec
            {
                Argv = new[] { file }.Concat(args).ToArray(), Environment = env, WorkingDirectory = workingDirectory, StdinPipe = false, ReadOnlyFiles = files,
            });
        }
        catch (Processes.ProcessStartException ex)
        {
            return new ProbeRun(false, -1, "", ex.Message);
        }
        using (p)
        {
            var outTask = Bench.ProcessMeasure.ReadAllAsync(p.Stdout);
            var errTask = Bench.ProcessMeasure.ReadAllAsync(p.Stderr);
            var timedOut = 0;
            using var timer = new Timer(_ => { if (p.KillGroup()) Volatile.Write(ref timedOut, 1); }, null, 5000, Timeout.Infinite);
            var exit = p.WaitForExit();
            timer.Dispose();
            if (!Task.WaitAll(new Task[] { outTask, errTask }, TimeSpan.FromSeconds(2))) p.KillGroup();
            if (Volatile.Read(ref timedOut) == 1) return new ProbeRun(false, -1, "", "timed out");
            var stdout = outTask.IsCompletedSuccessfully ? System.Text.Encoding.UTF8.GetString(outTask.Result) : "";
            var stderr = errTask.IsCompletedSuccessfully ? System.Text.Encoding.UTF8.GetString(errTask.Result) : "";
            return new ProbeRun(exit.ExitCode == 0, exit.ExitCode, stdout, stderr);
        }
    }

    private static ProbeRun ExecPortable(string file, string[] args, string? workingDirectory)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
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

    internal static uint Geteuid() => Interop.Libc.Geteuid();
}

/// <summary>What the isolation probe command (<see cref="SandboxProbe.IsolationScript"/>) observed about itself.</summary>
public sealed record IsolationObservation(bool CapabilitiesDropped, bool NoNewPrivs, int VisibleProcesses, bool HostPidVisible, bool HostEnvironReadable, bool CgroupWritable,
    bool ProcSysWritable = false)
{
    /// <summary>
    /// No capability, no_new_privs, only its own PID namespace in /proc (init, the probe shell and its children), nothing
    /// of the caller's, and the kernel's tunables read-only (a uid-0 command needs no capability to set the hostname).
    /// </summary>
    public bool Isolated => CapabilitiesDropped && NoNewPrivs && VisibleProcesses is > 0 and <= 8 && !HostPidVisible && !HostEnvironReadable && !ProcSysWritable;

    public string Describe()
    {
        var seen = new List<string>();
        if (!CapabilitiesDropped) seen.Add("kept capabilities (some set, the bounding set included, was not empty)");
        if (!NoNewPrivs) seen.Add("ran without no_new_privs");
        if (VisibleProcesses is <= 0 or > 8) seen.Add($"saw {VisibleProcesses} processes in /proc");
        if (HostPidVisible) seen.Add("saw the caller's pid");
        if (HostEnvironReadable) seen.Add("read the caller's environment");
        if (CgroupWritable) seen.Add("could open a cgroup file for writing");
        if (ProcSysWritable) seen.Add("could open /proc/sys/kernel/hostname for writing");
        return seen.Count == 0 ? "was isolated" : string.Join(", ", seen);
    }
}
