using System.Diagnostics;

namespace Requiem.Engine.Sandbox;

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
    /// <summary>util-linux setpriv, when the isolator runs it inside to drop every capability and set no_new_privs.</summary>
    public string? Setpriv { get; private set; }
    /// <summary>What the chosen isolator's probe observed (null off Linux).</summary>
    public IsolatorObservation? Observation { get; private set; }
    /// <summary>
    /// The command cannot undo its namespaces or reach the host's processes: a probe command run exactly as runs are
    /// launched had no capability in any set, no_new_privs, a /proc showing only its own PID namespace, and could not
    /// read the caller's /proc/PID/environ (<see cref="Isolation"/>).
    /// </summary>
    public bool NamespacesHold => Isolation is { Isolated: true };
    /// <summary>What the isolation probe command observed about itself (null when no PID namespace could be made).</summary>
    public IsolationObservation? Isolation => Observation?.Isolation;
    /// <summary>RLIMIT_NPROC binds (not root: root ignores it).</summary>
    public bool NprocRlimitBinds { get; private set; }
    /// <summary>A directory under which a per-run pids cgroup can be made (root only), or null.</summary>
    public string? PidsCgroupBase { get; private set; }
    public bool JobObjectsWork { get; private set; }
    /// <summary>What the Job Object isolator's probe observed (Windows only).</summary>
    public WindowsJobObservation? WindowsJob { get; private set; }
    public IReadOnlyList<string> Notes { get; private set; } = Array.Empty<string>();
    public IReadOnlyList<SandboxCapability> Capabilities { get; private set; } = Array.Empty<SandboxCapability>();
    public TimeSpan ProbeDuration { get; private set; }

    /// <summary>
    /// What isolates runs: "requiem-launch" (the native launcher: one exec, namespaces, mounts, seccomp and rlimits set
    /// with the kernel's own calls), else "bwrap" (bubblewrap: namespaces, the same file-system view and seccomp program),
    /// else "unshare" (util-linux, no file-system isolation or seccomp), or null when no PID namespace can be made.
    /// </summary>
    public string? Isolator => LinuxIsolator?.Name;

    /// <summary>The mechanism that launches runs and probe commands on Linux (null elsewhere).</summary>
    public LinuxIsolator? LinuxIsolator => Observation?.Isolator;

    public bool NetworkIsolationAvailable => Isolator is not null && Observation is { NetworkNamespace: true };

    /// <summary>rlimits can be applied before the command's first instruction (by requiem-launch or prlimit).</summary>
    public bool LimitsAvailable => Observation is { Limits: true };

    public bool ProcessLimitAvailable => PidsCgroupBase is not null || (LimitsAvailable && NprocRlimitBinds) || JobObjectsWork;

    public CapabilityStatus StatusOf(string control) => Capabilities.FirstOrDefault(c => c.Name == control)?.State ?? CapabilityStatus.Unsupported;

    public IReadOnlyList<string> Names(CapabilityStatus status) => Capabilities.Where(c => c.State == status).Select(c => c.Name).ToArray();

    /// <summary>A copy of this probe as a machine without network namespaces would report it (for tests of the strict/permissive paths).</summary>
    internal SandboxProbe WithoutNetworkIsolation()
    {
        var copy = (SandboxProbe)MemberwiseClone();
        copy.Observation = Observation is null ? null : Observation with { NetworkNamespace = false };
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

    /// <summary>
    /// Picks the isolator and lets it probe itself: requiem-launch when one is selected and works, else bubblewrap
    /// (<c>REQUIEM_BWRAP</c>, or found), else the unshare chain; then the per-run pids cgroup, and the capabilities as
    /// the chosen isolator's probe commands observed them.
    /// </summary>
    private static SandboxProbe ProbeLinux(Stopwatch sw, string? launcherCandidate)
    {
        var notes = new List<string>();
        var isRoot = Interop.Libc.Geteuid() == 0;
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh");
        var bwrap = BwrapCandidate();
        if (bwrap is not null && !File.Exists(bwrap)) { notes.Add($"bwrap not found at {bwrap} (REQUIEM_BWRAP)"); bwrap = null; }
        var unshare = Which("unshare", "/usr/bin/unshare", "/bin/unshare");
        var prlimit = Which("prlimit", "/usr/bin/prlimit", "/bin/prlimit");

        IsolatorObservation? observed = null;
        if (launcherCandidate is null) notes.Add("requiem-launch disabled (REQUIEM_LAUNCHER=none): using the external tool chain");
        else observed = LauncherIsolator.Probe(launcherCandidate, isRoot, notes);
        if (observed is not null) notes.Add("bwrap, unshare, prlimit and env were not probed: requiem-launch isolates runs by itself");
        else
        {
            if (bwrap is null)
                notes.Add(string.Equals(Environment.GetEnvironmentVariable("REQUIEM_BWRAP"), "none", StringComparison.OrdinalIgnoreCase)
                    ? "bwrap disabled (REQUIEM_BWRAP=none)"
                    : "bwrap (bubblewrap) not found: no file-system isolation or seccomp without requiem-launch");
            var tools = ToolChain.Find(notes);
            if (bwrap is not null && sh is not null) observed = BubblewrapIsolator.Probe(bwrap, sh, isRoot, tools, notes);
            observed ??= UnshareIsolator.Probe(unshare, sh, isRoot, tools, notes);
        }
        var isolatorImpl = observed.Isolator;
        var nprocBinds = observed.Limits && !isRoot;

        string? cgroup = null;
        if (isRoot && (isolatorImpl is LauncherIsolator || sh is not null))
        {
            var (_, refuse, allow) = isolatorImpl.PidsCgroupProbe(sh ?? "/bin/sh", "");
            cgroup = RunCgroup.FindBase(procs => ProbeCommand.Run(isolatorImpl.PidsCgroupProbe(sh ?? "/bin/sh", procs).Command, "/"), refuse, allow, notes);
        }

        var caps = Common().ToList();
        var isolator = isolatorImpl.Name;
        var isolation = observed.Isolation;
        var hold = isolation is { Isolated: true };
        var escape = "; but a probe command " + (isolation?.Describe() ?? "could not be observed") + ", so a root command could leave its namespaces or read the caller's memory";
        var dropped = hold ? "; probed: the command has no capabilities (bounding set empty, no_new_privs), sees only its own PID namespace in /proc and cannot read the caller's environment" : "";
        if (isolator is not null)
        {
            var (mechanism, detail) = isolatorImpl.TreeKillText;
            caps.Add(new SandboxCapability(Controls.ProcessTreeKill, hold ? CapabilityStatus.Enforced : CapabilityStatus.Partial, mechanism, detail + (hold ? dropped : escape)));
        }
        else
        {
            caps.Add(Processes.ProcessHost.Supported
                ? new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Partial, "process group",
                    "no PID namespace available: the command's process group is killed; a descendant that left it (setsid) escapes")
                : new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Partial, "descendant walk (/proc)",
                    "no PID namespace available: descendants are found by parent pid and killed; a double-forked daemon that reparented to init escapes"));
        }
        var netDropped = hold ? "; probed: no capabilities, so a root command can neither join another namespace nor bring an interface up" : "";
        caps.Add(isolator is not null && observed.NetworkNamespace
            ? new SandboxCapability(Controls.NetworkIsolation, hold ? CapabilityStatus.Enforced : CapabilityStatus.Partial, isolatorImpl.NetworkMechanism,
                "deny_network runs the command in an empty network namespace (loopback only, down); even 127.0.0.1 listeners outside are unreachable" + (hold ? netDropped : escape))
            : Unsupported(Controls.NetworkIsolation, "no working network namespace (" + (isolator ?? "no requiem-launch/bwrap/unshare") + ")"));
        if (observed.Limits)
        {
            var how = isolatorImpl.LimitsMechanism;
            caps.Add(new SandboxCapability(Controls.MemoryLimit, CapabilityStatus.Enforced, $"{how} (RLIMIT_AS)", "address-space limit set before exec: allocations beyond it fail"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, CapabilityStatus.Enforced, $"{how} (RLIMIT_CPU)", "CPU seconds, soft = hard: the kernel kills the process at the limit"));
            caps.Add(new SandboxCapability(Controls.OpenFilesLimit, CapabilityStatus.Enforced, $"{how} (RLIMIT_NOFILE)", "open descriptors per process"));
        }
        else
        {
            var why = isolatorImpl.LimitsMissing;
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
            caps.Add(new SandboxCapability(Controls.ProcessLimit, CapabilityStatus.Partial, isolatorImpl.NprocMechanism,
                "bounds forks, but counts every process of this user, not only the run's"));
        else
            caps.Add(Unsupported(Controls.ProcessLimit, isRoot ? "running as root (RLIMIT_NPROC does not bind root) and no writable pids cgroup" : "no rlimits available"));
        const string deniedCalls = "EPERM for mount, umount2, pivot_root, the new mount API, unshare, setns, clone with namespace flags, ptrace, process_vm_readv/writev, kexec_*, init/finit/delete_module, bpf, perf_event_open, keyctl, add_key, request_key, open_by_handle_at, reboot, swapon/swapoff, userfaultfd; probed: the command's status showed the filter and unshare(CLONE_NEWUSER) was refused";
        var arch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant();
        caps.Add(observed.Seccomp
            ? new SandboxCapability(Controls.SeccompBpf, CapabilityStatus.Enforced, isolatorImpl.SeccompMechanism(arch), deniedCalls)
            : Unsupported(Controls.SeccompBpf, isolatorImpl.SeccompMissing));
        var fsMechanism = isolatorImpl.FilesystemMechanism ?? "none";
        var noFsIsolation = isolatorImpl.NoFilesystemView;
        var fs = observed.Filesystem;
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
            Observation = observed,
            IsRoot = isRoot,
            Sh = sh,
            Bwrap = bwrap,
            Unshare = unshare,
            Prlimit = prlimit,
            Launcher = (isolatorImpl as LauncherIsolator)?.Path,
            Setpriv = isolatorImpl switch { BubblewrapIsolator b => b.Setpriv, UnshareIsolator u => u.Setpriv, _ => null },
            NprocRlimitBinds = nprocBinds,
            PidsCgroupBase = cgroup,
            Notes = notes,
            Capabilities = caps,
            ProbeDuration = sw.Elapsed,
        };
    }


    /// <summary>Kills whatever is left in a per-run cgroup and removes it (best effort, a few retries).</summary>
    public static void RemoveCgroup(string dir) => RunCgroup.Remove(dir);

    /// <summary>Windows: the Job Object isolator probes itself; the capabilities are what it observed.</summary>
    private static SandboxProbe ProbeWindows(Stopwatch sw)
    {
        var job = WindowsJobIsolator.Probe();
        var ok = job.JobObjects;
        var caps = Common().ToList();
        if (ok)
        {
            caps.Add(new SandboxCapability(Controls.JobObjects, CapabilityStatus.Enforced, "Job Object", "the process is created suspended, assigned to a job, then resumed"));
            caps.Add(new SandboxCapability(Controls.ProcessTreeKill, CapabilityStatus.Enforced, "Job Object KILL_ON_JOB_CLOSE", "closing or terminating the job kills every process in it"));
            caps.Add(new SandboxCapability(Controls.MemoryLimit, CapabilityStatus.Enforced, "Job Object JOB_OBJECT_LIMIT_PROCESS_MEMORY", "committed memory per process"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, CapabilityStatus.Enforced, "Job Object JOB_OBJECT_LIMIT_JOB_TIME", "user-mode CPU time of the whole job"));
            caps.Add(job.ProcessLimit
                ? new SandboxCapability(Controls.ProcessLimit, CapabilityStatus.Enforced, "Job Object JOB_OBJECT_LIMIT_ACTIVE_PROCESS", "active processes in the job; probed: with one allowed, the command could not start a child")
                : Unsupported(Controls.ProcessLimit, "the probe did not see the job's active-process limit refuse a process (see ProbeNotes)"));
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
        return new SandboxProbe
        {
            Platform = "windows", WindowsJob = job, JobObjectsWork = ok, Capabilities = caps, ProbeDuration = sw.Elapsed,
            Notes = ok && job.ProcessLimit ? Array.Empty<string>() : new[] { "Job Objects: " + job.Detail },
        };
    }

    internal static string? Which(string name, params string[] candidates) => ProbeCommand.Which(name, candidates);

    internal static uint Geteuid() => Interop.Libc.Geteuid();
}
