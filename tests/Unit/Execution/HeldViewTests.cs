using System.Diagnostics;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Execution;

/// <summary>Hermetic views held per layout (<see cref="HeldView"/>, requiem-launch --hold-view / --join-view): root only.</summary>
public sealed class HeldViewTests : IDisposable
{
    // Outside /tmp and /var/tmp: those are a run's private tmpfs, and a held path below one cannot be held.
    private readonly string _dir = "/opt/requiem-heldview-" + Guid.NewGuid().ToString("n");
    private readonly string _ws;

    public HeldViewTests()
    {
        _ws = Path.Combine(_dir, "ws");
        if (Usable() is not null) Directory.CreateDirectory(_ws);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static string? Usable()
    {
        if (!OperatingSystem.IsLinux() || SandboxProbe.Geteuid() != 0) return null;
        var path = SandboxProbe.LauncherCandidate();
        return path is not null && File.Exists(path) ? path : null;
    }

    private static readonly string[] Toolchain = { "/bin", "/lib", "/lib64", "/usr" };

    private FilesystemLayout Layout(params string[] extra) =>
        FilesystemView.Layout(FilesystemView.Hermetic, _ws, Array.Empty<string>(), Toolchain.Concat(extra).ToArray(), Array.Empty<string>());

    private static (int Code, string Out, string Err) Run(string file, IEnumerable<string> args, string cwd)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false, WorkingDirectory = cwd };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(10_000), "the launcher did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private (int Code, string Out, string Err) Join(string launcher, (string Path, ulong Inode) view, FilesystemLayout layout, params string[] command) =>
        Run(launcher, new[] { "--join-view", view.Path, "--view-inode", view.Inode.ToString(), "--pidns" }
            .Concat(FilesystemView.LauncherArgs(layout)).Append("--seccomp").Append("--").Concat(command), _ws);

    [Fact]
    public void ARunJoinsTheHeldViewOnlyWhenItsInodeMatchesAndCannotChangeIt()
    {
        if (Usable() is not { } launcher) return;
        File.WriteAllText(Path.Combine(_ws, "in.txt"), "workspace file");
        var layout = Layout();
        var view = HeldView.Get(launcher, layout, eager: true);
        Assert.True(view is not null, HeldView.LastError);
        var r = Join(launcher, view.Value, layout, "/bin/sh", "-c",
            "cat in.txt; echo; echo x > out.txt && echo wrote-ws; echo t > /tmp/t && echo wrote-tmp; (: > /x) 2>/dev/null || echo root-ro; "
            + "(: > /dev/x) 2>/dev/null || echo dev-ro; (: > /usr/x) 2>/dev/null || echo usr-ro; ls /opt 2>/dev/null | grep -v '^requiem-heldview' ; echo done");
        Assert.Equal(0, r.Code);
        Assert.Equal("workspace file\nwrote-ws\nwrote-tmp\nroot-ro\ndev-ro\nusr-ro\ndone\n", r.Out);
        Assert.True(File.Exists(Path.Combine(_ws, "out.txt")));
        // A second run of the same view: the first one's /tmp is gone.
        var again = Join(launcher, view.Value, layout, "/bin/sh", "-c", "ls -A /tmp | grep -v '^opt$'; echo done");
        Assert.Equal("done\n", again.Out);
        var wrong = Join(launcher, (view.Value.Path, view.Value.Inode + 1), layout, "/bin/true");
        Assert.Equal(125, wrong.Code);
        Assert.Contains("not the expected one", wrong.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void AReadOnlyFileReplacedByRenameRetiresTheView()
    {
        if (Usable() is not { } launcher) return;
        var file = Path.Combine(_dir, "tool.conf");
        File.WriteAllText(file, "v1");
        var layout = Layout(file);
        var first = HeldView.Get(launcher, layout, eager: true);
        Assert.True(first is not null, HeldView.LastError);
        Assert.Equal(first, HeldView.Get(launcher, layout, eager: true)); // reused while nothing changed
        Assert.Equal("v1", Join(launcher, first.Value, layout, "/bin/cat", file).Out);
        File.WriteAllText(file + ".new", "v2");
        File.Move(file + ".new", file, overwrite: true);
        var second = HeldView.Get(launcher, Layout(file), eager: true);
        Assert.True(second is not null, HeldView.LastError);
        Assert.NotEqual(first, second);
        Assert.Equal("v2", Join(launcher, second.Value, layout, "/bin/cat", file).Out);
    }

    [Fact]
    public void AMountMadeOnTheHostRetiresEveryView()
    {
        if (Usable() is not { } launcher) return;
        var dir = Path.Combine(_dir, "data");
        Directory.CreateDirectory(dir);
        var layout = Layout(dir);
        var first = HeldView.Get(launcher, layout, eager: true);
        Assert.True(first is not null, HeldView.LastError);
        var mount = Run("/bin/mount", new[] { "-t", "tmpfs", "requiem-heldview", dir }, "/");
        Assert.True(mount.Code == 0, mount.Err);
        try
        {
            File.WriteAllText(Path.Combine(dir, "mounted.txt"), "on the new mount");
            var second = HeldView.Get(launcher, layout, eager: true);
            Assert.True(second is not null, HeldView.LastError);
            Assert.NotEqual(first, second);
            Assert.Equal("on the new mount", Join(launcher, second.Value, layout, "/bin/cat", Path.Combine(dir, "mounted.txt")).Out);
        }
        finally { Run("/bin/umount", new[] { dir }, "/"); }
    }

    [Fact]
    public void OnlyHermeticAndWorkspaceLayoutsWithoutAHeldPathBelowAPerRunMountAreHeld()
    {
        Assert.False(HeldView.CanHold(FilesystemView.Layout(FilesystemView.Host, "/w", Array.Empty<string>(), Toolchain, Array.Empty<string>())));
        Assert.True(HeldView.CanHold(FilesystemView.Layout(FilesystemView.Workspace, "/w", Array.Empty<string>(), Toolchain, Array.Empty<string>())));
        Assert.True(HeldView.CanHold(FilesystemView.Layout(FilesystemView.Hermetic, "/w", Array.Empty<string>(), Toolchain, Array.Empty<string>())));
        // A hidden path inside the workspace would be covered by the run's own bind: not holdable.
        Assert.False(HeldView.CanHold(new FilesystemLayout(FilesystemView.Workspace, new[]
        {
            new FilesystemMount(MountKind.Hide, "/w/secrets", null), new FilesystemMount(MountKind.Bind, "/w", null),
        })));
        // A declared input inside the workspace is the run's own (attached per run): holdable.
        Assert.True(HeldView.CanHold(new FilesystemLayout(FilesystemView.Hermetic, new[]
        {
            new FilesystemMount(MountKind.Tmpfs, "/tmp", null), new FilesystemMount(MountKind.Bind, "/w", null), new FilesystemMount(MountKind.ReadOnlyBind, "/w/in", null),
        })));
        // A read-only path below the private /tmp, or below the workspace without being an input there, is not.
        Assert.False(HeldView.CanHold(new FilesystemLayout(FilesystemView.Hermetic, new[]
        {
            new FilesystemMount(MountKind.Tmpfs, "/tmp", null), new FilesystemMount(MountKind.ReadOnlyBind, "/tmp/tool", null), new FilesystemMount(MountKind.Bind, "/w", null),
        })));
        Assert.False(HeldView.CanHold(new FilesystemLayout(FilesystemView.Hermetic, new[]
        {
            new FilesystemMount(MountKind.Dev, "/w/dev", null), new FilesystemMount(MountKind.Bind, "/w", null),
        })));
    }

    [Fact]
    public void TheLauncherRefusesToHoldAPathBelowAPerRunMount()
    {
        if (Usable() is not { } launcher) return;
        var r = Run(launcher, new[] { "--hold-view", "--root", "tmpfs", "--tmpfs", "/tmp", "--ro-bind", "/tmp/x" }, "/");
        Assert.Equal(125, r.Code);
        Assert.Contains("cannot hold a path below a per-run mount", r.Err, StringComparison.Ordinal);
    }
}
