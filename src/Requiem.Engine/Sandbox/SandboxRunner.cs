using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Processes;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// Runs a planned command inside the probed sandbox and supervises it (<see cref="ProcessSupervisor"/>): on Linux the
/// isolator's command line (<see cref="SandboxLaunch"/>, with the run's pids cgroup removed on every way out) and its
/// set-up failures turned into <c>SandboxSetupFailed</c>; on Windows a Job Object.
/// </summary>
public static class SandboxRunner
{
    public static Task<SupervisedOutcome> RunAsync(ExecPlan plan, CasStore store, CancellationToken cancel) =>
        OperatingSystem.IsWindows() ? RunWindowsAsync(plan, store, cancel) : RunLinuxAsync(plan, store, cancel);

    private static SupervisedCommand Command(ExecPlan plan, IReadOnlyList<string> argv, IReadOnlyList<(int Fd, string Path)> files) => new()
    {
        Argv = argv,
        Environment = plan.Environment,
        WorkingDirectory = plan.WorkingDirectory,
        Stdin = plan.Request.Stdin,
        TimeoutMs = plan.Request.TimeoutMs,
        MaxOutputBytes = plan.Request.MaxOutputBytes,
        ReadOnlyFiles = files,
        DisplayName = plan.CommandPath,
        Target = plan.Request.Command,
    };

    private static async Task<SupervisedOutcome> RunLinuxAsync(ExecPlan plan, CasStore store, CancellationToken cancel)
    {
        // Every way out (a start failure, a cancelled run, a sandbox setup error) removes the run's cgroup.
        using var launch = SandboxLaunch.Prepare(plan);
        var argv = new[] { launch.Command.File }.Concat(launch.Command.Args).ToArray();
        var outcome = await ProcessSupervisor.RunAsync(Command(plan, argv, launch.Command.Files), store, cancel).ConfigureAwait(false);
        if (outcome.ExitCode is { } code && outcome.Stderr.Head(512) is { } head && launch.Isolator.IsSetupFailure(code, head))
        {
            outcome.Stdout.Dispose();
            outcome.Stderr.Dispose();
            throw new RequiemException("SandboxSetupFailed", ErrorKind.ResourceUnavailable,
                $"The sandbox could not be set up, so '{plan.CommandPath}' did not run: {head.Trim()}", plan.Request.Command);
        }
        return outcome;
    }

    [System.Runtime.Versioning.SupportedOSPlatform("windows")]
    private static Task<SupervisedOutcome> RunWindowsAsync(ExecPlan plan, CasStore store, CancellationToken cancel)
    {
        if (!plan.Probe.JobObjectsWork)
            throw new RequiemException("SandboxUnavailable", ErrorKind.ResourceUnavailable, "Job Objects are not available; refusing to run unconfined.", plan.CommandPath);
        var policy = plan.Request.Policy;
        return ProcessSupervisor.RunAsync(
            () => new JobProcess(WindowsJob.Start(plan.CommandPath, plan.Request.Argv, plan.WorkingDirectory, plan.Environment,
                policy.MaxMemoryBytes, policy.MaxCpuSeconds, policy.MaxProcesses)),
            Command(plan, new[] { plan.CommandPath }.Concat(plan.Request.Argv).ToArray(), Array.Empty<(int, string)>()), store, cancel);
    }

    [System.Runtime.Versioning.SupportedOSPlatform("windows")]
    private sealed class JobProcess : ISupervisedProcess
    {
        private readonly WindowsJob _job;
        public JobProcess(WindowsJob job) => _job = job;
        public Stream Stdin => _job.StandardInput;
        public Stream Stdout => _job.StandardOutput;
        public Stream Stderr => _job.StandardError;
        public int ExitCode => _job.ExitCode;
        public void Kill() => _job.Kill();
        public void Dispose() => _job.Dispose();

        public Task WaitForExitAsync(CancellationToken cancel) => Task.Run(() =>
        {
            while (!_job.WaitForExit(50)) cancel.ThrowIfCancellationRequested();
        }, CancellationToken.None);
    }
}
