using Requiem.Engine;
using Requiem.Engine.Execution;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Execution;

/// <summary>The mount layout of policy.filesystem (FilesystemView) and the request fields that choose it.</summary>
public sealed class FilesystemViewTests
{
    private static List<(string Option, string Path)> Pairs(List<string> args) =>
        Enumerable.Range(0, args.Count / 2).Select(i => (args[2 * i], args[2 * i + 1])).ToList();

    [Fact]
    public void HostModeHasNoMounts() =>
        Assert.Empty(FilesystemView.LauncherArgs(FilesystemView.Host, "/tmp", Array.Empty<string>(), FilesystemView.DefaultReadonlyPaths, FilesystemView.DefaultHiddenPaths));

    [Fact]
    public void WorkspaceModeMasksHiddenPathsBeforeBindingTheWorkspaceInsideOne()
    {
        if (!OperatingSystem.IsLinux() || !Directory.Exists("/usr/share")) return;
        var pairs = Pairs(FilesystemView.LauncherArgs(FilesystemView.Workspace, "/usr/share/doc", Array.Empty<string>(), Array.Empty<string>(), new[] { "/usr/share", "/nonexistent-requiem" }));
        Assert.Equal(("--root", "ro-host"), pairs[0]);
        Assert.Contains(("--tmpfs", "/tmp"), pairs);
        Assert.DoesNotContain(pairs, p => p.Path == "/nonexistent-requiem"); // hidden only where present
        var hide = pairs.IndexOf(("--hide", "/usr/share"));
        var bind = pairs.IndexOf(("--bind", "/usr/share/doc"));
        Assert.True(hide >= 0 && bind > hide, string.Join(" ", pairs));
        Assert.Equal(("--bind", "/usr/share/doc"), pairs[^1]);
    }

    [Fact]
    public void HermeticModeBindsOnlyTheDeclaredPathsAndTheInputsReadOnlyAfterTheWorkspace()
    {
        if (!OperatingSystem.IsLinux()) return;
        var ws = Path.Combine(Path.GetTempPath(), "requiem-fsview-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(ws);
        try
        {
            var input = Path.Combine(ws, "in.txt");
            File.WriteAllText(input, "x");
            var pairs = Pairs(FilesystemView.LauncherArgs(FilesystemView.Hermetic, ws, new[] { input }, new[] { "/usr", "/nonexistent-requiem" }, FilesystemView.DefaultHiddenPaths));
            Assert.Equal(("--root", "tmpfs"), pairs[0]);
            Assert.DoesNotContain(pairs, p => p.Option == "--hide");
            Assert.DoesNotContain(pairs, p => p.Path == "/nonexistent-requiem");
            Assert.Contains(("--ro-bind", "/usr"), pairs);
            Assert.True(pairs.IndexOf(("--bind", ws)) < pairs.IndexOf(("--ro-bind", input)));
        }
        finally { Directory.Delete(ws, true); }
    }

    [Fact]
    public void BwrapRendersTheSameLayoutMountForMount()
    {
        if (!OperatingSystem.IsLinux() || !Directory.Exists("/usr/share")) return;
        var workspace = FilesystemView.BwrapArgs(FilesystemView.Layout(FilesystemView.Workspace, "/usr/share/doc", Array.Empty<string>(), Array.Empty<string>(), new[] { "/usr/share" }));
        var joined = string.Join(" ", workspace);
        Assert.StartsWith("--ro-bind / / ", joined);
        Assert.Contains("--perms 1777 --tmpfs /tmp", joined);
        Assert.Contains("--ro-bind-try /proc/sys /proc/sys", joined);
        // The hidden path is made read-only only after the workspace is bound below it.
        Assert.True(joined.IndexOf("--bind /usr/share/doc /usr/share/doc", StringComparison.Ordinal) < joined.IndexOf("--remount-ro /usr/share", StringComparison.Ordinal), joined);

        var hermetic = string.Join(" ", FilesystemView.BwrapArgs(FilesystemView.Layout(FilesystemView.Hermetic, "/usr/share/doc", Array.Empty<string>(), new[] { "/usr", "/lib" }, FilesystemView.DefaultHiddenPaths)));
        Assert.DoesNotContain("--ro-bind / /", hermetic);
        Assert.Contains("--ro-bind /usr /usr", hermetic);
        if (new FileInfo("/lib").LinkTarget is { } target) Assert.Contains($"--symlink {target} /lib", hermetic);
        Assert.EndsWith("--remount-ro /", hermetic);
    }

    [Theory]
    [InlineData("{\"filesystem\":\"chroot\"}", "$.policy.filesystem")]
    [InlineData("{\"readonly_paths\":[\"usr\"]}", "$.policy.readonly_paths[0]")]
    [InlineData("{\"readonly_paths\":[\"/\"]}", "$.policy.readonly_paths[0]")]
    [InlineData("{\"hidden_paths\":[\"/home/../etc\"]}", "$.policy.hidden_paths[0]")]
    [InlineData("{\"hidden_paths\":[\"/home/\"]}", "$.policy.hidden_paths[0]")]
    [InlineData("{\"seccomp\":\"yes\"}", "$.policy.seccomp")]
    public void RefusesBadFilesystemFields(string policy, string target)
    {
        var ex = Assert.Throws<RequiemException>(() => ExecRequestParser.Parse($"{{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{policy}}}"));
        Assert.Equal(target, ex.Target);
    }

    [Fact]
    public void NormalisesTheFieldsSoTheDigestDoesNotDependOnSpelling()
    {
        var a = ExecRequestParser.Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{\"readonly_paths\":[\"/usr\",\"/bin\",\"/usr\"]}}");
        var b = ExecRequestParser.Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{\"readonly_paths\":[\"/bin\",\"/usr\"],\"filesystem\":\"workspace\",\"seccomp\":true}}");
        Assert.Equal(new[] { "/bin", "/usr" }, a.Policy.ReadonlyPaths);
        Assert.Equal(a.CanonicalBytes(), b.CanonicalBytes());
        var defaults = ExecRequestParser.Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\"}");
        Assert.Equal(FilesystemView.Workspace, defaults.Policy.Filesystem);
        Assert.True(defaults.Policy.Seccomp);
        Assert.Equal(FilesystemView.DefaultHiddenPaths, defaults.Policy.HiddenPaths);
    }

    /// <summary>
    /// A resolved readonly_paths list is reused while nothing it was resolved from changed, and resolved again as soon
    /// as a path appears, goes away, changes type or a symlink is re-pointed (directory times set an hour back, so the
    /// cache trusts them; each change then moves its directory's time to now).
    /// </summary>
    [Fact]
    public void ResolvedReadonlyPathsFollowEveryChangeOfAPath()
    {
        if (!OperatingSystem.IsLinux()) return;
        var root = WorkspacePaths.RealPath(Path.Combine(Path.GetTempPath(), "requiem-roview-" + Guid.NewGuid().ToString("n")));
        var tools = Path.Combine(root, "tools");
        Directory.CreateDirectory(Path.Combine(root, "real", "bin"));
        Directory.CreateDirectory(Path.Combine(root, "other"));
        Directory.CreateDirectory(tools);
        var tool = Path.Combine(tools, "cc");
        var list = new[] { tool, Path.Combine(root, "link") };
        void Settle()
        {
            foreach (var d in new[] { root, tools, Path.Combine(root, "real"), Path.Combine(root, "other") })
                Directory.SetLastWriteTimeUtc(d, DateTime.UtcNow.AddHours(-1));
        }
        try
        {
            Settle();
            var first = FilesystemView.ResolvedReadonlyPaths(list);
            Assert.Empty(first);                                                       // neither exists yet
            Assert.Same(first, FilesystemView.ResolvedReadonlyPaths(list));             // nothing changed: reused

            File.WriteAllText(tool, "x");                                              // appears
            Assert.Equal(new[] { (tool, (string?)null) }, FilesystemView.ResolvedReadonlyPaths(list));

            Settle();
            _ = FilesystemView.ResolvedReadonlyPaths(list);
            File.Delete(tool);                                                         // changes type: a directory now
            Directory.CreateDirectory(tool);
            Assert.Equal(new[] { (tool, (string?)null) }, FilesystemView.ResolvedReadonlyPaths(list));
            Directory.Delete(tool);                                                    // goes away
            Assert.Empty(FilesystemView.ResolvedReadonlyPaths(list));

            var link = Path.Combine(root, "link");
            File.CreateSymbolicLink(link, "real/bin");                                 // a symlink to a directory
            Settle();
            Assert.Equal(new[] { (link, (string?)"real/bin") }, FilesystemView.ResolvedReadonlyPaths(list));
            File.Delete(link);                                                         // re-pointed elsewhere
            File.CreateSymbolicLink(link, "other");
            Assert.Equal(new[] { (link, (string?)"other") }, FilesystemView.ResolvedReadonlyPaths(list));

            Settle();
            _ = FilesystemView.ResolvedReadonlyPaths(list);
            Directory.Delete(Path.Combine(root, "other"));                             // its target goes away: no longer
            Assert.Equal(new[] { (link, (string?)null) }, FilesystemView.ResolvedReadonlyPaths(list)); // a link to a directory
        }
        finally { Directory.Delete(root, true); }
    }
}
