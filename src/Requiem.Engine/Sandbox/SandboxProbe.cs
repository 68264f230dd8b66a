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
    private static readonly Lazy<SandboxProbe> s_current = new(() => Run(), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The probe for this process (run on first use, then cached).</summary>
    public static SandboxProbe Current => s_current.Value;

    public string Platform { get; private init; } = "";
    public bool IsRoot { get; private init; }
    public string? Sh { get; private init; }
    public string? Bwrap { get; private init; }
    public string? Unshare { get; private init; }
    public string? Prlimit { get; private init; }
    public bool BwrapPidNamespace { get; private init; }
    public bool BwrapNetNamespace { get; private init; }
    public bool UnsharePidNamespace { get; private init; }
    public bool UnshareNetNamespace { get; private init; }
    /// <summary>True when unshare needs a user namespace (<c>-r</c>) because we are not root.</summary>
    public bool UnshareNeedsUserNs { get; private init; }
    public bool PrlimitWorks { get; private init; }
    /// <summary>RLIMIT_NPROC binds (not root: root ignores it).</summary>
    public bool NprocRlimitBinds { get; private init; }
    /// <summary>A directory under which a per-run pids cgroup can be made (root only), or null.</summary>
    public string? PidsCgroupBase { get; private init; }
    public bool JobObjectsWork { get; private init; }
    /// <summary>coreutils <c>env --default-signal=PIPE</c>, used to undo the SIGPIPE-ignored disposition the .NET host would pass on.</summary>
    public string? EnvDefaultSignal { get; private init; }
    public IReadOnlyList<string> Notes { get; private init; } = Array.Empty<string>();
    public IReadOnlyList<SandboxCapability> Capabilities { get; private init; } = Array.Empty<SandboxCapability>();
    public TimeSpan ProbeDuration { get; private init; }

    /// <summary>
    /// Which namespace tool isolates runs: "unshare" (util-linux; preferred because it starts in about a tenth of the
    /// time bwrap needs from a .NET host here, see docs/BENCH.md), "bwrap" when unshare cannot make a PID namespace, or null.
    /// </summary>
    public string? Isolator => UnsharePidNamespace ? "unshare" : BwrapPidNamespace ? "bwrap" : null;

    public bool NetworkIsolationAvailable => Isolator == "bwrap" ? BwrapNetNamespace : Isolator == "unshare" && UnshareNetNamespace;

    public bool ProcessLimitAvailable => PidsCgroupBase is not null || (PrlimitWorks && NprocRlimitBinds) || JobObjectsWork;

    public string StatusOf(string control) => Capabilities.FirstOrDefault(c => c.Name == control)?.Status ?? "unsupported";

    public IReadOnlyList<string> Names(string status) => Capabilities.Where(c => c.Status == status).Select(c => c.Name).ToArray();

    /// <summary>A copy of this probe as a machine without network namespaces would report it (for tests of the strict/permissive paths).</summary>
    internal SandboxProbe WithoutNetworkIsolation() => new()
    {
        Platform = Platform, IsRoot = IsRoot, Sh = Sh, Bwrap = Bwrap, Unshare = Unshare, Prlimit = Prlimit,
        BwrapPidNamespace = BwrapPidNamespace, BwrapNetNamespace = false, UnsharePidNamespace = UnsharePidNamespace,
        UnshareNetNamespace = false, UnshareNeedsUserNs = UnshareNeedsUserNs, PrlimitWorks = PrlimitWorks,
        NprocRlimitBinds = NprocRlimitBinds, PidsCgroupBase = PidsCgroupBase, JobObjectsWork = JobObjectsWork, Notes = Notes,
        EnvDefaultSignal = EnvDefaultSignal,
        Capabilities = Capabilities.Select(c => c.Name == Controls.NetworkIsolation ? Unsupported(c.Name, "simulated: no network namespace") : c).ToArray(),
        ProbeDuration = ProbeDuration,
    };

    /// <summary>Runs a fresh probe (tests use this; everyone else uses <see cref="Current"/>).</summary>
    public static SandboxProbe Run()
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
        return ProbeLinux(sw);
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

    private static SandboxProbe ProbeLinux(Stopwatch sw)
    {
        var notes = new List<string>();
        var isRoot = Geteuid() == 0;
        var sh = Which("sh", "/bin/sh", "/usr/bin/sh");
        var bwrap = Which("bwrap", "/usr/bin/bwrap", "/usr/local/bin/bwrap");
        var unshare = Which("unshare", "/usr/bin/unshare", "/bin/unshare");
        var prlimit = Which("prlimit", "/usr/bin/prlimit", "/bin/prlimit");
        var cat = Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";

        bool bwrapPid = false, bwrapNet = false, unsharePid = false, unshareNet = false, needUserNs = false, prOk = false, nprocBinds = false;
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
            var r = Exec(prlimit, new[] { "--as=1073741824", "--cpu=97", "--nofile=93", "--nproc=4093", "--", cat, "/proc/self/limits" });
            prOk = r.Ok && LimitIs(r.Out, "Max cpu time", "97") && LimitIs(r.Out, "Max open files", "93")
                   && LimitIs(r.Out, "Max address space", "1073741824") && LimitIs(r.Out, "Max processes", "4093");
            if (!prOk) notes.Add("prlimit did not apply limits: " + r.Describe());
            nprocBinds = prOk && !isRoot;
        }
        else notes.Add("prlimit (util-linux) not found");

        string? cgroup = null;
        if (isRoot && sh is not null) cgroup = ProbePidsCgroup(sh, notes);
        string? envDefault = null;
        if (Which("env", "/usr/bin/env", "/bin/env") is { } envTool && sh is not null)
        {
            // The probe itself runs from .NET, so SIGPIPE is ignored on entry: only a reset makes `yes | head` kill yes.
            var r = Exec(envTool, new[] { "--default-signal=PIPE", "--", sh, "-c", "grep -q '^SigIgn:.*' /proc/self/status && awk '/^SigIgn/ {print $2}' /proc/self/status" });
            if (r.Ok && ulong.TryParse(r.Out.Trim(), System.Globalization.NumberStyles.HexNumber, null, out var ign) && (ign & (1UL << 12)) == 0) envDefault = envTool;
            else notes.Add("env --default-signal=PIPE is not available: commands inherit SIGPIPE ignored from the .NET host (" + r.Describe() + ")");
        }

        var caps = Common().ToList();
        var isolator = unsharePid ? "unshare" : bwrapPid ? "bwrap" : null;
        caps.Add(isolator is not null
            ? new SandboxCapability(Controls.ProcessTreeKill, "enforced",
                isolator == "bwrap" ? "bwrap --unshare-pid --die-with-parent (PID namespace)" : "unshare --pid --fork --kill-child (PID namespace, sh as init)",
                "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included")
            : new SandboxCapability(Controls.ProcessTreeKill, "partial", "descendant walk (/proc)",
                "no PID namespace available: descendants are found by parent pid and killed; a double-forked daemon that reparented to init escapes"));
        var netOk = isolator == "bwrap" ? bwrapNet : isolator == "unshare" && unshareNet;
        caps.Add(netOk
            ? new SandboxCapability(Controls.NetworkIsolation, "enforced", isolator == "bwrap" ? "bwrap --unshare-net (network namespace)" : "unshare --net (network namespace)",
                "deny_network runs the command in an empty network namespace (loopback only, down); even 127.0.0.1 listeners outside are unreachable")
            : Unsupported(Controls.NetworkIsolation, "no working network namespace (" + (isolator ?? "no bwrap/unshare") + ")"));
        if (prOk)
        {
            caps.Add(new SandboxCapability(Controls.MemoryLimit, "enforced", "prlimit --as (RLIMIT_AS)", "address-space limit set before exec: allocations beyond it fail"));
            caps.Add(new SandboxCapability(Controls.CpuLimit, "enforced", "prlimit --cpu (RLIMIT_CPU)", "CPU seconds, soft = hard: the kernel kills the process at the limit"));
            caps.Add(new SandboxCapability(Controls.OpenFilesLimit, "enforced", "prlimit --nofile (RLIMIT_NOFILE)", "open descriptors per process"));
        }
        else
        {
            caps.Add(Unsupported(Controls.MemoryLimit, "prlimit unavailable"));
            caps.Add(Unsupported(Controls.CpuLimit, "prlimit unavailable"));
            caps.Add(Unsupported(Controls.OpenFilesLimit, "prlimit unavailable"));
        }
        if (cgroup is not null)
            caps.Add(new SandboxCapability(Controls.ProcessLimit, "enforced", "pids cgroup (pids.max)",
                "a per-run pids cgroup joined before exec; forks beyond max_processes fail"));
        else if (nprocBinds)
            caps.Add(new SandboxCapability(Controls.ProcessLimit, "partial", "prlimit --nproc (RLIMIT_NPROC)",
                "bounds forks, but counts every process of this user, not only the run's"));
        else
            caps.Add(Unsupported(Controls.ProcessLimit, isRoot ? "running as root (RLIMIT_NPROC does not bind root) and no writable pids cgroup" : "prlimit unavailable"));
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

    private static string? ProbePidsCgroup(string sh, List<string> notes)
    {
        foreach (var (root, own) in PidsHierarchies())
        {
            var baseDir = Path.Combine(root, own.TrimStart('/'), "requiem");
            var probe = Path.Combine(baseDir, "probe-" + Environment.ProcessId);
            try
            {
                Directory.CreateDirectory(probe);
                File.WriteAllText(Path.Combine(probe, "pids.max"), "1");
                var procs = Path.Combine(probe, "cgroup.procs");
                var limited = Exec(sh, new[] { "-c", "echo 0 > \"$0\" && (exit 0) && echo forked", procs });
                File.WriteAllText(Path.Combine(probe, "pids.max"), "8");
                var allowed = Exec(sh, new[] { "-c", "echo 0 > \"$0\" && (exit 0) && echo forked", procs });
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
        public string Describe() => $"exit {ExitCode}: {(Err.Length > 0 ? Err.Trim() : Out.Trim())}";
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
