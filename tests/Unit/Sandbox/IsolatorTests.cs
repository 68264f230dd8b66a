using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Sandbox;

/// <summary>The command lines each isolator builds (the same builder serves the probe and every run).</summary>
public sealed class IsolatorTests
{
    private static readonly FilesystemLayout Hermetic =
        new(FilesystemView.Hermetic, new[] { new FilesystemMount(MountKind.Tmpfs, "/tmp", null), new FilesystemMount(MountKind.Bind, "/w", null) });

    private static LaunchSpec Spec(bool seccomp = false, string? cgroup = null, long? memory = null) => new()
    {
        Command = "/bin/true", Argv = new[] { "a" }, WorkingDirectory = "/w", Filesystem = Hermetic, Seccomp = seccomp, DenyNetwork = true,
        CgroupProcs = cgroup, MaxMemoryBytes = memory,
    };

    [Fact]
    public void BubblewrapGetsTheSeccompProgramAsDescriptor3AndDropsEveryCapabilityWithSetprivInside()
    {
        var bwrap = new BubblewrapIsolator("/usr/bin/bwrap", "/bin/sh") { Setpriv = "/usr/bin/setpriv", Prlimit = "/usr/bin/prlimit", SeccompProgram = "/p/filter.bpf" };
        var c = bwrap.Build(Spec(seccomp: true, memory: 1024));
        Assert.Equal("/usr/bin/bwrap", c.File);
        Assert.Equal(new[] { (3, "/p/filter.bpf") }, c.Files);
        var args = c.Args.ToList();
        Assert.Equal("3", args[args.IndexOf("--seccomp") + 1]);
        Assert.Contains("--unshare-net", args);
        Assert.DoesNotContain("--cap-drop", args); // setpriv clears the bounding set that --cap-drop leaves to root
        var tail = args.Skip(args.IndexOf("--") + 1).ToList();
        Assert.Equal(new[] { "/usr/bin/prlimit", "--as=1024", "--", "/usr/bin/setpriv" }, tail.Take(4));
        Assert.Equal(new[] { "/bin/true", "a" }, tail.TakeLast(2));
        Assert.Equal("/", args[args.LastIndexOf("--remount-ro") + 1]); // the hermetic root is made read-only last
    }

    [Fact]
    public void BubblewrapJoinsAPidsCgroupThroughAShortPreludeAndFallsBackToCapDropWithoutSetpriv()
    {
        var bwrap = new BubblewrapIsolator("/usr/bin/bwrap", "/bin/sh");
        var c = bwrap.Build(Spec(cgroup: "/sys/fs/cgroup/pids/requiem/run-1/cgroup.procs"));
        Assert.Equal("/bin/sh", c.File);
        Assert.Equal("/sys/fs/cgroup/pids/requiem/run-1/cgroup.procs", c.Args[2]);
        Assert.Equal("/usr/bin/bwrap", c.Args[3]);
        Assert.Empty(c.Files);
        Assert.Contains("ALL", c.Args);
        Assert.Throws<InvalidOperationException>(() => bwrap.Build(Spec(seccomp: true))); // no program: never silently unfiltered
    }

    [Fact]
    public void BubblewrapDropsCapabilitiesItselfSoTheCommandIsItsDirectExec()
    {
        var bwrap = new BubblewrapIsolator("/usr/bin/bwrap", "/bin/sh") { UserNamespace = true, Prlimit = "/usr/bin/prlimit", SeccompProgram = "/p/filter.bpf" };
        var args = bwrap.Build(Spec(seccomp: true)).Args.ToList();
        Assert.Contains("--unshare-user", args);
        Assert.Equal("ALL", args[args.IndexOf("--cap-drop") + 1]);
        // No limits asked: nothing runs between bwrap and the command.
        Assert.Equal(new[] { "/bin/true", "a" }, args.Skip(args.IndexOf("--") + 1));
        var limited = bwrap.Build(Spec(memory: 1024)).Args.ToList();
        Assert.Equal(new[] { "/usr/bin/prlimit", "--as=1024", "--", "/bin/true", "a" }, limited.Skip(limited.IndexOf("--") + 1));
    }

    [Fact]
    public void RecognisesEachIsolatorsOwnSetupFailureOnly()
    {
        var bwrap = new BubblewrapIsolator("/usr/bin/bwrap", "/bin/sh");
        Assert.True(bwrap.IsSetupFailure(1, "bwrap: Can't mount tmpfs on /newroot: Operation not permitted\n"));
        Assert.True(bwrap.IsSetupFailure(125, "requiem-prelude: cannot join the run's pids cgroup x\n"));
        Assert.False(bwrap.IsSetupFailure(1, "the command's own message\n"));
        var launcher = new LauncherIsolator("/x/requiem-launch", userNamespace: false);
        Assert.True(launcher.IsSetupFailure(125, "requiem-launch: mount tmpfs /tmp: Operation not permitted\n"));
        Assert.False(launcher.IsSetupFailure(1, "requiem-launch: cannot execute x\n"));
    }

    [Fact]
    public void TheLauncherRendersTheSameLayoutWithItsOwnOptions()
    {
        var launcher = new LauncherIsolator("/x/requiem-launch", userNamespace: true) { Limits = true };
        var c = launcher.Build(Spec(seccomp: true, memory: 4096) with { DenyNetwork = false });
        Assert.Equal("/x/requiem-launch", c.File);
        Assert.Equal(new[] { "--userns", "--pidns", "--root", "tmpfs", "--tmpfs", "/tmp", "--bind", "/w", "--seccomp", "--as", "4096", "--", "/bin/true", "a" }, c.Args);
        Assert.Empty(c.Files);
    }

    [Fact]
    public void TheUnshareChainHasAShellInitAndNoFileSystemView()
    {
        var chain = new UnshareIsolator("/usr/bin/unshare", "/bin/sh") { Setpriv = "/usr/bin/setpriv", Mount = "/usr/bin/mount" };
        var c = chain.Build(Spec());
        Assert.Equal("/usr/bin/unshare", c.File);
        Assert.Contains("--net", c.Args);
        Assert.DoesNotContain("/w", c.Args.Take(c.Args.ToList().IndexOf("--"))); // no mounts of its own
        Assert.Equal("unshare", chain.Name);
        Assert.Null(new UnshareIsolator(null, "/bin/sh").Name);
    }

    [Fact]
    public void EachIsolatorProbesItselfAndAProgramThatIsNotTheMechanismIsRejectedWithANote()
    {
        if (!OperatingSystem.IsLinux()) return;
        var notes = new List<string>();
        // /bin/true exits 0 but prints nothing: no PID namespace was seen, so neither isolator is taken.
        Assert.Null(BubblewrapIsolator.Probe("/bin/true", "/bin/sh", isRoot: false, new ToolChain(null, null), notes));
        Assert.Contains(notes, n => n.StartsWith("bwrap --unshare-pid did not work", StringComparison.Ordinal));
        Assert.Null(LauncherIsolator.Probe("/bin/true", isRoot: SandboxProbe.Geteuid() == 0, notes));
        Assert.Contains(notes, n => n.Contains("--pidns did not work", StringComparison.Ordinal));
        // Without unshare the chain runs without a namespace, and nothing is claimed for it.
        var none = UnshareIsolator.Probe(null, "/bin/sh", isRoot: false, new ToolChain(null, null), notes);
        Assert.Null(none.Isolator.Name);
        Assert.Null(none.Isolation);
        Assert.False(none.NetworkNamespace);
        Assert.False(none.Limits);
    }

    [Fact]
    public void TheChosenIsolatorsObservationIsWhatHealthReports()
    {
        if (!OperatingSystem.IsLinux()) return;
        var probe = SandboxProbe.Current;
        Assert.NotNull(probe.Observation);
        Assert.Same(probe.Observation!.Isolator, probe.LinuxIsolator);
        Assert.Equal(probe.Observation.Seccomp, probe.StatusOf(Controls.SeccompBpf) == CapabilityStatus.Enforced);
        Assert.Equal(probe.Observation.Filesystem is { Confined: true }, probe.StatusOf(Controls.WorkspaceConfinement) == CapabilityStatus.Enforced);
        Assert.Equal(probe.Observation.Limits, probe.StatusOf(Controls.MemoryLimit) == CapabilityStatus.Enforced);
    }

    [Fact]
    public void TheJobObjectIsolatorClaimsNothingOffWindows()
    {
        if (OperatingSystem.IsWindows()) return;
        var job = WindowsJobIsolator.Probe();
        Assert.False(job.JobObjects);
        Assert.Null(job.Isolator);
        Assert.False(job.ProcessLimit);
        Assert.Throws<PlatformNotSupportedException>(() => new WindowsJobIsolator().Start(
            new LaunchSpec { Command = "cmd.exe", WorkingDirectory = "/" },
            new Requiem.Engine.Processes.SupervisedCommand
            {
                Argv = new[] { "cmd.exe" }, Environment = new Dictionary<string, string>(), WorkingDirectory = "/", TimeoutMs = 1, MaxOutputBytes = 1,
                DisplayName = "cmd.exe", Target = "cmd.exe",
            }));
        Assert.Null(SandboxProbe.Current.WindowsJob);
        Assert.Equal(CapabilityStatus.Unsupported, SandboxProbe.Current.StatusOf(Controls.JobObjects));
    }
}
