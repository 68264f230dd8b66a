using System.Runtime.InteropServices;

namespace Requiem.Engine.IO;

/// <summary>Why <see cref="NoFollowOpen.Open"/> gave no regular file.</summary>
internal enum NoFollowStatus
{
    /// <summary>A regular file: <see cref="NoFollowResult.Descriptor"/> is open and owned by the caller.</summary>
    Regular,
    /// <summary>Nothing there (ENOENT), or a parent is not a folder (ENOTDIR).</summary>
    Missing,
    /// <summary>The last component is a symbolic link (ELOOP under O_NOFOLLOW).</summary>
    Symlink,
    /// <summary>A socket or a device without a driver (ENXIO).</summary>
    NoDevice,
    /// <summary>Opened, but the descriptor is not a regular file (<see cref="NoFollowResult.Type"/> says what).</summary>
    NotRegular,
    /// <summary>open or statx failed otherwise (<see cref="NoFollowResult.Errno"/>).</summary>
    Failed,
}

/// <summary>The outcome of <see cref="NoFollowOpen.Open"/>; the descriptor is -1 unless the status is Regular.</summary>
internal readonly record struct NoFollowResult(NoFollowStatus Status, int Descriptor, int Errno, int Type, Interop.Libc.StatxBuffer Stat, bool StatFailed)
{
    public string ErrorText => $"{(StatFailed ? "fstat" : "open")} failed: {Marshal.GetPInvokeErrorMessage(Errno)} (errno {Errno})";
    public string TypeName => NoFollowOpen.TypeName(Type);
}

/// <summary>
/// Linux only: the one way the module opens a file it must not be fooled by (store files, audit files, a command's
/// outputs). The path is opened with O_NOFOLLOW (a symbolic link is refused), O_NONBLOCK (a FIFO opens at once instead
/// of waiting for a writer), O_NOCTTY and O_CLOEXEC, and the type is read from the opened descriptor with one statx, so
/// what was checked is what is read. Callers map the status to their own errors.
/// </summary>
internal static class NoFollowOpen
{
    public const int O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0x40, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    // O_NOFOLLOW (and O_DIRECTORY) differ between architectures: asm-generic (x86) vs arch/arm64, arch/powerpc.
    private static readonly bool s_armLayout = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm or Architecture.Ppc64le;
    public static readonly int O_NOFOLLOW = s_armLayout ? 0x8000 : 0x20000;
    public static readonly int O_DIRECTORY = s_armLayout ? 0x4000 : 0x10000;
    public const int AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000, AT_SYMLINK_NOFOLLOW = 0x100;
    public const uint STATX_TYPE = 0x1, STATX_MODE = 0x2, STATX_NLINK = 0x4, STATX_SIZE = 0x200;
    public const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000;
    public const int EPERM = 1, ENOENT = 2, ENXIO = 6, EACCES = 13, ENOTDIR = 20, EISDIR = 21, EROFS = 30, ELOOP = 40;

    /// <summary>
    /// Opens <paramref name="path"/> (relative to <paramref name="dirfd"/> when given) and checks the descriptor is a
    /// regular file; <paramref name="create"/> adds O_CREAT with mode 0666 less the umask. EISDIR is reported as a
    /// directory (NotRegular). <paramref name="statMask"/> adds fields to the statx (the type is always read).
    /// </summary>
    public static NoFollowResult Open(string path, bool write = false, bool create = false, uint statMask = 0, int dirfd = AT_FDCWD)
    {
        var flags = (write ? O_RDWR : O_RDONLY) | (create ? O_CREAT : 0) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
        var fd = Interop.Libc.OpenAt(dirfd, path, flags, 0x1B6 /* 0666, less the umask, as .NET creates files */);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var status = errno switch
            {
                ENOENT or ENOTDIR => NoFollowStatus.Missing,
                ELOOP => NoFollowStatus.Symlink,
                ENXIO => NoFollowStatus.NoDevice,
                EISDIR => NoFollowStatus.NotRegular,
                _ => NoFollowStatus.Failed,
            };
            return new NoFollowResult(status, -1, errno, errno == EISDIR ? S_IFDIR : 0, default, false);
        }
        if (Interop.Libc.Statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | statMask, out var st) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Interop.Libc.Close(fd);
            return new NoFollowResult(NoFollowStatus.Failed, -1, errno, 0, default, true);
        }
        var type = st.Mode & S_IFMT;
        if (type != S_IFREG)
        {
            Interop.Libc.Close(fd);
            return new NoFollowResult(NoFollowStatus.NotRegular, -1, 0, type, st, false);
        }
        return new NoFollowResult(NoFollowStatus.Regular, fd, 0, type, st, false);
    }

    /// <summary>What a file type is, in words, for errors and reports.</summary>
    public static string TypeName(int type) => type switch
    {
        S_IFIFO => "a FIFO (named pipe)",
        S_IFCHR => "a character device",
        S_IFBLK => "a block device",
        S_IFSOCK => "a socket",
        S_IFDIR => "a directory",
        S_IFLNK => "a symbolic link",
        _ => $"a file of type 0x{type:x}",
    };
}
