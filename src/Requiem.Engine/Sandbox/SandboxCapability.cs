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

/// <summary>How far a control is in force on this machine, as the probe observed it.</summary>
public enum CapabilityStatus
{
    Enforced,
    /// <summary>In force with a stated gap (the probe saw what a command could still do).</summary>
    Partial,
    Unsupported,
}

/// <summary>One probed capability; <see cref="Status"/> is its status as the contract spells it.</summary>
public sealed class SandboxCapability
{
    public SandboxCapability(string name, CapabilityStatus state, string mechanism, string detail)
    {
        Name = name;
        State = state;
        Mechanism = mechanism;
        Detail = detail;
    }

    public string Name { get; }
    public CapabilityStatus State { get; }
    /// <summary><c>enforced</c>, <c>partial</c> or <c>unsupported</c> (health JSON, views).</summary>
    public string Status => ContractName(State);
    public string Mechanism { get; }
    public string Detail { get; }

    public static string ContractName(CapabilityStatus status) => status switch
    {
        CapabilityStatus.Enforced => "enforced",
        CapabilityStatus.Partial => "partial",
        _ => "unsupported",
    };

    public override string ToString() => $"{Name}: {Status} ({Mechanism})";
}
