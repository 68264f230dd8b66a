using System.Runtime.InteropServices;

namespace Requiem.Engine.Cas;

/// <summary>
/// The few POSIX calls .NET does not expose: fsync of a directory (makes a rename durable) and syncfs (flushes every
/// dirty page of one file system in one call, which is how a batch of small objects is made durable cheaply).
/// Everything degrades to a no-op (directory fsync) or per-file flushes (syncfs) where unavailable.
/// </summary>
internal static partial class CasNative
{
    private const int O_RDONLY = 0;
    private const int O_DIRECTORY_LINUX = 0x10000;
    private const int O_DIRECTORY_MAC = 0x100000;
    private static bool s_syncfsMissing;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, out RLimit limit);

    /// <summary>Descriptors this process has open now (entries of /proc/self/fd), or -1 where that cannot be counted.</summary>
    public static int OpenDescriptorCount()
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            var n = 0;
            foreach (var _ in Directory.EnumerateFileSystemEntries("/proc/self/fd")) n++;
            return n;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>The soft limit on open file descriptors (RLIMIT_NOFILE), or -1 where unknown (not Linux).</summary>
    public static long OpenFileLimit()
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            const int RlimitNofile = 7;
            return GetRLimit(RlimitNofile, out var limit) == 0 ? (long)Math.Min(limit.Current, (ulong)long.MaxValue) : -1;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static partial int Syncfs(int fd);

    [LibraryImport("libc", EntryPoint = "renameat2", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);

    private const int AT_FDCWD = -100;
    private const uint RENAME_NOREPLACE = 1;
    private const int EEXIST = 17;
    private const int ENOENT = 2;
    private static bool s_renameat2Missing = !OperatingSystem.IsLinux();

    /// <summary>Outcome of <see cref="RenameNoReplace"/>.</summary>
    public enum RenameResult { Renamed, Exists, DirectoryMissing, Unsupported }

    /// <summary>
    /// Atomically renames <paramref name="source"/> to <paramref name="destination"/> unless the destination exists
    /// (Linux renameat2 with RENAME_NOREPLACE: one system call). Unsupported elsewhere (callers fall back to File.Move,
    /// which is link-then-unlink on Unix and equally refuses to replace).
    /// </summary>
    public static RenameResult RenameNoReplace(string source, string destination)
    {
        if (s_renameat2Missing) return RenameResult.Unsupported;
        try
        {
            if (RenameAt2(AT_FDCWD, source, AT_FDCWD, destination, RENAME_NOREPLACE) == 0) return RenameResult.Renamed;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            s_renameat2Missing = true;
            return RenameResult.Unsupported;
        }
        var errno = Marshal.GetLastPInvokeError();
        if (errno == EEXIST) return RenameResult.Exists;
        if (errno == ENOENT) return RenameResult.DirectoryMissing;
        return RenameResult.Unsupported; // EINVAL (file system without NOREPLACE), ENOSYS, ...: let File.Move decide and report
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenMode(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "linkat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LinkAt(int oldDirFd, string oldPath, int newDirFd, string newPath, int flags);

    private const int O_WRONLY = 1;
    private const int O_CLOEXEC = 0x80000;
    private const int O_TMPFILE = 0x400000 | O_DIRECTORY_LINUX; // __O_TMPFILE | O_DIRECTORY
    private const int AT_SYMLINK_FOLLOW = 0x400;
    private static bool s_tmpfileMissing = !OperatingSystem.IsLinux() || !Directory.Exists("/proc/self/fd");

    /// <summary>False to force named temp files (tests of the portable path).</summary>
    internal static bool AnonymousTempFilesEnabled { get; set; } = true;

    /// <summary>
    /// An unnamed temp file in <paramref name="directory"/> (Linux O_TMPFILE): it has no name until
    /// <see cref="LinkAnonymous"/> gives it one, and vanishes if the process dies first. Null where unsupported.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenAnonymous(string directory)
    {
        if (s_tmpfileMissing || !AnonymousTempFilesEnabled) return null;
        int fd;
        try { fd = OpenMode(directory, O_TMPFILE | O_WRONLY | O_CLOEXEC, Convert.ToInt32("644", 8)); }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException) { s_tmpfileMissing = true; return null; }
        if (fd >= 0) return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        var errno = Marshal.GetLastPInvokeError();
        if (errno is 95 or 21 or 22 or 38) s_tmpfileMissing = true; // EOPNOTSUPP, EISDIR, EINVAL, ENOSYS: file system without O_TMPFILE
        return null; // other errors (ENOSPC, EACCES): the named path reports them properly
    }

    /// <summary>Gives an unnamed temp file its final name, never replacing an existing file (linkat fails with EEXIST).</summary>
    public static RenameResult LinkAnonymous(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string destination)
    {
        var fd = handle.DangerousGetHandle().ToInt32();
        if (LinkAt(AT_FDCWD, "/proc/self/fd/" + fd.ToString(System.Globalization.CultureInfo.InvariantCulture), AT_FDCWD, destination, AT_SYMLINK_FOLLOW) == 0)
            return RenameResult.Renamed;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == EEXIST) return RenameResult.Exists;
        if (errno == ENOENT) return RenameResult.DirectoryMissing;
        throw new IOException($"linkat to '{destination}' failed (errno {errno}).", errno);
    }

    private static int OpenDirectory(string path)
    {
        if (OperatingSystem.IsWindows()) return -1;
        var flags = O_RDONLY | (OperatingSystem.IsLinux() ? O_DIRECTORY_LINUX : O_DIRECTORY_MAC);
        try { return Open(path, flags); }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException) { return -1; }
    }

    /// <summary>fsync(2) on a directory so that entries created or renamed in it survive a power loss.</summary>
    public static void FsyncDirectory(string path)
    {
        var fd = OpenDirectory(path);
        if (fd < 0) return;
        try { Fsync(fd); }
        finally { Close(fd); }
    }

    /// <summary>syncfs(2) on the file system holding <paramref name="path"/>; false when the call is unavailable.</summary>
    public static bool SyncFileSystem(string path)
    {
        if (!OperatingSystem.IsLinux() || s_syncfsMissing) return false;
        var fd = OpenDirectory(path);
        if (fd < 0) return false;
        try
        {
            return Syncfs(fd) == 0;
        }
        catch (EntryPointNotFoundException)
        {
            s_syncfsMissing = true;
            return false;
        }
        finally { Close(fd); }
    }
}
