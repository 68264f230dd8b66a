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

    [Fact]
    public async Task TheTimeoutKillsTheTreeAndIsReportedAsSigkill()
    {
        if (OperatingSystem.IsWindows()) return;
        var marker = Path.Combine(_dir, "survived");
        // The grandchild would write the marker after the timeout if it were not killed with its parent.
        using var o = await ProcessSupervisor.RunAsync(Sh($"(sleep 3; : > {marker}) & sleep 30", timeoutMs: 300), _store, CancellationToken.None).ContinueWith(t => new Disposer(t.Result));
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
