using Requiem.Engine.Sandbox;

namespace Requiem.Engine.Health;

/// <summary>
/// The Requiem CLI's names for sandbox capabilities (<c>rlimits</c>, <c>process_groups</c>, <c>job_objects</c>,
/// <c>process_mitigations</c>, <c>restricted_tokens</c>), derived from the probed controls so that scripts written for
/// the CLI find them in <c>sandbox_capabilities</c>. The finer probed names stay in the lists beside them; a CLI name
/// that is also a probed control (<c>network_isolation</c>, <c>seccomp_bpf</c>, <c>workspace_confinement</c>, and
/// <c>job_objects</c> on Windows) is the probed entry itself. Every CLI name appears on every platform: what is not
/// implemented here is listed as unsupported, never left out.
/// </summary>
public static class CliCapabilityNames
{
    public const string Rlimits = "rlimits";
    public const string ProcessGroups = "process_groups";
    public const string ProcessMitigations = "process_mitigations";
    public const string RestrictedTokens = "restricted_tokens";

    /// <summary>The probed controls that make up <c>rlimits</c> (CPU, memory, descriptors, as the CLI lists them).</summary>
    public static readonly IReadOnlyList<string> RlimitControls = new[] { Controls.CpuLimit, Controls.MemoryLimit, Controls.OpenFilesLimit };

    /// <summary>The entries to add to the probed capabilities: only names the probe does not report itself.</summary>
    public static IReadOnlyList<SandboxCapability> Derive(IReadOnlyList<SandboxCapability> probed, string platform)
    {
        var byName = new Dictionary<string, SandboxCapability>(StringComparer.Ordinal);
        foreach (var c in probed) byName.TryAdd(c.Name, c);
        var derived = new List<SandboxCapability>();
        void Add(SandboxCapability c) { if (!byName.ContainsKey(c.Name)) derived.Add(c); }

        var limits = RlimitControls.Select(n => byName.GetValueOrDefault(n)).Where(c => c is not null).Select(c => c!).ToList();
        var rlimitStatus = limits.Count == RlimitControls.Count && limits.All(c => c.State == CapabilityStatus.Enforced) ? CapabilityStatus.Enforced
            : limits.Any(c => c.State is CapabilityStatus.Enforced or CapabilityStatus.Partial) ? CapabilityStatus.Partial : CapabilityStatus.Unsupported;
        Add(new SandboxCapability(Rlimits, rlimitStatus, "derived from " + string.Join(", ", RlimitControls),
            limits.Count == 0 ? "no resource limit was probed" : string.Join("; ", limits.Select(c => $"{c.Name} {c.Status} ({c.Mechanism})"))));

        if (byName.GetValueOrDefault(Controls.ProcessTreeKill) is { } tree)
        {
            Add(new SandboxCapability(ProcessGroups, tree.State, "derived from " + Controls.ProcessTreeKill,
                $"the run's processes are stopped as one group: {tree.Mechanism} ({tree.Status})"));
        }
        else Add(new SandboxCapability(ProcessGroups, CapabilityStatus.Unsupported, "none", "no process-tree control was probed"));

        var windows = platform == "windows";
        Add(new SandboxCapability(Controls.JobObjects, CapabilityStatus.Unsupported, "none", windows ? "Job Objects could not be created" : "Job Objects exist only on Windows"));
        Add(new SandboxCapability(ProcessMitigations, CapabilityStatus.Unsupported, "none",
            windows ? "process mitigation policies (SetProcessMitigationPolicy / PROC_THREAD_ATTRIBUTE_MITIGATION_POLICY) are not applied by this engine" : "process mitigation policies exist only on Windows"));
        Add(new SandboxCapability(RestrictedTokens, CapabilityStatus.Unsupported, "none",
            windows ? "commands run with the caller's token; restricted tokens (CreateRestrictedToken) are not implemented" : "restricted tokens exist only on Windows"));
        return derived;
    }
}
