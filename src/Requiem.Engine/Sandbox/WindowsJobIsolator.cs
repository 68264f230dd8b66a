using Requiem.Engine.Processes;

namespace Requiem.Engine.Sandbox;

/// <summary>What the Job Object probe observed (<see cref="WindowsJobIsolator.Probe"/>).</summary>
/// <param name="Isolator">The isolator runs use; null when a command could not be run inside a job.</param>
/// <param name="ProcessLimit">With one active process allowed the command could not start a child, with eight it could.</param>
public sealed record WindowsJobObservation(WindowsJobIsolator? Isolator, bool ProcessLimit, string Detail)
{
    public bool JobObjects => Isolator is not null;
}

/// <summary>
/// Windows Job Objects as an isolator: the command is created suspended, assigned to a job carrying the spec's limits
/// (KILL_ON_JOB_CLOSE, PROCESS_MEMORY, JOB_TIME, ACTIVE_PROCESS) and then resumed (<see cref="WindowsJob"/>), so no
/// instruction runs outside the job. <see cref="Probe"/> starts real commands through the same <see cref="Start"/>.
/// Compiled on every platform; it starts anything only on Windows.
/// </summary>
public sealed class WindowsJobIsolator : Isolator
{
    /// <summary>Health's <c>isolator</c> names PID-namespace mechanisms; on Windows it stays null (the job is its own capability).</summary>
    public override string? Name => null;

    public override ISupervisedProcess Start(LaunchSpec spec, SupervisedCommand command)
    {
        if (!OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("Job Objects exist only on Windows.");
        return new JobProcess(WindowsJob.Start(spec.Command, spec.Argv, spec.WorkingDirectory, command.Environment,
            spec.MaxMemoryBytes, spec.MaxCpuSeconds, spec.MaxActiveProcesses));
    }

    /// <summary>
    /// Tries Job Objects for real: a job with limits is created; <c>cmd /d /c exit 7</c> started exactly as runs are
    /// (suspended, assigned, resumed) must return 7; and a command starting a child must fail with one active process
    /// allowed and succeed with eight (the process limit binds).
    /// </summary>
    public static WindowsJobObservation Probe()
    {
        if (!OperatingSystem.IsWindows()) return new WindowsJobObservation(null, false, "Job Objects exist only on Windows");
        if (!WindowsJob.Probe(out var detail)) return new WindowsJobObservation(null, false, detail);
        var isolator = new WindowsJobIsolator();
        var cmd = Environment.GetEnvironmentVariable("ComSpec") is { Length: > 0 } comspec ? comspec : Path.Combine(Environment.SystemDirectory, "cmd.exe");
        var started = Try(isolator, cmd, new[] { "/d", "/c", "exit", "7" }, maxProcesses: null);
        if (started.ExitCode != 7) return new WindowsJobObservation(null, false, "a command started in a job did not run as asked: " + started.Describe());
        var child = new[] { "/d", "/c", cmd, "/d", "/c", "exit", "0" };
        var denied = Try(isolator, cmd, child, maxProcesses: 1);
        var allowed = Try(isolator, cmd, child, maxProcesses: 8);
        var limit = denied.ExitCode != 0 && allowed.ExitCode == 0;
        return new WindowsJobObservation(isolator, limit, limit
            ? "a command ran in a job; the active-process limit refused its child"
            : $"the active-process limit was not seen to bind (limit 1: {denied.Describe()}; limit 8: {allowed.Describe()})");
    }

    private static ProbeRun Try(WindowsJobIsolator isolator, string program, string[] argv, long? maxProcesses)
    {
        var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.OrdinalIgnoreCase);
        var spec = new LaunchSpec { Command = program, Argv = argv, WorkingDirectory = Environment.SystemDirectory, MaxActiveProcesses = maxProcesses };
        var command = new SupervisedCommand
        {
            Argv = new[] { program }.Concat(argv).ToArray(), Environment = env, WorkingDirectory = spec.WorkingDirectory,
            TimeoutMs = 5000, MaxOutputBytes = 1 << 16, DisplayName = program, Target = program,
        };
        try
        {
            using var p = isolator.Start(spec, command);
            p.Stdin.Dispose();
            var stdout = Bench.ProcessMeasure.ReadAllAsync(p.Stdout);
            var stderr = Bench.ProcessMeasure.ReadAllAsync(p.Stderr);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try { p.WaitForExitAsync(timeout.Token).GetAwaiter().GetResult(); }
            catch (OperationCanceledException)
            {
                p.Kill();
                return new ProbeRun(false, -1, "", "timed out");
            }
            Task.WaitAll(new Task[] { stdout, stderr }, TimeSpan.FromSeconds(2));
            string Text(Task<byte[]> t) => t.IsCompletedSuccessfully ? System.Text.Encoding.UTF8.GetString(t.Result) : "";
            return new ProbeRun(p.ExitCode == 0, p.ExitCode, Text(stdout), Text(stderr));
        }
        catch (RequiemException ex)
        {
            return new ProbeRun(false, -1, "", ex.Message);
        }
    }

    /// <summary>A job's main process as the supervisor drives it; disposing closes the job, which kills what is left in it.</summary>
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
