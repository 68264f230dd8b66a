using Requiem.Engine.IO;
using Xunit;

namespace Requiem.Tests.IO;

/// <summary>The descriptor walk that action-cache restores write through (Linux only).</summary>
public sealed class DirectoryWalkTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-walk-" + Guid.NewGuid().ToString("n"));
    private readonly string _root;
    private readonly string _outside;

    public DirectoryWalkTests()
    {
        _root = Path.Combine(_dir, "ws");
        _outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(_root);
        Directory.CreateDirectory(_outside);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void RefusesASymlinkedParentAndCreatesNothingThroughIt()
    {
        if (!OperatingSystem.IsLinux()) return;
        Directory.CreateDirectory(Path.Combine(_root, "a"));
        File.CreateSymbolicLink(Path.Combine(_root, "a", "b"), _outside);
        using var walk = DirectoryWalk.Open(_root);
        var ex = Assert.Throws<SpecialFileException>(() => walk.OpenFolder(new[] { "a", "b", "c" }, create: true));
        Assert.Equal("a symbolic link", ex.What);
        walk.RemoveCreated();
        Assert.Empty(Directory.EnumerateFileSystemEntries(_outside));
    }

    [Fact]
    public void AFolderSwappedForASymlinkAfterItWasOpenedIsNotFollowed()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var walk = DirectoryWalk.Open(_root);
        var folder = walk.OpenFolder(new[] { "out", "sub" }, create: true);
        // What a concurrent writer could do between a path check and a rename: move the folder away, link its name outside.
        Directory.Move(Path.Combine(_root, "out"), Path.Combine(_root, "moved"));
        File.CreateSymbolicLink(Path.Combine(_root, "out"), _outside);
        Directory.CreateDirectory(Path.Combine(_outside, "sub"));
        using (var file = DirectoryWalk.CreateNew(folder, ".f.tmp")) file.Write("restored"u8);
        DirectoryWalk.Rename(folder, ".f.tmp", "f");
        Assert.Equal("restored", File.ReadAllText(Path.Combine(_root, "moved", "sub", "f")));
        Assert.Empty(Directory.EnumerateFiles(_outside, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void RemovesOnlyTheFoldersItCreated()
    {
        if (!OperatingSystem.IsLinux()) return;
        Directory.CreateDirectory(Path.Combine(_root, "kept"));
        using var walk = DirectoryWalk.Open(_root);
        walk.OpenFolder(new[] { "kept", "new", "deeper" }, create: true);
        Assert.True(Directory.Exists(Path.Combine(_root, "kept", "new", "deeper")));
        walk.RemoveCreated();
        Assert.False(Directory.Exists(Path.Combine(_root, "kept", "new")));
        Assert.True(Directory.Exists(Path.Combine(_root, "kept")));
    }
}
