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
    /// <summary>
    /// Opens <paramref name="path"/> for reading when it is a regular file; null when nothing is there. Throws
    /// <see cref="SpecialFileException"/> for anything else, and IOException / UnauthorizedAccessException for the usual failures.
    /// </summary>
    public static FileStream? OpenRegular(string path)
    {
        if (!OperatingSystem.IsLinux()) return OpenPortable(path);
        var opened = NoFollowOpen.Open(path);
        return opened.Status switch
        {
            NoFollowStatus.Regular => new FileStream(new SafeFileHandle(opened.Descriptor, ownsHandle: true), FileAccess.Read, 1),
            NoFollowStatus.Missing => null,
            NoFollowStatus.Symlink => throw new SpecialFileException(path, "a symbolic link"),
            NoFollowStatus.NoDevice => throw new SpecialFileException(path, "a socket or a device"),
            NoFollowStatus.NotRegular => throw new SpecialFileException(path, opened.TypeName),
            _ when opened.Errno is NoFollowOpen.EACCES or NoFollowOpen.EPERM => throw new UnauthorizedAccessException($"Access to the path '{path}' is denied."),
            _ => throw new IOException(opened.ErrorText, opened.Errno),
        };
    }

    /// <summary>
    /// Opens a CAS object file for reading: one open and one statx on Linux (no path stat first). Throws
    /// FileNotFoundException when it is gone, <see cref="SpecialFileException"/> when it is not a regular file (a FIFO,
    /// device, socket, directory or symbolic link planted under the object's name), and the usual IO errors otherwise.
    /// </summary>
    public static SafeFileHandle OpenObject(string path, out long length)
    {
        if (!OperatingSystem.IsLinux())
        {
            if (new FileInfo(path).LinkTarget is not null) throw new SpecialFileException(path, "a symbolic link");
            var portable = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            length = RandomAccess.GetLength(portable);
            return portable;
        }
        var opened = NoFollowOpen.Open(path, statMask: NoFollowOpen.STATX_SIZE);
        length = (long)opened.Stat.Size;
        return opened.Status switch
        {
            NoFollowStatus.Regular => new SafeFileHandle(opened.Descriptor, ownsHandle: true),
            NoFollowStatus.Missing => throw new FileNotFoundException($"'{path}' does not exist.", path),
            NoFollowStatus.Symlink => throw new SpecialFileException(path, "a symbolic link"),
            NoFollowStatus.NoDevice => throw new SpecialFileException(path, "a socket or a device"),
            NoFollowStatus.NotRegular => throw new SpecialFileException(path, opened.TypeName),
            _ when opened.Errno is NoFollowOpen.EACCES or NoFollowOpen.EPERM => throw new UnauthorizedAccessException($"Access to the path '{path}' is denied."),
            _ => throw new IOException(opened.ErrorText, opened.Errno),
        };
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
