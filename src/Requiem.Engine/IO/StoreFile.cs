using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Requiem.Engine.IO;

/// <summary>
/// A file the store wrote itself (a ref, an action-cache entry) is not what the path shows: the path is opened for
/// reading without following a symbolic link and without blocking, and the open descriptor must be a regular file.
/// A FIFO planted there opens at once and is refused (a plain open would wait for a writer for ever), as are a
/// symbolic link, a device, a socket or a directory: <see cref="SpecialFileException"/>, never a hang.
/// </summary>
public static class StoreFile
{
    private const int O_RDONLY = 0, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    // O_NOFOLLOW is 0400000 on x86 (asm-generic) and 0100000 on ARM and POWER.
    private static readonly int s_noFollow = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm or Architecture.Ppc64le ? 0x8000 : 0x20000;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 0x1, STATX_SIZE = 0x200;
    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000;
    private const int ENOENT = 2, ENXIO = 6, ENOTDIR = 20, EISDIR = 21, ELOOP = 40;

    /// <summary>
    /// Opens <paramref name="path"/> for reading when it is a regular file; null when nothing is there. Throws
    /// <see cref="SpecialFileException"/> for anything else, and IOException / UnauthorizedAccessException for the usual failures.
    /// </summary>
    public static FileStream? OpenRegular(string path)
    {
        if (!OperatingSystem.IsLinux()) return OpenPortable(path);
        var fd = Interop.Libc.Open(path, O_RDONLY | s_noFollow | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno switch
            {
                ENOENT or ENOTDIR => null,
                ELOOP => throw new SpecialFileException(path, "a symbolic link"),
                ENXIO => throw new SpecialFileException(path, "a socket or a device"),
                EISDIR => throw new SpecialFileException(path, "a directory"),
                13 or 1 => throw new UnauthorizedAccessException($"Access to the path '{path}' is denied."),
                _ => throw new IOException($"open failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno),
            };
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (Interop.Libc.Statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, out var st) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fstat failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
            }
            var type = st.Mode & S_IFMT;
            if (type != S_IFREG) throw new SpecialFileException(path, TypeName(type));
            return new FileStream(handle, FileAccess.Read, 1);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static FileStream? OpenPortable(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) throw new SpecialFileException(path, "a symbolic link");
        if (Directory.Exists(path)) throw new SpecialFileException(path, "a directory");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The whole file when it is a regular file of at most <paramref name="maxBytes"/> bytes; null when absent.</summary>
    public static byte[]? ReadSmall(string path, int maxBytes)
    {
        using var file = OpenRegular(path);
        if (file is null) return null;
        if (file.Length > maxBytes) throw new SpecialFileException(path, $"{file.Length} bytes, more than the {maxBytes} such a file can hold", isRegular: true);
        var bytes = new byte[file.Length];
        file.ReadExactly(bytes);
        return bytes;
    }

    private static string TypeName(int type) => type switch
    {
        S_IFIFO => "a FIFO (named pipe)",
        S_IFCHR => "a character device",
        S_IFBLK => "a block device",
        S_IFSOCK => "a socket",
        S_IFDIR => "a directory",
        _ => $"a file of type 0x{type:x}",
    };
}

/// <summary>A store file that is not what the store writes there (a FIFO, link, device, or an oversized file): not read.</summary>
public sealed class SpecialFileException : IOException
{
    public SpecialFileException(string path, string what, bool isRegular = false)
        : base(isRegular ? $"'{path}' is {what}" : $"'{path}' is {what}, not a regular file; it was not read")
    {
        Path = path;
        What = what;
    }

    public string Path { get; }
    /// <summary>What was found there (e.g. "a FIFO (named pipe)").</summary>
    public string What { get; }
}
