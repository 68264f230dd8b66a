using Requiem.Engine.Execution;

namespace Requiem.Engine.Sandbox;

/// <summary>A run's launch on Linux: what the probed isolator is to start, and the run's pids cgroup (removed on dispose).</summary>
public sealed class SandboxLaunch : IDisposable
{
    private SandboxLaunch(LaunchSpec spec, LinuxIsolator isolator, RunCgroup? cgroup)
    {
        Spec = spec;
        Isolator = isolator;
        Cgroup = cgroup;
    }

    public LaunchSpec Spec { get; }
    public LinuxIsolator Isolator { get; }
    public RunCgroup? Cgroup { get; }

    /// <summary>
    /// What the plan asks, as the probe's isolator launches it: namespaces, the file-system view, seccomp, the pids
    /// cgroup (made here, sized for the command's tree plus the isolator's own processes) and the rlimits.
    /// </summary>
    public static SandboxLaunch Prepare(ExecPlan plan)
    {
        var probe = plan.Probe;
        var policy = plan.Request.Policy;
        var isolator = probe.LinuxIsolator ?? throw new InvalidOperationException("no Linux isolator was probed");
        RunCgroup? cgroup = null;
        if (policy.MaxProcesses is { } maxProcesses && probe.PidsCgroupBase is not null && (isolator is LauncherIsolator || probe.Sh is not null))
        {
            // The kernel takes at most PID_MAX_LIMIT; a larger request is the same as no limit beyond the machine's.
            var max = Math.Min(maxProcesses + isolator.CgroupOverhead, ExecPolicy.MaxMaxProcesses);
            cgroup = RunCgroup.Create(probe.PidsCgroupBase, max, plan.Request.Command);
        }
        var limits = probe.LimitsAvailable;
        var spec = new LaunchSpec
        {
            Command = plan.CommandPath,
            Argv = plan.Request.Argv,
            WorkingDirectory = plan.WorkingDirectory,
            Filesystem = plan.Filesystem,
            Seccomp = plan.Enforces(Controls.SeccompBpf),
            DenyNetwork = policy.DenyNetwork && probe.NetworkIsolationAvailable,
            CgroupProcs = cgroup?.Procs,
            MaxMemoryBytes = limits ? policy.MaxMemoryBytes : null,
            MaxCpuSeconds = limits ? policy.MaxCpuSeconds : null,
            MaxOpenFiles = limits ? policy.MaxOpenFiles : null,
            MaxProcessesRlimit = limits && cgroup is null && probe.NprocRlimitBinds ? policy.MaxProcesses : null,
        };
        return new SandboxLaunch(spec, isolator, cgroup);
    }

    public void Dispose() => Cgroup?.Dispose();
}
