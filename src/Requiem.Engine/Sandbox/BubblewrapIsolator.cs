namespace Requiem.Engine.Sandbox;

/// <summary>
/// bubblewrap for the tool chain (no requiem-launch, or <c>REQUIEM_LAUNCHER=none</c>): a PID (and cgroup) namespace,
/// the file-system view as bwrap mounts (<see cref="FilesystemView.BwrapArgs"/>), the launcher's seccomp program
/// through <c>--seccomp 3</c> (<see cref="SeccompFilter"/>), and inside it prlimit, then setpriv to clear every
/// capability set (bwrap run by root keeps the bounding set) and set no_new_privs. bwrap takes the filter as a
/// descriptor: the process host opens the program file as fd 3 in bwrap's process (<see cref="LaunchCommand.Files"/>),
/// and bwrap reads and closes it before the command starts. With a process limit a short sh prelude joins the run's
/// pids cgroup and then becomes bwrap.
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
        if (spec.DenyNetwork) chain.Add("--unshare-net");
        if (Setpriv is null) chain.AddRange(new[] { "--cap-drop", "ALL" });
        chain.AddRange(FilesystemView.BwrapArgs(spec.Filesystem ?? new FilesystemLayout(FilesystemView.Host, Array.Empty<FilesystemMount>())));
        chain.AddRange(new[] { "--chdir", spec.WorkingDirectory });
        if (seccomp is not null) chain.AddRange(new[] { "--seccomp", SeccompFd.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        chain.Add("--");
        AddToolChainTail(chain, spec, Prlimit, Setpriv, EnvDefaultSignal);
        return ToCommand(chain) with { Files = seccomp is null ? Array.Empty<(int, string)>() : new[] { (SeccompFd, seccomp) } };
    }

    public override bool IsSetupFailure(int exitCode, string stderrHead) =>
        (exitCode == BwrapFailed && stderrHead.StartsWith("bwrap: ", StringComparison.Ordinal))
        || (exitCode == PreludeFailed && stderrHead.StartsWith("requiem-prelude: ", StringComparison.Ordinal));
}
