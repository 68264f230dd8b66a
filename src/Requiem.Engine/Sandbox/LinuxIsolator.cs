using System.Globalization;

namespace Requiem.Engine.Sandbox;

/// <summary>What one launch asks of an isolator: the command, its file-system view and the controls to apply.</summary>
public sealed record LaunchSpec
{
    public required string Command { get; init; }
    public IReadOnlyList<string> Argv { get; init; } = Array.Empty<string>();
    public required string WorkingDirectory { get; init; }
    /// <summary>The mounts to make (<see cref="FilesystemView.Layout"/>); null or host: the host's tree.</summary>
    public FilesystemLayout? Filesystem { get; init; }
    public bool Seccomp { get; init; }
    public bool DenyNetwork { get; init; }
    /// <summary>The run's pids cgroup (<see cref="RunCgroup.Procs"/>), joined before the command starts.</summary>
    public string? CgroupProcs { get; init; }
    public long? MaxMemoryBytes { get; init; }
    public long? MaxCpuSeconds { get; init; }
    public long? MaxOpenFiles { get; init; }
    /// <summary>RLIMIT_NPROC (only where it binds and no pids cgroup is used).</summary>
    public long? MaxProcessesRlimit { get; init; }
    /// <summary>The job's active-process limit (Windows Job Objects).</summary>
    public long? MaxActiveProcesses { get; init; }
}

/// <summary>A program and its arguments, ready to start, and files to open read-only at given descriptors in it.</summary>
public sealed record LaunchCommand(string File, IReadOnlyList<string> Args)
{
    public IReadOnlyList<(int Fd, string Path)> Files { get; init; } = Array.Empty<(int, string)>();
}

/// <summary>
/// One Linux isolation mechanism (requiem-launch, bubblewrap, the unshare/prlimit/setpriv chain). Each builds the
/// launch of a run and of every probe command with the same <see cref="Build"/>, so the health probe tests exactly
/// what runs: each type's static <c>Probe</c> tries candidate configurations through <see cref="Build"/> and returns the
/// configured isolator with what it observed (<see cref="IsolatorObservation"/>); the checks every isolator shares
/// (isolation, file-system view, seccomp) are the methods below. Each type also names its own mechanisms for health.
/// </summary>
public abstract class LinuxIsolator : Isolator
{
    /// <summary>Runs the command line <see cref="Build"/> makes with the engine's process host.</summary>
    public override Processes.ISupervisedProcess Start(LaunchSpec spec, Processes.SupervisedCommand command)
    {
        var c = Build(spec);
        return Processes.ProcessSupervisor.Start(command with { Argv = new[] { c.File }.Concat(c.Args).ToArray(), ReadOnlyFiles = c.Files });
    }

    /// <summary>Processes of the isolator itself that sit in a run's pids cgroup (added to max_processes).</summary>
    public abstract int CgroupOverhead { get; }

    public abstract LaunchCommand Build(LaunchSpec spec);

    /// <summary>The exit status and message by which the isolator says it could not set up the sandbox (the command did not run).</summary>
    public virtual bool IsSetupFailure(int exitCode, string stderrHead) => false;

    /// <summary>prlimit's options for the spec's limits (empty when there are none).</summary>
    protected static List<string> PrlimitOptions(LaunchSpec spec)
    {
        var limits = new List<string>();
        void Add(string option, long? value)
        {
            if (value is { } v) limits.Add(option + "=" + v.ToString(CultureInfo.InvariantCulture));
        }
        Add("--as", spec.MaxMemoryBytes);
        Add("--cpu", spec.MaxCpuSeconds);
        Add("--nofile", spec.MaxOpenFiles);
        Add("--nproc", spec.MaxProcessesRlimit);
        return limits;
    }

    /// <summary>setpriv arguments that take every capability away for good (all sets, bounding included) and set no_new_privs.</summary>
    internal static readonly string[] SetprivDropArgs = { "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--" };

    /// <summary>The chain of tools that runs inside the isolation, in the command's process: prlimit, setpriv, env, the command.</summary>
    protected static void AddToolChainTail(List<string> chain, LaunchSpec spec, string? prlimit, string? setpriv, string? envDefaultSignal)
    {
        var limits = PrlimitOptions(spec);
        if (prlimit is not null && limits.Count > 0)
        {
            chain.Add(prlimit);
            chain.AddRange(limits);
            chain.Add("--");
        }
        if (setpriv is not null)
        {
            chain.Add(setpriv);
            chain.AddRange(SetprivDropArgs);
        }
        if (envDefaultSignal is not null) chain.AddRange(new[] { envDefaultSignal, "--default-signal=PIPE", "--" });
        chain.Add(spec.Command);
        chain.AddRange(spec.Argv);
    }

    protected static LaunchCommand ToCommand(List<string> chain) => new(chain[0], chain.Skip(1).ToList());

    // ---- What health says about the mechanism (the capabilities are built from these by SandboxProbe) ----

    /// <summary>process_tree_kill's mechanism and what it does (before the probed part of the detail).</summary>
    internal abstract (string Mechanism, string Detail) TreeKillText { get; }

    internal abstract string NetworkMechanism { get; }

    /// <summary>How the rlimits are applied (the RLIMIT name follows in parentheses).</summary>
    internal virtual string LimitsMechanism => "prlimit";

    internal virtual string LimitsMissing => "prlimit unavailable";

    internal virtual string NprocMechanism => "prlimit --nproc (RLIMIT_NPROC)";

    internal abstract string SeccompMechanism(string architecture);

    internal abstract string SeccompMissing { get; }

    /// <summary>The mounts of the file-system view; null: this isolator has none.</summary>
    internal virtual string? FilesystemMechanism => null;

    /// <summary>Why there is no file-system view (null when the isolator has one and only the probe failed).</summary>
    internal virtual string? NoFilesystemView => null;

    // ---- Probing: every probe command is built by Build, exactly as runs are ----

    /// <summary>Runs a probe command built from <paramref name="spec"/>.</summary>
    internal ProbeRun Try(LaunchSpec spec) => ProbeCommand.Run(Build(spec), spec.WorkingDirectory);

    /// <summary>
    /// The fork probe of a per-run pids cgroup: a command that joins <c>cgroup.procs</c> and forks once, and the
    /// pids.max values that must refuse and allow that fork (the processes counted before it differ per isolator).
    /// </summary>
    internal virtual (LaunchCommand Command, int Refuse, int Allow) PidsCgroupProbe(string sh, string procs) =>
        (new LaunchCommand(sh, new[] { "-c", "echo 0 > \"$0\" && (exit 0) && echo forked", procs }), 1, 8);

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

    internal IsolationObservation? ObserveIsolation(List<string> notes, string what)
    {
        var r = Try(new LaunchSpec
        {
            Command = ProbeCommand.Sh,
            Argv = new[] { "-c", IsolationScript, Environment.ProcessId.ToString(CultureInfo.InvariantCulture) },
            WorkingDirectory = "/",
        });
        if (!r.Out.Contains("probe=done", StringComparison.Ordinal))
        {
            notes.Add($"{what}: the isolation probe command did not run: " + r.Describe());
            return null;
        }
        var o = new IsolationObservation(
            CapabilitiesDropped: new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }.All(f => ProbeCommand.NoCapabilities(r.Out, f)),
            NoNewPrivs: ProbeCommand.StatusField(r.Out, "NoNewPrivs") == "1",
            VisibleProcesses: int.TryParse(ProbeCommand.StatusField(r.Out, "pids"), out var n) ? n : -1,
            HostPidVisible: r.Out.Contains("host_pid=visible", StringComparison.Ordinal),
            HostEnvironReadable: r.Out.Contains("host_environ=readable", StringComparison.Ordinal),
            CgroupWritable: r.Out.Contains("cgroup=writable", StringComparison.Ordinal),
            ProcSysWritable: r.Out.Contains("proc_sys=writable", StringComparison.Ordinal));
        if (!o.Isolated) notes.Add($"{what}: the isolation probe command {o.Describe()}");
        return o;
    }

    /// <summary>
    /// The isolator's seccomp, tried: the filter must show in /proc/self/status and refuse unshare(CLONE_NEWUSER), which
    /// the dropped capabilities alone would allow (an unprivileged user namespace), so the refusal is the filter's.
    /// </summary>
    internal bool ObserveSeccomp(List<string> notes)
    {
        var unshare = ProbeCommand.Which("unshare", "/usr/bin/unshare", "/bin/unshare");
        const string script = "grep '^Seccomp:' /proc/self/status; if [ -n \"$0\" ] && \"$0\" -U true 2>/dev/null; then echo userns-made; fi; echo probe=done";
        var r = Try(new LaunchSpec { Command = ProbeCommand.Sh, Argv = new[] { "-c", script, unshare ?? "" }, WorkingDirectory = "/", Seccomp = true });
        var ok = r.Out.Contains("probe=done", StringComparison.Ordinal) && ProbeCommand.StatusField(r.Out, "Seccomp") == "2"
                 && unshare is not null && !r.Out.Contains("userns-made", StringComparison.Ordinal);
        if (!ok) notes.Add($"{Name} seccomp: " + (unshare is null ? "unshare (util-linux) not found to try the filter; " : "") + r.Describe());
        return ok;
    }

    /// <summary>
    /// Runs a probe command in workspace and in hermetic mode, built from <see cref="FilesystemView.Layout"/> exactly as
    /// runs are: it tries to write /, /etc and /usr, looks for a file in the host's /tmp, lists the hidden paths, looks
    /// for undeclared host paths, and tries to mount; the host is then checked for anything it managed to write.
    /// </summary>
    internal FilesystemObservation ObserveFilesystem(List<string> notes)
    {
        var sh = ProbeCommand.Sh;
        var tag = "requiem-probe-" + Guid.NewGuid().ToString("n");
        var dir = Directory.CreateTempSubdirectory("requiem-fsprobe-");
        var hostMarker = System.IO.Path.Combine(System.IO.Path.GetTempPath(), tag + "-marker");
        var strays = new[] { "/" + tag, "/etc/" + tag, "/usr/" + tag, System.IO.Path.Combine(System.IO.Path.GetTempPath(), tag + "-inner") };
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
            ProbeRun Run(string mode, string script) => Try(new LaunchSpec
            {
                Command = sh,
                Argv = new[] { "-c", script, ws, hostMarker, home },
                WorkingDirectory = ws,
                Filesystem = FilesystemView.Layout(mode, ws, Array.Empty<string>(), FilesystemView.DefaultReadonlyPaths, FilesystemView.DefaultHiddenPaths),
            });
            var w = Run(FilesystemView.Workspace, workspaceScript);
            var h = Run(FilesystemView.Hermetic, hermeticScript);
            var leaked = strays.Where(File.Exists).ToArray();
            static bool Clean(ProbeRun r) => r.Out.Contains("probe=done", StringComparison.Ordinal) && r.Out.Contains("wrote-inside", StringComparison.Ordinal)
                && !r.Out.Contains("wrote-outside", StringComparison.Ordinal) && !r.Out.Contains("host-tmp-visible", StringComparison.Ordinal)
                && !r.Out.Contains("tmp-not-writable", StringComparison.Ordinal) && !r.Out.Contains("mounted", StringComparison.Ordinal);
            var confined = Clean(w) && leaked.Length == 0;
            var isolated = confined && Clean(h) && !w.Out.Contains("hidden-visible", StringComparison.Ordinal) && !h.Out.Contains("visible ", StringComparison.Ordinal);
            if (!confined || !isolated)
                notes.Add($"{Name} file-system probe: workspace mode: " + w.Describe() + "; hermetic mode: " + h.Describe()
                          + (leaked.Length > 0 ? "; written on the host: " + string.Join(", ", leaked) : ""));
            return new FilesystemObservation(confined, isolated);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            notes.Add($"{Name} file-system probe could not run: " + ex.Message);
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
}
