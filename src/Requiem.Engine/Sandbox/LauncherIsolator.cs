using System.Globalization;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// requiem-launch (src/native): one exec sets up the namespaces, the file-system view, the cgroup, the rlimits, the
/// capability drop and the seccomp filter with the kernel's own calls.
/// </summary>
public sealed class LauncherIsolator : LinuxIsolator
{
    /// <summary>requiem-launch's exit status when it could not set up the sandbox (its message starts "requiem-launch: ").</summary>
    public const int SetupFailed = 125;

    public LauncherIsolator(string path, bool userNamespace)
    {
        Path = path;
        UserNamespace = userNamespace;
    }

    public string Path { get; }
    /// <summary><c>--userns</c>: a user namespace mapping the caller to itself, because we are not root.</summary>
    public bool UserNamespace { get; }
    /// <summary>deny_network runs join one held empty namespace (<see cref="SharedNetworkNamespace"/>).</summary>
    public bool SharedNetns { get; init; }
    /// <summary>The launcher applies the spec's rlimits (probed).</summary>
    public bool Limits { get; init; }
    /// <summary>Hermetic and workspace runs copy a view held per layout (<see cref="HeldView"/>; root only, probed) instead of building it.</summary>
    public bool HeldViews { get; init; }
    /// <summary>The probe's: a held view from the first use of a layout, and none is a failure (the probe must test the held path).</summary>
    internal bool RequireHeldView { get; init; }

    public override string Name => "requiem-launch";

    /// <summary>The launcher and its namespace's init.</summary>
    public override int CgroupOverhead => 2;

    public override LaunchCommand Build(LaunchSpec spec)
    {
        var chain = new List<string> { Path };
        if (UserNamespace) chain.Add("--userns");
        chain.Add("--pidns");
        if (spec.DenyNetwork)
        {
            if (SharedNetns && SharedNetworkNamespace.Get(Path) is { } shared)
                chain.AddRange(new[] { "--join-netns", shared.Path, "--netns-inode", shared.Inode.ToString(CultureInfo.InvariantCulture) });
            else
                chain.Add("--netns");
        }
        if (spec.CgroupProcs is not null) chain.AddRange(new[] { "--cgroup-procs", spec.CgroupProcs });
        if (spec.Filesystem is { IsHost: false } layout)
        {
            if (HeldViews && !UserNamespace && JoinHeldView(layout) is { } view)
                chain.AddRange(new[] { "--join-view", view.Path, "--view-inode", view.Inode.ToString(CultureInfo.InvariantCulture) });
            chain.AddRange(FilesystemView.LauncherArgs(layout));
        }
        if (spec.Seccomp) chain.Add("--seccomp");
        if (Limits)
        {
            AddLimit(chain, "--as", spec.MaxMemoryBytes);
            AddLimit(chain, "--cpu", spec.MaxCpuSeconds);
            AddLimit(chain, "--nofile", spec.MaxOpenFiles);
            AddLimit(chain, "--nproc", spec.MaxProcessesRlimit);
        }
        chain.Add("--");
        chain.Add(spec.Command);
        chain.AddRange(spec.Argv);
        return ToCommand(chain);
    }

    private (string Path, ulong Inode)? JoinHeldView(FilesystemLayout layout)
    {
        var view = HeldView.Get(Path, layout, eager: RequireHeldView);
        if (view is null && RequireHeldView && HeldView.CanHold(layout)) throw new IOException("requiem-launch --hold-view: " + HeldView.LastError);
        return view;
    }

    public override bool IsSetupFailure(int exitCode, string stderrHead) =>
        exitCode == SetupFailed && stderrHead.StartsWith("requiem-launch: ", StringComparison.Ordinal);

    internal override (string Mechanism, string Detail) TreeKillText =>
        ("requiem-launch: unshare(2) CLONE_NEWPID|CLONE_NEWNS (own /proc), init bound to the launcher with PR_SET_PDEATHSIG, every capability dropped",
            "the command runs as PID 2 of a fresh PID namespace; when its init exits or is killed every descendant dies, setsid escapees included");

    internal override string NetworkMechanism => SharedNetns
        ? "requiem-launch: one held empty network namespace (unshare(2) CLONE_NEWNET), joined by inode with setns(2)"
        : "requiem-launch: unshare(2) CLONE_NEWNET";

    internal override string LimitsMechanism => "requiem-launch: setrlimit(2) in the command's process before execve";
    internal override string LimitsMissing => "requiem-launch could not apply rlimits";
    internal override string NprocMechanism => "requiem-launch: setrlimit(2) RLIMIT_NPROC";

    internal override string SeccompMechanism(string architecture) =>
        $"requiem-launch --seccomp: seccomp-bpf filter ({architecture}, architecture checked in the filter)";

    internal override string SeccompMissing =>
        "the launcher could not install its filter (an architecture other than x86_64/aarch64, or a kernel without seccomp; see ProbeNotes)";

    internal override string FilesystemMechanism =>
        "requiem-launch: mount namespace, a new root (the host's read-only, or an empty tmpfs), bind mounts, pivot_root, old root detached"
        + (HeldViews ? "; hermetic and workspace views held per layout and copied per run (setns(2) + unshare(2) CLONE_NEWNS, the workspace moved in with open_tree(2)/move_mount(2))" : "");

    /// <summary>Counted in the run's cgroup: the launcher, the namespace's init and sh (3); sh's subshell is the 4th.</summary>
    internal override (LaunchCommand Command, int Refuse, int Allow) PidsCgroupProbe(string sh, string procs) =>
        (Build(new LaunchSpec { Command = sh, Argv = new[] { "-c", "(exit 0) && echo forked" }, WorkingDirectory = "/", CgroupProcs = procs }), 3, 4);

    /// <summary>
    /// Tries requiem-launch for real, through <see cref="Build"/>: the command must see itself as PID 2 with SIGPIPE at
    /// its default, only a loopback interface with deny_network, and read back the rlimits it was given; then the
    /// isolation, file-system and seccomp probes. As root it runs without a user namespace if it can. Null: unusable.
    /// </summary>
    public static IsolatorObservation? Probe(string path, bool isRoot, List<string> notes)
    {
        var file = LauncherFile.Check(path);
        if (!file.Usable)
        {
            notes.Add($"requiem-launch {file.Problem}: using the external tool chain. Fix: {file.Fix}");
            return null;
        }
        if (file.RestoredExecuteBit) notes.Add($"requiem-launch: restored the execute bit of {path} (an install from a package does not keep it)");
        var cat = ProbeCommand.Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";
        foreach (var userNs in isRoot ? new[] { false, true } : new[] { true })
        {
            var r = new LauncherIsolator(path, userNs).Try(new LaunchSpec { Command = cat, Argv = new[] { "/proc/self/status" }, WorkingDirectory = "/" });
            // /proc is the host's, so "Pid" is the host pid; NSpid ends with the pid in the innermost namespace.
            if (!(r.Ok && ProbeCommand.StatusField(r.Out, "NSpid")?.Split('\t', ' ').LastOrDefault() == "2" && ProbeCommand.SigPipeAtDefault(r.Out)))
            {
                notes.Add($"requiem-launch {(userNs ? "--userns " : "")}--pidns did not work: " + r.Describe());
                continue;
            }
            // As root, deny_network runs share one held namespace; otherwise (or if it cannot be held) each makes its own.
            var shared = userNs ? null : SharedNetworkNamespace.Get(path);
            var n = new LauncherIsolator(path, userNs) { SharedNetns = shared is not null }
                .Try(new LaunchSpec { Command = cat, Argv = new[] { "/proc/self/net/dev" }, WorkingDirectory = "/", DenyNetwork = true });
            var net = n.Ok && ProbeCommand.OnlyLoopback(n.Out);
            var netArgs = shared is { } h ? $"--join-netns {h.Path} --netns-inode {h.Inode.ToString(CultureInfo.InvariantCulture)}" : "--netns";
            if (!net) notes.Add($"requiem-launch {netArgs} did not isolate the network: " + n.Describe());
            if (!userNs && shared is null) notes.Add("requiem-launch --hold-netns did not work: deny_network runs make their own namespace");
            var l = new LauncherIsolator(path, userNs) { Limits = true }.Try(ProbeCommand.LimitsSpec(cat));
            var limits = l.Ok && ProbeCommand.LimitsReadBack(l.Out);
            if (!limits) notes.Add("requiem-launch did not apply rlimits: " + l.Describe());
            var isolator = new LauncherIsolator(path, userNs) { SharedNetns = net && shared is not null, Limits = limits };
            var filesystem = isolator.ObserveFilesystem(notes);
            if (!userNs && filesystem.Isolated)
            {
                // Hermetic and workspace runs of a layout seen before copy its held view: probed through that path too, and used only
                // if it is as tight as the per-run build (which first runs of a layout, and every run without it, use).
                var heldNotes = new List<string>();
                var held = new LauncherIsolator(path, userNs) { SharedNetns = isolator.SharedNetns, Limits = limits, HeldViews = true, RequireHeldView = true }
                    .ObserveFilesystem(heldNotes);
                if (held.Isolated)
                {
                    isolator = new LauncherIsolator(path, userNs) { SharedNetns = isolator.SharedNetns, Limits = limits, HeldViews = true };
                    notes.Add($"requiem-launch: hermetic and workspace runs copy a file-system view held per layout (at most {HeldView.MaxViews}, from a layout's second run; the first builds its own)");
                }
                else
                {
                    notes.Add("requiem-launch: hermetic and workspace runs build their file-system view per run (a held view was not used: "
                              + string.Join("; ", heldNotes.DefaultIfEmpty("its probe failed")) + ")");
                }
            }
            else if (userNs)
            {
                notes.Add("requiem-launch: hermetic and workspace runs build their file-system view per run (held views are for root callers)");
            }
            return new IsolatorObservation(isolator)
            {
                NetworkNamespace = net,
                Limits = limits,
                Isolation = isolator.ObserveIsolation(notes, "requiem-launch"),
                Filesystem = filesystem,
                Seccomp = isolator.ObserveSeccomp(notes),
            };
        }
        return null;
    }

    private static void AddLimit(List<string> chain, string option, long? value)
    {
        if (value is not { } v) return;
        chain.Add(option);
        chain.Add(v.ToString(CultureInfo.InvariantCulture));
    }
}
