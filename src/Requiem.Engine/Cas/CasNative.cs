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
