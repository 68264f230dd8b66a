namespace Requiem.Engine.Sandbox;

/// <summary>
/// bubblewrap for the tool chain (no requiem-launch, or <c>REQUIEM_LAUNCHER=none</c>): a PID (and cgroup) namespace,
/// the file-system view as bwrap mounts (<see cref="FilesystemView.BwrapArgs"/>), the launcher's seccomp program
/// through <c>--seccomp 3</c> (<see cref="SeccompFilter"/>), and inside it prlimit, then setpriv to clear every
/// capability set (bwrap run by root keeps the bounding set) and set no_new_privs, then env to reset SIGPIPE.
/// bwrap takes the filter as a descriptor, so a short sh prelude opens the program file as fd 3 (and joins the run's
/// pids cgroup) and then becomes bwrap; bwrap reads and closes the descriptor before the command starts.
/// </summary>
public sealed class BubblewrapIsolator : LinuxIsolator
{
    /// <summary>bwrap's exit status when it fails before the command runs (its message starts "bwrap: ").</summary>
    private const int BwrapFailed = 1;
    private const int PreludeFailed = 125;
    private const string SeccompFd = "3";

    public BubblewrapIsolator(string bwrap, string? sh)
    {
        Bwrap = bwrap;
        Sh = sh;
    }

    public string Bwrap { get; }
    public string? Sh { get; }
    /// <summary>setpriv, run inside bwrap to drop every capability (null: <c>--cap-drop ALL</c>, which leaves root's bounding set).</summary>
    public string? Setpriv { get; init; }
    public string? Prlimit { get; init; }
    public string? EnvDefaultSignal { get; init; }
    /// <summary>The compiled filter (<see cref="SeccompFilter.File"/>); null: seccomp is not available with bwrap here.</summary>
    public string? SeccompProgram { get; init; }

    public override string Name => "bwrap";

    /// <summary>bwrap's outer process and its PID-namespace init (the sh prelude has become bwrap).</summary>
    public override int CgroupOverhead => 2;

    /// <summary>A cgroup or a seccomp filter needs the prelude (and so sh); the probe checks both.</summary>
    public bool CanPrelude => Sh is not null;

    public override LaunchCommand Build(LaunchSpec spec)
    {
        var chain = new List<string>();
        var seccomp = spec.Seccomp ? SeccompProgram ?? throw new InvalidOperationException("no seccomp program for bwrap") : null;
        if (spec.CgroupProcs is not null || seccomp is not null)
        {
            chain.AddRange(new[]
            {
                Sh ?? throw new InvalidOperationException("bwrap's prelude needs sh"), "-c",
                "c=$1; f=$2; shift 2; if [ -n \"$c\" ] && ! { echo 0 > \"$c\"; } 2>/dev/null; then echo \"requiem-prelude: cannot join the run's pids cgroup $c\" >&2; exit 125; fi; "
                + "if [ -n \"$f\" ]; then if [ ! -r \"$f\" ]; then echo \"requiem-prelude: cannot read the seccomp program $f\" >&2; exit 125; fi; exec 3< \"$f\"; fi; exec \"$@\"",
                "requiem-prelude", spec.CgroupProcs ?? "", seccomp ?? "",
            });
        }
        chain.Add(Bwrap);
        chain.AddRange(new[] { "--unshare-pid", "--unshare-cgroup-try", "--die-with-parent", "--new-session" });
        if (spec.DenyNetwork) chain.Add("--unshare-net");
        if (Setpriv is null) chain.AddRange(new[] { "--cap-drop", "ALL" });
        chain.AddRange(FilesystemView.BwrapArgs(spec.Filesystem ?? new FilesystemLayout(FilesystemView.Host, Array.Empty<FilesystemMount>())));
        chain.AddRange(new[] { "--chdir", spec.WorkingDirectory });
        if (seccomp is not null) chain.AddRange(new[] { "--seccomp", SeccompFd });
        chain.Add("--");
        AddToolChainTail(chain, spec, Prlimit, Setpriv, EnvDefaultSignal);
        return ToCommand(chain);
    }

    public override bool IsSetupFailure(int exitCode, string stderrHead) =>
        (exitCode == BwrapFailed && stderrHead.StartsWith("bwrap: ", StringComparison.Ordinal))
        || (exitCode == PreludeFailed && stderrHead.StartsWith("requiem-prelude: ", StringComparison.Ordinal));
}
