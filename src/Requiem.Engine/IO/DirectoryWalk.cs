using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Requiem.Engine.IO;

/// <summary>
/// Linux: folders reached one component at a time through open descriptors (openat with O_NOFOLLOW | O_DIRECTORY,
/// mkdirat where one is missing), so a folder swapped for a symbolic link after it was checked is never followed: what
/// is written and renamed lands in the folder that was opened, inside the root.
/// </summary>
internal sealed class DirectoryWalk : IDisposable
{
    public const int AT_REMOVEDIR = 0x200;
    private readonly int _root;
    private readonly Dictionary<string, int> _opened = new(StringComparer.Ordinal);
    private readonly List<(int Parent, string Name)> _created = new();

    private DirectoryWalk(int root) => _root = root;

    /// <summary>Opens <paramref name="root"/> (the root itself may be reached through links: it is the caller's choice).</summary>
    public static DirectoryWalk Open(string root)
    {
        var fd = Interop.Libc.OpenAt(NoFollowOpen.AT_FDCWD, root, NoFollowOpen.O_RDONLY | NoFollowOpen.O_DIRECTORY | NoFollowOpen.O_CLOEXEC, 0);
        if (fd < 0) throw Failure("open", root, Marshal.GetLastPInvokeError());
        return new DirectoryWalk(fd);
    }

    /// <summary>
    /// The descriptor of the folder <paramref name="segments"/> below the root, creating missing folders when
    /// <paramref name="create"/>. Throws <see cref="SpecialFileException"/> when a component is a symbolic link or not a folder.
    /// </summary>
    public int OpenFolder(IReadOnlyList<string> segments, bool create)
    {
        var fd = _root;
        var key = "";
        foreach (var segment in segments)
        {
            if (segment is "" or "." or "..") throw new ArgumentException($"'{segment}' is not a folder name.", nameof(segments));
            key = key.Length == 0 ? segment : key + "/" + segment;
            if (_opened.TryGetValue(key, out var known)) { fd = known; continue; }
            var next = OpenChild(fd, segment);
            if (next < 0 && Marshal.GetLastPInvokeError() == NoFollowOpen.ENOENT && create)
            {
                if (Interop.Libc.MkdirAt(fd, segment, 0x1FF /* 0777 less the umask */) == 0) _created.Add((fd, segment));
                else if (Marshal.GetLastPInvokeError() != 17 /* EEXIST: made by someone else meanwhile */) throw Failure("mkdir", key, Marshal.GetLastPInvokeError());
                next = OpenChild(fd, segment);
            }
            if (next < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is NoFollowOpen.ELOOP or NoFollowOpen.ENOTDIR)
                {
                    var isLink = Interop.Libc.Statx(fd, segment, NoFollowOpen.AT_SYMLINK_NOFOLLOW, NoFollowOpen.STATX_TYPE, out var st) == 0
                        && (st.Mode & NoFollowOpen.S_IFMT) == NoFollowOpen.S_IFLNK;
                    throw new SpecialFileException(key, isLink ? "a symbolic link" : "not a folder");
                }
                throw Failure("open", key, errno);
            }
            _opened[key] = next;
            fd = next;
        }
        return fd;
    }

    /// <summary>Creates <paramref name="name"/> (which must not exist) in an opened folder for writing.</summary>
    public static FileStream CreateNew(int folder, string name)
    {
        var flags = 1 /* O_WRONLY */ | NoFollowOpen.O_CREAT | 0x80 /* O_EXCL */ | NoFollowOpen.O_NOFOLLOW | NoFollowOpen.O_CLOEXEC;
        var fd = Interop.Libc.OpenAt(folder, name, flags, 0x1B6 /* 0666 less the umask */);
        if (fd < 0) throw Failure("create", name, Marshal.GetLastPInvokeError());
        return new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, 1 << 16);
    }

    /// <summary>The type of <paramref name="name"/> in an opened folder (links not followed), or 0 when absent.</summary>
    public static int TypeOf(int folder, string name) =>
        Interop.Libc.Statx(folder, name, NoFollowOpen.AT_SYMLINK_NOFOLLOW, NoFollowOpen.STATX_TYPE, out var st) == 0 ? st.Mode & NoFollowOpen.S_IFMT : 0;

    public static void Rename(int folder, string from, string to)
    {
        if (Interop.Libc.RenameAt(folder, from, folder, to) != 0) throw Failure("rename", to, Marshal.GetLastPInvokeError());
    }

    public static void TryUnlink(int folder, string name) => Interop.Libc.UnlinkAt(folder, name, 0);

    /// <summary>Removes the folders this walk created (only those still empty), deepest first.</summary>
    public void RemoveCreated()
    {
        for (var i = _created.Count - 1; i >= 0; i--) Interop.Libc.UnlinkAt(_created[i].Parent, _created[i].Name, AT_REMOVEDIR);
        _created.Clear();
    }

    /// <summary>Forgets the folders it created (they are kept).</summary>
    public void KeepCreated() => _created.Clear();

    private static int OpenChild(int folder, string name) =>
        Interop.Libc.OpenAt(folder, name, NoFollowOpen.O_RDONLY | NoFollowOpen.O_DIRECTORY | NoFollowOpen.O_NOFOLLOW | NoFollowOpen.O_CLOEXEC, 0);

    private static IOException Failure(string what, string path, int errno) =>
        errno is NoFollowOpen.EACCES or NoFollowOpen.EPERM
            ? new IOException($"Cannot {what} '{path}': permission denied.", errno)
            : new IOException($"Cannot {what} '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno);

    public void Dispose()
    {
        foreach (var fd in _opened.Values) Interop.Libc.Close(fd);
        _opened.Clear();
        Interop.Libc.Close(_root);
    }
}
