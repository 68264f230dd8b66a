using Requiem.Engine.Health;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Health;

public class CliCapabilityNamesTests
{
    private static SandboxCapability Cap(string name, string status) => new(name, Enum.Parse<CapabilityStatus>(status, ignoreCase: true), "test", "test");

    private static IReadOnlyList<SandboxCapability> Probed(string cpu, string memory, string files, string tree, bool withJobObjects = false)
    {
        var list = new List<SandboxCapability>
        {
            Cap(Controls.CpuLimit, cpu), Cap(Controls.MemoryLimit, memory), Cap(Controls.OpenFilesLimit, files),
            Cap(Controls.ProcessTreeKill, tree), Cap(Controls.NetworkIsolation, "enforced"), Cap(Controls.SeccompBpf, "unsupported"),
        };
        if (withJobObjects) list.Add(Cap(Controls.JobObjects, "enforced"));
        return list;
    }

    private static string StatusOf(IEnumerable<SandboxCapability> caps, string name) => caps.Single(c => c.Name == name).Status;

    [Theory]
    [InlineData("enforced", "enforced", "enforced", "enforced")]
    [InlineData("enforced", "enforced", "unsupported", "partial")]
    [InlineData("unsupported", "partial", "unsupported", "partial")]
    [InlineData("unsupported", "unsupported", "unsupported", "unsupported")]
    public void RlimitsIsEnforcedOnlyWhenCpuMemoryAndDescriptorsAre(string cpu, string memory, string files, string expected)
    {
        var derived = CliCapabilityNames.Derive(Probed(cpu, memory, files, "enforced"), "linux");
        Assert.Equal(expected, StatusOf(derived, CliCapabilityNames.Rlimits));
    }

    [Theory]
    [InlineData("enforced")]
    [InlineData("partial")]
    public void ProcessGroupsFollowsProcessTreeKill(string tree)
    {
        var derived = CliCapabilityNames.Derive(Probed("enforced", "enforced", "enforced", tree), "linux");
        Assert.Equal(tree, StatusOf(derived, CliCapabilityNames.ProcessGroups));
    }

    [Theory]
    [InlineData("linux", false)]
    [InlineData("windows", true)]
    public void EveryCliNameAppearsExactlyOnceAndWindowsOnlyMechanismsAreNeverAbsent(string platform, bool jobObjectsProbed)
    {
        var probed = Probed("enforced", "enforced", "enforced", "enforced", jobObjectsProbed);
        var all = probed.Concat(CliCapabilityNames.Derive(probed, platform)).ToList();
        foreach (var name in new[] { "rlimits", "process_groups", "network_isolation", "seccomp_bpf", "job_objects", "process_mitigations", "restricted_tokens" })
            Assert.Single(all, c => c.Name == name);
        Assert.Equal("unsupported", StatusOf(all, CliCapabilityNames.ProcessMitigations));
        Assert.Equal("unsupported", StatusOf(all, CliCapabilityNames.RestrictedTokens));
        Assert.Equal(jobObjectsProbed ? "enforced" : "unsupported", StatusOf(all, Controls.JobObjects));
    }
}
