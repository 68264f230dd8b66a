namespace Requiem.Engine.Sandbox;

/// <summary>What one isolator's <c>Probe()</c> saw its own probe commands do, each built exactly as runs are.</summary>
public sealed record IsolatorObservation(LinuxIsolator Isolator)
{
    /// <summary>A deny_network command saw only a loopback interface.</summary>
    public bool NetworkNamespace { get; init; }
    /// <summary>The four rlimits were applied before the command ran (read back from /proc/self/limits).</summary>
    public bool Limits { get; init; }
    /// <summary>What the isolation probe command observed about itself (null when no PID namespace could be made).</summary>
    public IsolationObservation? Isolation { get; init; }
    /// <summary>What the file-system probe saw (null: the isolator has no file-system view).</summary>
    public FilesystemObservation? Filesystem { get; init; }
    /// <summary>The seccomp filter showed in the command's status and refused unshare(CLONE_NEWUSER).</summary>
    public bool Seccomp { get; init; }
}

/// <summary>What the file-system probe saw: writes confined to the workspace (and a private /tmp); nothing undeclared visible.</summary>
public sealed record FilesystemObservation(bool Confined, bool Isolated);

/// <summary>What the isolation probe command (<see cref="LinuxIsolator.IsolationScript"/>) observed about itself.</summary>
public sealed record IsolationObservation(bool CapabilitiesDropped, bool NoNewPrivs, int VisibleProcesses, bool HostPidVisible, bool HostEnvironReadable, bool CgroupWritable,
    bool ProcSysWritable = false)
{
    /// <summary>
    /// No capability, no_new_privs, only its own PID namespace in /proc (init, the probe shell and its children), nothing
    /// of the caller's, and the kernel's tunables read-only (a uid-0 command needs no capability to set the hostname).
    /// </summary>
    public bool Isolated => CapabilitiesDropped && NoNewPrivs && VisibleProcesses is > 0 and <= 8 && !HostPidVisible && !HostEnvironReadable && !ProcSysWritable;

    public string Describe()
    {
        var seen = new List<string>();
        if (!CapabilitiesDropped) seen.Add("kept capabilities (some set, the bounding set included, was not empty)");
        if (!NoNewPrivs) seen.Add("ran without no_new_privs");
        if (VisibleProcesses is <= 0 or > 8) seen.Add($"saw {VisibleProcesses} processes in /proc");
        if (HostPidVisible) seen.Add("saw the caller's pid");
        if (HostEnvironReadable) seen.Add("read the caller's environment");
        if (CgroupWritable) seen.Add("could open a cgroup file for writing");
        if (ProcSysWritable) seen.Add("could open /proc/sys/kernel/hostname for writing");
        return seen.Count == 0 ? "was isolated" : string.Join(", ", seen);
    }
}

/// <summary>The external tools the tool-chain isolators run inside their namespaces, found once per probe.</summary>
internal sealed record ToolChain(string? Prlimit, string? EnvDefaultSignal)
{
    /// <summary>prlimit, and coreutils <c>env --default-signal=PIPE</c> where the process host is not used (tried).</summary>
    public static ToolChain Find(List<string> notes)
    {
        var prlimit = ProbeCommand.Which("prlimit", "/usr/bin/prlimit", "/bin/prlimit");
        if (prlimit is null) notes.Add("prlimit (util-linux) not found");
        string? envDefault = null;
        if (Processes.ProcessHost.Supported)
        {
            // Runs and probes are started with every signal at its default disposition (posix_spawn SETSIGDEF).
            notes.Add("SIGPIPE is reset by the engine's process host (posix_spawn), so env is not needed in the chain");
        }
        else if (ProbeCommand.Which("env", "/usr/bin/env", "/bin/env") is { } envTool)
        {
            // The probe itself runs from .NET, so SIGPIPE is ignored on entry: only a reset makes `yes | head` kill yes.
            var cat = ProbeCommand.Which("cat", "/bin/cat", "/usr/bin/cat") ?? "/bin/cat";
            var r = ProbeCommand.Run(envTool, new[] { "--default-signal=PIPE", "--", cat, "/proc/self/status" });
            if (r.Ok && ProbeCommand.SigPipeAtDefault(r.Out)) envDefault = envTool;
            else notes.Add("env --default-signal=PIPE is not available: commands inherit SIGPIPE ignored from the .NET host (" + r.Describe() + ")");
        }
        return new ToolChain(prlimit, envDefault);
    }
}
