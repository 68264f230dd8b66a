namespace Requiem.Engine.Sandbox;

/// <summary>
/// bubblewrap for the tool chain (no requiem-launch, or <c>REQUIEM_LAUNCHER=none</c>): a PID (and cgroup) namespace,
/// the file-system view as bwrap mounts (<see cref="FilesystemView.BwrapArgs"/>), the launcher's seccomp program
/// through <c>--seccomp 3</c> (<see cref="SeccompFilter"/>), and every capability dropped by bwrap itself
/// (<c>--cap-drop ALL</c>; run by root, in a user namespace of its own, where bwrap otherwise keeps the bounding set),
/// so the command is bwrap's direct exec. Only what bwrap cannot do runs inside it: prlimit when the run has rlimits,
/// setpriv where the probe saw bwrap's own drop leave a capability, env without the process host. bwrap takes the
/// filter as a descriptor: the process host opens the program file as fd 3 in bwrap's process
/// (<see cref="LaunchCommand.Files"/>), and bwrap reads and closes it before the command starts. With a process limit a
/// short sh prelude joins the run's pids cgroup and then becomes bwrap.
/// </summary>
public sealed class BubblewrapIsolator : LinuxIsolator
{
    /// <summary>bwrap's exit status when it fails before the command runs (its message starts "bwrap: ").</summary>
    private const int BwrapFailed = 1;
    private const int PreludeFailed = 125;
    private const int SeccompFd = 3;

    public BubblewrapIsolator(string bwrap, string? sh)
    {
        Bwrap = bwrap;
        Sh = sh;
    }

    public string Bwrap { get; }
    public string? Sh { get; }
    /// <summary><c>--unshare-user</c> (the caller's uid mapped to itself): run by root, the only way <c>--cap-drop ALL</c> empties the bounding set.</summary>
    public bool UserNamespace { get; init; }
    /// <summary>setpriv, run inside bwrap to drop every capability (null: <c>--cap-drop ALL</c>, which leaves root's bounding set).</summary>
    public string? Setpriv { get; init; }
    public string? Prlimit { get; init; }
    public string? EnvDefaultSignal { get; init; }
    /// <summary>The compiled filter (<see cref="SeccompFilter.File"/>); null: seccomp is not available with bwrap here.</summary>
    public string? SeccompProgram { get; init; }

    public override string Name => "bwrap";

    /// <summary>bwrap's outer process and its PID-namespace init (the sh prelude has become bwrap).</summary>
    public override int CgroupOverhead => 2;

    public override LaunchCommand Build(LaunchSpec spec)
    {
        var chain = new List<string>();
        var seccomp = spec.Seccomp ? SeccompProgram ?? throw new InvalidOperationException("no seccomp program for bwrap") : null;
        if (spec.CgroupProcs is not null)
        {
            chain.AddRange(new[]
            {
                Sh ?? throw new InvalidOperationException("joining a cgroup needs sh"), "-c",
                "if ! { echo 0 > \"$0\"; } 2>/dev/null; then echo \"requiem-prelude: cannot join the run's pids cgroup $0\" >&2; exit 125; fi; exec \"$@\"",
                spec.CgroupProcs,
            });
        }
        chain.Add(Bwrap);
        chain.AddRange(new[] { "--unshare-pid", "--unshare-cgroup-try", "--die-with-parent", "--new-session" });
        if (UserNamespace) chain.Add("--unshare-user");
        if (spec.DenyNetwork) chain.Add("--unshare-net");
        if (Setpriv is null) chain.AddRange(new[] { "--cap-drop", "ALL" });
        chain.AddRange(FilesystemView.BwrapArgs(spec.Filesystem ?? new FilesystemLayout(FilesystemView.Host, Array.Empty<FilesystemMount>())));
        chain.AddRange(new[] { "--chdir", spec.WorkingDirectory });
        if (seccomp is not null) chain.AddRange(new[] { "--seccomp", SeccompFd.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        chain.Add("--");
        AddToolChainTail(chain, spec, Prlimit, Setpriv, EnvDefaultSignal);
        return ToCommand(chain) with { Files = seccomp is null ? Array.Empty<(int, string)>() : new[] { (SeccompFd, seccomp) } };
    }

    internal override (string Mechanism, string Detail) TreeKillText =>
        ("bwrap --unshare-pid --die-with-parent (PID namespace with its own /proc)" + (Setpriv is not null ? ", setpriv" : UserNamespace ? ", --unshare-user --cap-drop ALL" : ", --cap-drop ALL"),
            "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included");

    internal override string NetworkMechanism => "bwrap --unshare-net (network namespace)" + (Setpriv is not null ? ", setpriv" : "");

    internal override string SeccompMechanism(string architecture) =>
        $"bwrap --seccomp: requiem-launch's seccomp-bpf program ({architecture}, architecture checked in the filter), built by the engine";

    internal override string SeccompMissing =>
        "bwrap could not install the filter (an architecture other than x86_64/aarch64, or a kernel without seccomp; see ProbeNotes)";

    internal override string FilesystemMechanism =>
        "bwrap: a new root (the host's read-only, or an empty tmpfs), --ro-bind/--bind/--tmpfs/--dev/--proc in the mount namespace";

    /// <summary>
    /// Tries bubblewrap for real, through <see cref="Build"/>: a PID namespace (the command is PID 2), every capability
    /// dropped (bwrap's own drop, else setpriv), an empty network namespace, prlimit's limits read back; then the isolation, file-system
    /// and seccomp probes. Null: bwrap cannot make a PID namespace here.
    /// </summary>
    internal static IsolatorObservation? Probe(string bwrap, string sh, bool isRoot, ToolChain tools, List<string> notes)
    {
        var cat = ProbeCommand.Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";
        var bare = new BubblewrapIsolator(bwrap, sh);
        var r = bare.Try(new LaunchSpec { Command = sh, Argv = new[] { "-c", "echo $$" }, WorkingDirectory = "/" });
        if (!(r.Ok && r.Out.Trim() == "2"))
        {
            notes.Add("bwrap --unshare-pid did not work: " + r.Describe());
            return null;
        }
        // Capabilities: bwrap's own --cap-drop ALL (as root inside --unshare-user), else setpriv inside; used only when
        // the probe command saw every set empty and no_new_privs.
        var status = new LaunchSpec { Command = cat, Argv = new[] { "/proc/self/status" }, WorkingDirectory = "/" };
        var userNs = isRoot;
        string? setpriv = null;
        var own = new BubblewrapIsolator(bwrap, sh) { UserNamespace = userNs }.Try(status);
        if (!(own.Ok && ProbeCommand.Unprivileged(own.Out)))
        {
            notes.Add($"bwrap {(userNs ? "--unshare-user " : "")}--cap-drop ALL did not drop every capability: " + own.Describe());
            userNs = false;
            setpriv = ProbeCommand.Which("setpriv", "/usr/bin/setpriv", "/bin/setpriv");
            if (setpriv is null) notes.Add("setpriv (util-linux) not found: bwrap runs with --cap-drop ALL, which leaves a root command its bounding set");
            else
            {
                var p = new BubblewrapIsolator(bwrap, sh) { Setpriv = setpriv }.Try(status);
                if (!(p.Ok && ProbeCommand.Unprivileged(p.Out)))
                {
                    notes.Add("setpriv inside bwrap did not drop every capability: " + p.Describe());
                    setpriv = null;
                }
            }
        }
        var configured = new BubblewrapIsolator(bwrap, sh) { UserNamespace = userNs, Setpriv = setpriv };
        var n = configured.Try(new LaunchSpec { Command = cat, Argv = new[] { "/proc/self/net/dev" }, WorkingDirectory = "/", DenyNetwork = true });
        var net = n.Ok && ProbeCommand.OnlyLoopback(n.Out);
        if (!net) notes.Add("bwrap --unshare-net did not isolate the network: " + n.Describe());
        var limits = false;
        if (tools.Prlimit is not null)
        {
            var l = new BubblewrapIsolator(bwrap, sh) { UserNamespace = userNs, Setpriv = setpriv, Prlimit = tools.Prlimit }.Try(ProbeCommand.LimitsSpec(cat));
            limits = l.Ok && ProbeCommand.LimitsReadBack(l.Out);
            if (!limits) notes.Add("prlimit did not apply limits: " + l.Describe());
        }
        // bwrap takes the program on a descriptor, which the engine's process host opens in bwrap's process.
        var program = Processes.ProcessHost.Supported ? SeccompFilter.File : null;
        if (program is null) notes.Add($"no seccomp program for bwrap on {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}");
        var isolator = new BubblewrapIsolator(bwrap, sh)
        {
            UserNamespace = userNs, Setpriv = setpriv, Prlimit = limits ? tools.Prlimit : null, EnvDefaultSignal = tools.EnvDefaultSignal, SeccompProgram = program,
        };
        return new IsolatorObservation(isolator)
        {
            NetworkNamespace = net,
            Limits = limits,
            // What a command launched exactly as runs are could do, observed (not assumed from the mechanism).
            Isolation = isolator.ObserveIsolation(notes, "bwrap"),
            Filesystem = isolator.ObserveFilesystem(notes),
            Seccomp = program is not null && isolator.ObserveSeccomp(notes),
        };
    }

    public override bool IsSetupFailure(int exitCode, string stderrHead) =>
        (exitCode == BwrapFailed && stderrHead.StartsWith("bwrap: ", StringComparison.Ordinal))
        || (exitCode == PreludeFailed && stderrHead.StartsWith("requiem-prelude: ", StringComparison.Ordinal));
}
