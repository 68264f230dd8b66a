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
