using Requiem.Engine.IO;
using Microsoft.Win32.SafeHandles;

namespace Requiem.Engine.Audit;

/// <summary>
/// Opens the audit log's own files (<c>log.jsonl</c>, <c>head</c>, <c>lock</c>) so that whoever can write the store
/// cannot hang or redirect a reader or writer with something planted at their names: on Linux the file is opened with
/// <c>O_NOFOLLOW | O_NONBLOCK</c> (a symbolic link is refused, a FIFO opens at once instead of waiting for a writer) and
/// its type is read from the opened descriptor; anything but a regular file is <c>AuditFileNotRegular</c>. The
/// <c>audit</c> folder itself must not be a symbolic link. Elsewhere a symbolic link is refused by its attributes
/// (the FIFO guard is Linux only).
/// </summary>
internal static class AuditFiles
{
    /// <summary>
    /// Opens <paramref name="path"/> for reading (or reading and writing), creating it when <paramref name="create"/>;
    /// null when it does not exist and is not to be created. Throws <c>AuditFileNotRegular</c> for a symbolic link, FIFO,
    /// device, socket or directory, and the usual IOException/UnauthorizedAccessException otherwise.
    /// </summary>
    public static FileStream? Open(string path, bool write, bool create = false, int bufferSize = 1)
    {
        if (!OperatingSystem.IsLinux()) return OpenPortable(path, write, create, bufferSize);
        var fd = OpenDescriptor(path, write, create);
        if (fd < 0) return null;
        // A regular file never blocks, so O_NONBLOCK changes nothing for the reads and writes that follow.
        return new FileStream(new SafeFileHandle(fd, ownsHandle: true), write ? FileAccess.ReadWrite : FileAccess.Read, bufferSize);
    }

    /// <summary>Linux: the checked descriptor (see <see cref="Open"/>), or -1 when the file does not exist and is not to be created.</summary>
    public static int OpenDescriptor(string path, bool write, bool create)
    {
        var opened = NoFollowOpen.Open(path, write, create);
        return opened.Status switch
        {
            NoFollowStatus.Regular => opened.Descriptor,
            NoFollowStatus.Missing when !create => -1,
            NoFollowStatus.Missing => throw new DirectoryNotFoundException($"Cannot open '{path}': its folder does not exist."),
            NoFollowStatus.Symlink => throw NotRegular(path, "a symbolic link"),
            NoFollowStatus.NoDevice => throw NotRegular(path, "a socket or a device"),
            NoFollowStatus.NotRegular => throw NotRegular(path, opened.TypeName),
            _ when opened.Errno is NoFollowOpen.EACCES or NoFollowOpen.EPERM or NoFollowOpen.EROFS => throw new UnauthorizedAccessException($"Cannot open '{path}' (errno {opened.Errno})."),
            _ => throw new IOException($"Cannot open '{path}': {opened.ErrorText}", opened.Errno),
        };
    }

    /// <summary>The <c>audit</c> folder: refused when it is a symbolic link (every file in it would be somewhere else).</summary>
    public static void CheckDirectory(string directory)
    {
        var info = new DirectoryInfo(directory);
        if (info.LinkTarget is not null) throw NotRegular(directory, "a symbolic link (the audit folder must be a real folder in the store)");
        if (!info.Exists && File.Exists(directory)) throw NotRegular(directory, "not a folder");
    }

    private static FileStream? OpenPortable(string path, bool write, bool create, int bufferSize)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) throw NotRegular(path, "a symbolic link");
        if (!info.Exists && !create) return Directory.Exists(path) ? throw NotRegular(path, "a folder") : null;
        return new FileStream(path, create ? FileMode.OpenOrCreate : FileMode.Open, write ? FileAccess.ReadWrite : FileAccess.Read,
            FileShare.ReadWrite | FileShare.Delete, bufferSize);
    }

    private static RequiemException NotRegular(string path, string what) =>
        new("AuditFileNotRegular", ErrorKind.SecurityError,
            $"The audit file '{path}' is {what}, not a regular file: it is neither read nor written through (something other than this module put it there).",
            path);
}
