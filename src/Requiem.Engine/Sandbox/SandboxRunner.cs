using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Processes;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// Runs a planned command through the probed isolator (<see cref="Isolator.Start"/>) and supervises it
/// (<see cref="ProcessSupervisor"/>): on Linux the isolator's command line (<see cref="SandboxLaunch"/>, with the run's
/// pids cgroup removed on every way out) and its set-up failures turned into <c>SandboxSetupFailed</c>; on Windows the
/// Job Object isolator.
/// </summary>
public static class SandboxRunner
{
    public static Task<SupervisedOutcome> RunAsync(ExecPlan plan, CasStore store, CancellationToken cancel) =>
        RunAsync(plan, store, new SupervisionOptions(), cancel);

    /// <summary>As <see cref="RunAsync(ExecPlan, CasStore, CancellationToken)"/>, with the supervisor's options (work while it runs, waits on the calling thread).</summary>
    public static Task<SupervisedOutcome> RunAsync(ExecPlan plan, CasStore store, SupervisionOptions options, CancellationToken cancel) =>
        OperatingSystem.IsWindows() ? RunWindowsAsync(plan, store, options, cancel) : RunLinuxAsync(plan, store, options, cancel);

    /// <summary>The run's environment, stdin and limits; the isolator puts its own launch around <paramref name="argv"/>.</summary>
    private static SupervisedCommand Command(ExecPlan plan, IReadOnlyList<string> argv) => new()
    {
        Argv = argv,
        Environment = plan.Environment,
        WorkingDirectory = plan.WorkingDirectory,
        Stdin = plan.Request.Stdin,
        TimeoutMs = plan.Request.TimeoutMs,
        MaxOutputBytes = plan.Request.MaxOutputBytes,
        DisplayName = plan.CommandPath,
        Target = plan.Request.Command,
    };

    private static async Task<SupervisedOutcome> RunLinuxAsync(ExecPlan plan, CasStore store, SupervisionOptions options, CancellationToken cancel)
    {
        // Every way out (a start failure, a cancelled run, a sandbox setup error) removes the run's cgroup.
        using var launch = SandboxLaunch.Prepare(plan);
        var command = Command(plan, new[] { plan.CommandPath }.Concat(plan.Request.Argv).ToArray());
        var outcome = await ProcessSupervisor.RunAsync(() => launch.Isolator.Start(launch.Spec, command), command, store, options, cancel).ConfigureAwait(false);
        if (outcome.ExitCode is { } code && outcome.Stderr.Head(512) is { } head && launch.Isolator.IsSetupFailure(code, head))
        {
            outcome.Stdout.Dispose();
            outcome.Stderr.Dispose();
            throw new RequiemException("SandboxSetupFailed", ErrorKind.ResourceUnavailable,
                $"The sandbox could not be set up, so '{plan.CommandPath}' did not run: {head.Trim()}", plan.Request.Command);
        }
        return outcome;
    }

    /// <summary>Windows: the probed Job Object isolator, with the request's memory, CPU and process limits on the job.</summary>
    private static Task<SupervisedOutcome> RunWindowsAsync(ExecPlan plan, CasStore store, SupervisionOptions options, CancellationToken cancel)
    {
        var isolator = plan.Probe.WindowsJob?.Isolator
            ?? throw new RequiemException("SandboxUnavailable", ErrorKind.ResourceUnavailable, "Job Objects are not available; refusing to run unconfined.", plan.CommandPath);
        var policy = plan.Request.Policy;
        var spec = new LaunchSpec
        {
            Command = plan.CommandPath, Argv = plan.Request.Argv, WorkingDirectory = plan.WorkingDirectory,
            MaxMemoryBytes = policy.MaxMemoryBytes, MaxCpuSeconds = policy.MaxCpuSeconds, MaxActiveProcesses = policy.MaxProcesses,
        };
        var command = Command(plan, new[] { plan.CommandPath }.Concat(plan.Request.Argv).ToArray());
        return ProcessSupervisor.RunAsync(() => isolator.Start(spec, command), command, store, options, cancel);
    }
}
