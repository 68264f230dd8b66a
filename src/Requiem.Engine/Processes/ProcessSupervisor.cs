using System.Diagnostics;
using System.Text;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;

namespace Requiem.Engine.Processes;

/// <summary>One supervised launch: the program and arguments (already wrapped by the isolator), environment, stdin, limits.</summary>
public sealed record SupervisedCommand
{
    /// <summary>argv[0] is the program.</summary>
    public required IReadOnlyList<string> Argv { get; init; }
    /// <summary>The complete environment (nothing else is inherited).</summary>
    public required IReadOnlyDictionary<string, string> Environment { get; init; }
    public required string WorkingDirectory { get; init; }
    /// <summary>Text written to stdin, then closed; null: stdin is closed at once.</summary>
    public string? Stdin { get; init; }
    public required long TimeoutMs { get; init; }
    public required long MaxOutputBytes { get; init; }
    /// <summary>Files opened read-only at given descriptors in the child (bwrap's <c>--seccomp 3</c>; process host only).</summary>
    public IReadOnlyList<(int Fd, string Path)> ReadOnlyFiles { get; init; } = Array.Empty<(int, string)>();
    /// <summary>The command as the user named it, for errors (TargetObject) and messages.</summary>
    public required string DisplayName { get; init; }
    public required string Target { get; init; }
}

/// <summary>How the supervisor runs a command beyond the command itself.</summary>
public sealed class SupervisionOptions
{
    /// <summary>Work for the calling thread while the command runs (after the start, before the wait); if it throws, the run is killed and waited for first.</summary>
    public Action? WhileRunning { get; init; }

    /// <summary>
    /// The caller blocks for this run anyway (a single request on the pipeline thread): wait for the exit (wait4) and
    /// the pipes on the calling thread instead of through thread-pool continuations, so the result is recorded on the
    /// thread that will write it, without a hop.
    /// </summary>
    public bool OnCallingThread { get; init; }
}

/// <summary>How a supervised run ended and what it wrote (the captures are the caller's to store and dispose).</summary>
public sealed class SupervisedOutcome
{
    public int? ExitCode { get; internal set; }
    public string? Signal { get; internal set; }
    public bool TimedOut { get; internal set; }
    public required BoundedCapture Stdout { get; init; }
    public required BoundedCapture Stderr { get; init; }
    /// <summary>What went wrong around the command (a descendant holding the pipes), for the confidence reasons.</summary>
    public List<string> ExtraReasons { get; } = new();

    internal void DisposeCaptures()
    {
        Stdout.Dispose();
        Stderr.Dispose();
    }
}

/// <summary>A started child as the supervisor drives it, whatever started it (process host, Process, a Windows job).</summary>
public interface ISupervisedProcess : IDisposable
{
    Stream Stdin { get; }
    Stream Stdout { get; }
    Stream Stderr { get; }
    Task WaitForExitAsync(CancellationToken cancel);
    /// <summary>Kills the whole tree (process group, PID namespace's init, or job).</summary>
    void Kill();
    int ExitCode { get; }
}

/// <summary>
/// Starts a command and supervises it to the end: stdin written or closed, stdout and stderr captured with a bound
/// (<see cref="BoundedCapture"/>) on the engine's dedicated I/O threads, the timeout and cancellation killing the whole
/// tree, and a bounded grace period for descendants that keep the pipes open. On Linux (x64/arm64) the child is
/// started by <see cref="ProcessHost"/>, elsewhere by System.Diagnostics.Process; a Windows job brings its own start.
/// </summary>
public static class ProcessSupervisor
{
    /// <summary>Starts <paramref name="command"/> with the process host (or Process) and supervises it.</summary>
    public static Task<SupervisedOutcome> RunAsync(SupervisedCommand command, CasStore store, CancellationToken cancel) =>
        RunAsync(() => Start(command), command, store, cancel);

    /// <summary>Starts <paramref name="command"/> with the process host (Linux x64/arm64) or Process; <c>CommandStartFailed</c> when it cannot.</summary>
    public static ISupervisedProcess Start(SupervisedCommand command)
    {
        try
        {
            return ProcessHost.Supported ? StartHosted(command) : StartWithProcess(command);
        }
        catch (Exception ex) when (ex is ProcessStartException or System.ComponentModel.Win32Exception or InvalidOperationException or ArgumentException or IOException)
        {
            throw new RequiemException("CommandStartFailed", ErrorKind.InvalidOperation, $"Could not start '{command.DisplayName}': {ex.Message}", command.Target, ex);
        }
    }

    /// <summary>Supervises the child <paramref name="start"/> starts (an isolator's launch); disposes it at the end.</summary>
    public static Task<SupervisedOutcome> RunAsync(Func<ISupervisedProcess> start, SupervisedCommand command, CasStore store, CancellationToken cancel) =>
        RunAsync(start, command, store, new SupervisionOptions(), cancel);

    /// <summary>
    /// As <see cref="RunAsync(Func{ISupervisedProcess}, SupervisedCommand, CasStore, CancellationToken)"/>, with work to
    /// do on the calling thread while the command runs, and optionally the waits on the calling thread too
    /// (<see cref="SupervisionOptions.OnCallingThread"/>).
    /// </summary>
    public static async Task<SupervisedOutcome> RunAsync(Func<ISupervisedProcess> start, SupervisedCommand command, CasStore store, SupervisionOptions options, CancellationToken cancel)
    {
        var outcome = NewOutcome(command, store);
        ISupervisedProcess process;
        try
        {
            process = start();
        }
        catch
        {
            outcome.DisposeCaptures();
            throw;
        }
        return await SuperviseAsync(process, command, outcome, options, cancel).ConfigureAwait(false);
    }

    private static SupervisedOutcome NewOutcome(SupervisedCommand command, CasStore store) =>
        new() { Stdout = new BoundedCapture(command.MaxOutputBytes, store), Stderr = new BoundedCapture(command.MaxOutputBytes, store) };

    private static async Task<SupervisedOutcome> SuperviseAsync(ISupervisedProcess process, SupervisedCommand command, SupervisedOutcome outcome, SupervisionOptions options, CancellationToken cancel)
    {
        using (process)
        {
            try
            {
                await SuperviseCoreAsync(process, command, outcome, options, cancel).ConfigureAwait(false);
            }
            catch
            {
                outcome.DisposeCaptures();
                throw;
            }
        }
        return outcome;
    }

    private static async Task SuperviseCoreAsync(ISupervisedProcess process, SupervisedCommand command, SupervisedOutcome outcome, SupervisionOptions options, CancellationToken cancel)
    {
        var stdin = process.Stdin;
        var stdout = process.Stdout;
        var stderr = process.Stderr;
        // stdin and the two pumps do blocking pipe I/O on dedicated, reused threads (ExecIoThreads): on the thread pool
        // they would starve it (2 blocked reads per run on a 2-core machine) and delay every continuation.
        var stdinTask = command.Stdin is { } text
            ? ExecIoThreads.Run(() =>
            {
                try { stdin.Write(Encoding.UTF8.GetBytes(text)); }
                catch (IOException) { /* the command closed its stdin early */ }
                finally { try { stdin.Dispose(); } catch (IOException) { } }
            })
            : CloseNow(stdin);
        var outTask = ExecIoThreads.Run(() => outcome.Stdout.Pump(stdout));
        var errTask = ExecIoThreads.Run(() => outcome.Stderr.Pump(stderr));

        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(command.TimeoutMs));
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancel);
        if (options.WhileRunning is { } whileRunning)
        {
            try
            {
                whileRunning();
            }
            catch
            {
                // Never leave the run behind: the whole tree is killed and waited for (bounded) before the failure goes up.
                process.Kill();
                try { await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch (TimeoutException) { }
                await Task.WhenAny(Task.WhenAll(outTask, errTask, stdinTask), Task.Delay(5000, CancellationToken.None)).ConfigureAwait(false);
                throw;
            }
        }
        var killed = false;
        if (options.OnCallingThread && process is Hosted hosted)
        {
            killed = hosted.WaitForExitHere(linked.Token);
        }
        else
        {
            try
            {
                await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                killed = true;
            }
        }
        // After the command exits its namespace is gone, so the pipes close; give stragglers a bounded grace period.
        var graceMs = killed ? 5000 : 2000;
        bool pumpsDone;
        if (options.OnCallingThread)
        {
            // Each wait is woken directly by the I/O thread that finishes (no continuation queued to the pool).
            var grace = System.Diagnostics.Stopwatch.StartNew();
            pumpsDone = Settle(outTask, graceMs) && Settle(errTask, Math.Max(0, graceMs - (int)grace.ElapsedMilliseconds));
        }
        else
        {
            using var grace = new CancellationTokenSource();
            var pumps = Task.WhenAll(outTask, errTask);
            pumpsDone = await Task.WhenAny(pumps, Task.Delay(graceMs, grace.Token)).ConfigureAwait(false) == pumps;
            grace.Cancel();
        }
        if (!pumpsDone)
        {
            process.Kill();
            outcome.ExtraReasons.Add("a descendant kept stdout/stderr open after the command exited; it was killed");
            try { stdout.Dispose(); stderr.Dispose(); } catch (IOException) { }
            await Task.WhenAny(Task.WhenAll(outTask, errTask), Task.Delay(2000, CancellationToken.None)).ConfigureAwait(false);
        }
        if (options.OnCallingThread) Settle(stdinTask, Timeout.Infinite);
        try { await stdinTask.ConfigureAwait(false); } catch (IOException) { }
        if (killed)
        {
            try { await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch (TimeoutException) { }
            if (cancel.IsCancellationRequested && !timeout.IsCancellationRequested) cancel.ThrowIfCancellationRequested();
            outcome.TimedOut = true;
            outcome.ExitCode = null;
            outcome.Signal = "SIGKILL";
        }
        else
        {
            outcome.ExitCode = process.ExitCode;
        }
    }

    /// <summary>Blocks until <paramref name="task"/> has ended (any way) or the time is up; its outcome is observed by the await that follows.</summary>
    private static bool Settle(Task task, int milliseconds)
    {
        try { return task.Wait(milliseconds); }
        catch (AggregateException) { return true; }
    }

    private static Task CloseNow(Stream stdin)
    {
        try { stdin.Dispose(); } catch (IOException) { }
        return Task.CompletedTask;
    }

    /// <summary>Linux: the engine's process host (posix_spawn, own process group, signals at default, wait4).</summary>
    private static ISupervisedProcess StartHosted(SupervisedCommand command) =>
        new Hosted(ProcessHost.Start(new ProcessSpec
        {
            Argv = command.Argv,
            Environment = command.Environment.Select(kv => kv.Key + "=" + kv.Value).ToArray(),
            WorkingDirectory = command.WorkingDirectory,
            StdinPipe = true,
            ReadOnlyFiles = command.ReadOnlyFiles,
        }));

    /// <summary>Other systems: System.Diagnostics.Process (no descriptors can be passed).</summary>
    private static ISupervisedProcess StartWithProcess(SupervisedCommand command)
    {
        if (command.ReadOnlyFiles.Count > 0) throw new InvalidOperationException("descriptors can only be passed by the process host");
        var psi = new ProcessStartInfo(command.Argv[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = command.WorkingDirectory,
        };
        foreach (var a in command.Argv.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment.Clear();
        foreach (var (k, v) in command.Environment) psi.Environment[k] = v;
        return new Portable(Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null"));
    }

    private sealed class Hosted : ISupervisedProcess
    {
        private readonly HostedProcess _p;
        public Hosted(HostedProcess p) => _p = p;
        public Stream Stdin => _p.Stdin!;
        public Stream Stdout => _p.Stdout;
        public Stream Stderr => _p.Stderr;
        public Task WaitForExitAsync(CancellationToken cancel) => _p.WaitForExitAsync().WaitAsync(cancel);

        /// <summary>
        /// wait4 on the calling thread; <paramref name="cancel"/> (timeout, Ctrl+C) kills the tree, which ends the wait.
        /// True when the kill found the child still running, as the async wait's cancellation would have.
        /// </summary>
        public bool WaitForExitHere(CancellationToken cancel)
        {
            var killed = false;
            using (cancel.UnsafeRegister(_ => { if (_p.KillGroup()) killed = true; }, null))
            {
                _p.WaitForExit();
            }
            return killed; // the registration's Dispose waited for a running callback
        }
        public void Kill() => _p.KillGroup();
        public int ExitCode => _p.WaitForExitAsync().Result.ExitCode;
        public void Dispose() => _p.Dispose();
    }

    private sealed class Portable : ISupervisedProcess
    {
        private readonly Process _p;
        public Portable(Process p) => _p = p;
        public Stream Stdin => _p.StandardInput.BaseStream;
        public Stream Stdout => _p.StandardOutput.BaseStream;
        public Stream Stderr => _p.StandardError.BaseStream;
        public Task WaitForExitAsync(CancellationToken cancel) => _p.WaitForExitAsync(cancel);
        public int ExitCode => _p.ExitCode;
        public void Dispose() => _p.Dispose();

        public void Kill()
        {
            try { _p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            catch (System.ComponentModel.Win32Exception) { }
        }
    }
}
