using System.Runtime.InteropServices;
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
internal static partial class AuditFiles
{
    private const int O_RDONLY = 0, O_RDWR = 2;
    private const int O_CREAT = 0x40, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    // O_NOFOLLOW differs between architectures: 0400000 on x86, 0100000 on ARM and POWER.
    private static readonly int s_noFollow = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm or Architecture.Ppc64le ? 0x8000 : 0x20000;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 0x1;
    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000, S_IFCHR = 0x2000, S_IFBLK = 0x6000;
    private const int ENOENT = 2, ELOOP = 40;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenMode(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

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
        var flags = (write ? O_RDWR : O_RDONLY) | (create ? O_CREAT : 0) | O_NONBLOCK | O_CLOEXEC | s_noFollow;
        var fd = OpenMode(path, flags, 0x1B6 /* 0666, less the umask, as .NET creates files */);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ENOENT && !create) return -1;
            if (errno == ELOOP) throw NotRegular(path, "a symbolic link");
            if (errno is 13 or 1 or 30) throw new UnauthorizedAccessException($"Cannot open '{path}' (errno {errno}).");
            if (errno == ENOENT) throw new DirectoryNotFoundException($"Cannot open '{path}': its folder does not exist.");
            throw new IOException($"Cannot open '{path}' (errno {errno}).", errno);
        }
        if (Interop.Libc.Statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, out var st) != 0 || (st.Mode & S_IFMT) != S_IFREG)
        {
            var mode = st.Mode & S_IFMT;
            Close(fd);
            throw NotRegular(path, Describe(mode));
        }
        return fd;
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

    private static string Describe(int mode) => mode switch
    {
        S_IFIFO => "a FIFO",
        S_IFSOCK => "a socket",
        S_IFCHR or S_IFBLK => "a device",
        S_IFDIR => "a folder",
        _ => "not a regular file",
    };

    private static RequiemException NotRegular(string path, string what) =>
        new("AuditFileNotRegular", ErrorKind.SecurityError,
            $"The audit file '{path}' is {what}, not a regular file: it is neither read nor written through (something other than this module put it there).",
            path);
}
