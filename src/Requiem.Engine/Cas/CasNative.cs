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
