using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Processes;
using Xunit;

namespace Requiem.Tests.Sandbox;

/// <summary>Supervision outside the exec runner: timeout with tree kill, bounded capture, stdin.</summary>
public sealed class ProcessSupervisorTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-xunit-" + Guid.NewGuid().ToString("n"));
    private readonly CasStore _store;

    public ProcessSupervisorTests() => _store = CasStore.Open(Path.Combine(_dir, "cas"), HashPrimitive.Select(false));

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static SupervisedCommand Sh(string script, long timeoutMs = 30000, long max = 1 << 20, string? stdin = null) => new()
    {
        Argv = new[] { "/bin/sh", "-c", script },
        Environment = new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" },
        WorkingDirectory = "/",
        Stdin = stdin,
        TimeoutMs = timeoutMs,
        MaxOutputBytes = max,
        DisplayName = "/bin/sh",
        Target = "/bin/sh",
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TheTimeoutKillsTheTreeAndIsReportedAsSigkill(bool onCallingThread)
    {
        if (OperatingSystem.IsWindows()) return;
        var marker = Path.Combine(_dir, "survived-" + onCallingThread);
        // The grandchild would write the marker after the timeout if it were not killed with its parent.
        using var o = new Disposer(await RunWith(Sh($"(sleep 3; : > {marker}) & sleep 30", timeoutMs: 300), new SupervisionOptions { OnCallingThread = onCallingThread }));
        Assert.True(o.Outcome.TimedOut);
        Assert.Null(o.Outcome.ExitCode);
        Assert.Equal("SIGKILL", o.Outcome.Signal);
        await Task.Delay(3500);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task OutputBeyondTheBoundIsDiscardedAndStdinIsWritten()
    {
        if (OperatingSystem.IsWindows()) return;
        using var o = await ProcessSupervisor.RunAsync(Sh("cat; head -c 100000 /dev/zero", max: 1000, stdin: "hello"), _store, CancellationToken.None).ContinueWith(t => new Disposer(t.Result));
        Assert.Equal(0, o.Outcome.ExitCode);
        Assert.True(o.Outcome.Stdout.Truncated);
        Assert.Equal(1000, o.Outcome.Stdout.Captured);
        Assert.StartsWith("hello", o.Outcome.Stdout.Head(5), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AProgramThatCannotStartIsCommandStartFailed()
    {
        if (OperatingSystem.IsWindows()) return;
        var ex = await Assert.ThrowsAsync<Requiem.Engine.RequiemException>(() => ProcessSupervisor.RunAsync(new SupervisedCommand
        {
            Argv = new[] { "/nonexistent/program" }, Environment = new Dictionary<string, string>(), WorkingDirectory = "/",
            TimeoutMs = 1000, MaxOutputBytes = 10, DisplayName = "/nonexistent/program", Target = "/nonexistent/program",
        }, _store, CancellationToken.None));
        Assert.Equal("CommandStartFailed", ex.ErrorId);
        Assert.Equal("/nonexistent/program", ex.Target);
    }

    private Task<SupervisedOutcome> RunWith(SupervisedCommand command, SupervisionOptions options, CancellationToken cancel = default) =>
        ProcessSupervisor.RunAsync(() => ProcessSupervisor.Start(command), command, _store, options, cancel);

    [Fact]
    public async Task OnTheCallingThreadTheRunIsOverWhenTheCallReturns()
    {
        if (OperatingSystem.IsWindows()) return;
        var task = RunWith(Sh("echo hi; echo err >&2; exit 3"), new SupervisionOptions { OnCallingThread = true });
        // Nothing was left for a thread-pool continuation: the exit, both pipes and the outcome are done here.
        Assert.True(task.IsCompletedSuccessfully);
        using var o = new Disposer(await task);
        Assert.Equal(3, o.Outcome.ExitCode);
        Assert.Equal("hi\n", o.Outcome.Stdout.Head(10));
        Assert.Equal("err\n", o.Outcome.Stderr.Head(10));
    }

    [Fact]
    public async Task OnTheCallingThreadCancellationKillsTheRunAndIsACancellation()
    {
        if (OperatingSystem.IsWindows()) return;
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var started = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => RunWith(Sh("sleep 30"), new SupervisionOptions { OnCallingThread = true }, cancel.Token));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(20), $"took {started.Elapsed}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AFailureWhileItRunsKillsTheRunBeforeItGoesUp(bool onCallingThread)
    {
        if (OperatingSystem.IsWindows()) return;
        var marker = Path.Combine(_dir, "survived-" + onCallingThread);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => RunWith(Sh($"sleep 1; : > {marker}"),
            new SupervisionOptions { OnCallingThread = onCallingThread, WhileRunning = () => throw new InvalidOperationException("canonical form failed") }));
        Assert.Equal("canonical form failed", ex.Message);
        await Task.Delay(1500);
        Assert.False(File.Exists(marker));
    }

    private sealed class Disposer : IDisposable
    {
        public Disposer(SupervisedOutcome outcome) => Outcome = outcome;
        public SupervisedOutcome Outcome { get; }
        public void Dispose()
        {
            Outcome.Stdout.Dispose();
            Outcome.Stderr.Dispose();
        }
    }
}
