namespace Requiem.Engine.Sandbox;

/// <summary>
/// The last tool chain (no requiem-launch, no working bwrap): util-linux <c>unshare --pid --mount-proc</c> with a sh
/// init, then prlimit, setpriv and env. No file-system isolation and no seccomp (reported unsupported). Without
/// unshare (no PID namespace at all, <see cref="Name"/> null) the same chain runs without the namespace.
/// </summary>
public sealed class UnshareIsolator : LinuxIsolator
{
    public UnshareIsolator(string? unshare, string? sh)
    {
        Unshare = unshare;
        Sh = sh;
    }

    /// <summary>null: no PID namespace could be made.</summary>
    public string? Unshare { get; }
    public string? Sh { get; }
    /// <summary><c>-r</c>: a user namespace, because we are not root.</summary>
    public bool UserNamespace { get; init; }
    public string? Mount { get; init; }
    public string? Setpriv { get; init; }
    public string? Prlimit { get; init; }
    public string? EnvDefaultSignal { get; init; }

    public override string? Name => Unshare is null ? null : "unshare";

    /// <summary>With unshare, the init shell (which joins the cgroup); without, the prelude has become the command.</summary>
    public override int CgroupOverhead => Unshare is null ? 0 : 1;

    public override LaunchCommand Build(LaunchSpec spec)
    {
        var chain = new List<string>();
        if (Unshare is null)
        {
            if (spec.CgroupProcs is not null)
                chain.AddRange(new[] { Sh ?? throw new InvalidOperationException("joining a cgroup needs sh"), "-c", "echo 0 > \"$0\" && exec \"$@\"", spec.CgroupProcs });
        }
        else
        {
            chain.Add(Unshare);
            if (UserNamespace) chain.Add("-r");
            chain.AddRange(new[] { "--fork", "--pid", "--mount-proc", "--kill-child" });
            if (spec.DenyNetwork) chain.Add("--net");
            chain.Add("--");
            // A shell is the namespace's init (PID 1) and runs the command as PID 2, so the command keeps normal
            // signal semantics (PID 1 ignores signals it has no handler for, SIGPIPE and SIGTERM included). With a
            // process limit the init joins the run's pids cgroup first; it makes /proc/sys and /sys/fs/cgroup read-only.
            if (Sh is not null) chain.AddRange(Init(Sh, Mount, spec.CgroupProcs));
        }
        AddToolChainTail(chain, spec, Prlimit, Setpriv, EnvDefaultSignal);
        return ToCommand(chain);
    }

    internal override (string Mechanism, string Detail) TreeKillText =>
        ("unshare --pid --fork --mount-proc --kill-child (PID namespace with its own /proc, sh as init)" + (Setpriv is not null ? ", setpriv" : ""),
            "the command runs in a fresh PID namespace; killing its init kills every descendant, setsid escapees included");

    internal override string NetworkMechanism => "unshare --net (network namespace)" + (Setpriv is not null ? ", setpriv" : "");

    internal override string SeccompMechanism(string architecture) => "none";

    internal override string SeccompMissing => "no system-call filter with the unshare tool chain (install bubblewrap, or build requiem-launch)";

    internal override string NoFilesystemView => "no file-system isolation with the unshare tool chain (install bubblewrap, or build requiem-launch)";

    /// <summary>
    /// Tries util-linux unshare for real, through <see cref="Build"/>: a PID namespace (as root without a user namespace
    /// if it can), an empty network namespace, prlimit's limits read back, setpriv dropping every capability inside, then
    /// the isolation probe. Without a PID namespace the chain runs without one (<see cref="Name"/> null).
    /// </summary>
    internal static IsolatorObservation Probe(string? unshare, string? sh, bool isRoot, ToolChain tools, List<string> notes)
    {
        var cat = ProbeCommand.Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";
        bool pid = false, net = false, userNs = false;
        if (unshare is not null && sh is not null)
        {
            foreach (var candidate in isRoot ? new[] { false, true } : new[] { true })
            {
                var bare = new UnshareIsolator(unshare, sh) { UserNamespace = candidate };
                // The shell init is PID 1, so the command is PID 2.
                var r = bare.Try(new LaunchSpec { Command = sh, Argv = new[] { "-c", "echo $$" }, WorkingDirectory = "/" });
                if (!(r.Ok && r.Out.Trim() == "2"))
                {
                    notes.Add($"unshare {(candidate ? "-r " : "")}--pid did not work: " + r.Describe());
                    continue;
                }
                pid = true;
                userNs = candidate;
                var n = bare.Try(new LaunchSpec { Command = cat, Argv = new[] { "/proc/self/net/dev" }, WorkingDirectory = "/", DenyNetwork = true });
                net = n.Ok && ProbeCommand.OnlyLoopback(n.Out);
                if (!net) notes.Add("unshare --net did not isolate the network: " + n.Describe());
                break;
            }
        }
        else if (unshare is null) notes.Add("unshare (util-linux) not found");
        var ns = pid ? unshare : null;
        var limits = false;
        if (tools.Prlimit is not null)
        {
            var l = new UnshareIsolator(ns, sh) { UserNamespace = userNs, Prlimit = tools.Prlimit }.Try(ProbeCommand.LimitsSpec(cat));
            limits = l.Ok && ProbeCommand.LimitsReadBack(l.Out);
            if (!limits) notes.Add("prlimit did not apply limits: " + l.Describe());
        }
        string? setpriv = null, mount = null;
        if (pid)
        {
            setpriv = ProbeCommand.Which("setpriv", "/usr/bin/setpriv", "/bin/setpriv");
            if (setpriv is null) notes.Add("setpriv (util-linux) not found: commands keep their capabilities and could leave their namespaces");
            else
            {
                // Not root, it is tried where runs use it: inside unshare -r's user namespace (outside it, dropping needs CAP_SETPCAP).
                var p = new UnshareIsolator(ns, sh) { UserNamespace = userNs, Setpriv = setpriv }
                    .Try(new LaunchSpec { Command = cat, Argv = new[] { "/proc/self/status" }, WorkingDirectory = "/" });
                if (!(p.Ok && ProbeCommand.Unprivileged(p.Out)))
                {
                    notes.Add("setpriv did not drop every capability: " + p.Describe());
                    setpriv = null;
                }
            }
            mount = ProbeCommand.Which("mount", "/usr/bin/mount", "/bin/mount");
            if (mount is null) notes.Add("mount (util-linux) not found: /proc/sys and /sys/fs/cgroup stay writable for a root command");
        }
        var isolator = new UnshareIsolator(ns, sh)
        {
            UserNamespace = userNs, Mount = mount, Setpriv = setpriv, Prlimit = limits ? tools.Prlimit : null, EnvDefaultSignal = tools.EnvDefaultSignal,
        };
        return new IsolatorObservation(isolator)
        {
            NetworkNamespace = net,
            Limits = limits,
            Isolation = pid ? isolator.ObserveIsolation(notes, "the tool chain") : null,
        };
    }

    /// <summary>
    /// The PID-namespace init (a shell, PID 1): joins the run's pids cgroup, makes /proc/sys read-only and hides
    /// /sys/fs/cgroup under an empty read-only tmpfs (exit 125 when it cannot), then runs the command as PID 2.
    /// </summary>
    internal static string[] Init(string sh, string? mount, string? procs)
    {
        var script = "c=$1; m=$2; shift 2; if [ -n \"$c\" ]; then echo 0 > \"$c\" || exit 125; fi; "
                     + "if [ -n \"$m\" ]; then \"$m\" --bind -o ro /proc/sys /proc/sys || exit 125; "
                     + "if [ -d /sys/fs/cgroup ]; then \"$m\" -t tmpfs -o ro,mode=555,size=0 requiem /sys/fs/cgroup || exit 125; fi; fi; "
                     + "\"$@\"; exit $?";
        return new[] { sh, "-c", script, "requiem-init", procs ?? "", mount ?? "" };
    }
}
