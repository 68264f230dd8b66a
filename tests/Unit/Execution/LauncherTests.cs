using System.Diagnostics;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Execution;

/// <summary>The native launcher (src/native/requiem-launch.c) on its own, and how the engine reports its failures.</summary>
public sealed class LauncherTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-launch-" + Guid.NewGuid().ToString("n"));

    public LauncherTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>The launcher next to the engine, or null where it is not expected (not Linux, or no C compiler at build time).</summary>
    private static string? Launcher()
    {
        if (!OperatingSystem.IsLinux()) return null;
        var path = SandboxProbe.LauncherCandidate();
        var compiler = SandboxProbe.Which("cc", "/usr/bin/cc") is not null;
        if (compiler) Assert.True(path is not null && File.Exists(path), $"a C compiler is present, so the build must ship requiem-launch at {path}");
        return path is not null && File.Exists(path) ? path : null;
    }

    private static (int Code, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(10_000), "the launcher did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void RunsTheCommandAsPid2OfAFreshNamespaceWithSignalsAtDefault()
    {
        if (Launcher() is not { } launcher || SandboxProbe.Geteuid() != 0) return;
        var r = Run(launcher, "--pidns", "--netns", "--", "/bin/sh", "-c", "echo $$; grep -c : /proc/self/net/dev; grep SigIgn /proc/self/status");
        Assert.Equal(0, r.Code);
        var lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("2", lines[0]);
        Assert.Equal("1", lines[1]); // only lo
        Assert.Equal("SigIgn:\t0000000000000000", lines[2]);
    }

    [Fact]
    public void PassesTheExitCodeAnd128PlusTheSignal()
    {
        if (Launcher() is not { } launcher) return;
        var userns = SandboxProbe.Geteuid() != 0 ? new[] { "--userns" } : Array.Empty<string>();
        Assert.Equal(7, Run(launcher, userns.Concat(new[] { "--pidns", "--", "/bin/sh", "-c", "exit 7" }).ToArray()).Code);
        Assert.Equal(137, Run(launcher, userns.Concat(new[] { "--pidns", "--", "/bin/sh", "-c", "kill -KILL $$" }).ToArray()).Code);
    }

    [Fact]
    public void SetsEveryRlimitSoftAndHardBeforeExec()
    {
        if (Launcher() is not { } launcher) return;
        var r = Run(launcher, "--as", "300000000", "--cpu", "9", "--nofile", "40", "--nproc", "500", "--", "/bin/cat", "/proc/self/limits");
        Assert.Equal(0, r.Code);
        Assert.Matches(@"Max address space\s+300000000\s+300000000", r.Out);
        Assert.Matches(@"Max cpu time\s+9\s+9", r.Out);
        Assert.Matches(@"Max open files\s+40\s+40", r.Out);
        Assert.Matches(@"Max processes\s+500\s+500", r.Out);
    }

    [Fact]
    public void JoinsTheHeldNetworkNamespaceOnlyWhenItsInodeMatches()
    {
        if (Launcher() is not { } launcher || SandboxProbe.Geteuid() != 0) return;
        var held = SharedNetworkNamespace.Get(launcher);
        Assert.NotNull(held);
        var (path, inode) = held.Value;
        Assert.NotEqual(SharedNetworkNamespace.NamespaceInode("/proc/self/ns/net"), inode);
        var r = Run(launcher, "--pidns", "--join-netns", path, "--netns-inode", inode.ToString(), "--", "/bin/cat", "/proc/self/net/dev");
        Assert.Equal(0, r.Code);
        Assert.Equal(new[] { "lo" }, r.Out.Split('\n').Skip(2).Select(l => l.Split(':')[0].Trim()).Where(x => x.Length > 0));
        var wrong = Run(launcher, "--pidns", "--join-netns", path, "--netns-inode", (inode + 1).ToString(), "--", "/bin/true");
        Assert.Equal(125, wrong.Code);
        Assert.Contains("not the expected one", wrong.Err, StringComparison.Ordinal);
        Assert.Equal(125, Run(launcher, "--join-netns", path, "--", "/bin/true").Code); // an inode is required
    }

    [Fact]
    public void DropsEveryCapabilityAndSetsNoNewPrivsForRootCommands()
    {
        if (Launcher() is not { } launcher || SandboxProbe.Geteuid() != 0) return;
        static string Field(string status, string name) =>
            status.Split('\n').First(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim();
        foreach (var args in new[] { new[] { "--pidns" }, new[] { "--pidns", "--netns" } })
        {
            var status = Run(launcher, args.Concat(new[] { "--", "/bin/cat", "/proc/self/status" }).ToArray()).Out;
            foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }) Assert.Equal("0000000000000000", Field(status, set));
            Assert.Equal("1", Field(status, "NoNewPrivs"));
        }
        // /proc is the PID namespace's own: init (1) and the command (2), nothing of the host.
        var pids = Run(launcher, "--pidns", "--", "/bin/ls", "/proc").Out.Split('\n').Where(l => l.Length > 0 && l.All(char.IsAsciiDigit)).ToArray();
        Assert.Equal(new[] { "1", "2" }, pids);
    }

    [Theory]
    [InlineData(new[] { "--root", "ro-host", "--bind", "/tmp/../etc", "--", "/bin/true" }, "not a normalised absolute path")]
    [InlineData(new[] { "--root", "elsewhere", "--", "/bin/true" }, "--root: ro-host or tmpfs")]
    [InlineData(new[] { "--bind", "/tmp", "--", "/bin/true" }, "mounts need --pidns")]
    public void RefusesBadMountOptionsWith125(string[] args, string message)
    {
        if (Launcher() is not { } launcher) return;
        var r = Run(launcher, args);
        Assert.Equal(125, r.Code);
        Assert.Contains(message, r.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--bogus", "--", "/bin/true" }, "unknown option --bogus")]
    [InlineData(new[] { "--as", "-5", "--", "/bin/true" }, "--as: not a non-negative integer")]
    [InlineData(new[] { "--cpu", "12x", "--", "/bin/true" }, "--cpu: not a non-negative integer")]
    [InlineData(new[] { "--nofile" }, "--nofile needs a value")]
    [InlineData(new[] { "--pidns", "--" }, "no command after --")]
    [InlineData(new[] { "--cgroup-procs", "/nonexistent/cgroup.procs", "--", "/bin/true" }, "open /nonexistent/cgroup.procs")]
    public void RefusesBadSetupWith125AndAMessage(string[] args, string message)
    {
        if (Launcher() is not { } launcher) return;
        var r = Run(launcher, args);
        Assert.Equal(125, r.Code);
        Assert.StartsWith("requiem-launch: ", r.Err, StringComparison.Ordinal);
        Assert.Contains(message, r.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void ReportsACommandThatCannotBeExecutedLikeAShell()
    {
        if (Launcher() is not { } launcher) return;
        var missing = Run(launcher, "--", Path.Combine(_dir, "missing"));
        Assert.Equal(127, missing.Code);
        Assert.Contains("cannot execute", missing.Err, StringComparison.Ordinal);
        var notExecutable = Path.Combine(_dir, "data.txt");
        File.WriteAllText(notExecutable, "x");
        Assert.Equal(126, Run(launcher, "--", notExecutable).Code);
    }

    [Fact]
    public void WithoutRootMakesAUserNamespaceAndKeepsTheCallersIdentity()
    {
        if (!OperatingSystem.IsLinux() || Launcher() is not { } launcher || SandboxProbe.Geteuid() != 0) return;
        if (SandboxProbe.Which("setpriv", "/usr/bin/setpriv") is not { } setpriv) return;
        // A copy that user 'nobody' can execute, wherever the build output lives.
        var copy = Path.Combine(_dir, "requiem-launch");
        File.Copy(launcher, copy);
        File.SetUnixFileMode(_dir, (UnixFileMode)Convert.ToInt32("755", 8));
        File.SetUnixFileMode(copy, (UnixFileMode)Convert.ToInt32("755", 8));
        var r = Run(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", copy, "--userns", "--pidns", "--netns", "--nproc", "64",
            "--", "/bin/sh", "-c", "echo $$; id -u; grep -c : /proc/self/net/dev");
        if (r.Code == 125 && r.Err.Contains("CLONE_NEWUSER", StringComparison.Ordinal)) return; // user namespaces are disabled on this kernel
        Assert.Equal(0, r.Code);
        Assert.Equal(new[] { "2", "65534", "1" }, r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void TheEngineTurnsALauncherSetupFailureIntoSandboxSetupFailedAndRunsNothing()
    {
        if (Launcher() is null || SandboxProbe.Geteuid() != 0) return;
        var probe = SandboxProbe.Current;
        if (probe.Isolator != "requiem-launch") return;
        // Not a cgroup: the per-run folder gets no cgroup.procs, so joining it fails before anything runs.
        var fake = Path.Combine(_dir, "not-a-cgroup");
        Directory.CreateDirectory(fake);
        var ws = Path.Combine(_dir, "ws");
        Directory.CreateDirectory(ws);
        var marker = Path.Combine(ws, "ran");
        var store = CasStore.Open(Path.Combine(_dir, "cas"), HashPrimitive.Select(false));
        var request = ExecRequestParser.Parse(
            $"{{\"command\":\"/bin/sh\",\"argv\":[\"-c\",\"touch {marker}\"],\"workspace_root\":\"{ws}\",\"policy\":{{\"max_processes\":5}}}}");
        var ex = Assert.Throws<RequiemException>(() => ExecRunner.Run(request, new ExecOptions { Store = store, Probe = probe.WithPidsCgroupBase(fake) }));
        Assert.Equal("SandboxSetupFailed", ex.ErrorId);
        Assert.Contains("cgroup.procs", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
    }
}
