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
}

/// <summary>A program and its arguments, ready to start, and files to open read-only at given descriptors in it.</summary>
public sealed record LaunchCommand(string File, IReadOnlyList<string> Args)
{
    public IReadOnlyList<(int Fd, string Path)> Files { get; init; } = Array.Empty<(int, string)>();
}

/// <summary>
/// One Linux isolation mechanism (requiem-launch, bubblewrap, the unshare/prlimit/setpriv chain). Each builds the
/// launch of a run and of every probe command with the same <see cref="Build"/>, so the health probe tests exactly
/// what runs.
/// </summary>
public abstract class LinuxIsolator
{
    /// <summary>The name health reports (<c>isolator</c>): requiem-launch, bwrap, unshare; null without a PID namespace.</summary>
    public abstract string? Name { get; }

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
}
