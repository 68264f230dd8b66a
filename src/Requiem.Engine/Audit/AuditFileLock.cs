using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Requiem.Engine.Audit;

/// <summary>
/// An advisory lock on a lock file that every writer of one audit log takes around read-head + append: a blocking
/// flock on Unix (released by the kernel if the holder dies), a share-mode lock retried on Windows.
/// </summary>
internal sealed partial class AuditFileLock : IDisposable
{
    private const int LOCK_SH = 1;
    private const int LOCK_EX = 2;
    private const int EINTR = 4;
    private const int O_RDWR = 2;
    private const int O_CREAT_LINUX = 0x40;
    private const int O_CLOEXEC_LINUX = 0x80000;
    private const int O_CREAT_MAC = 0x200;
    private const int O_CLOEXEC_MAC = 0x1000000;
    private static readonly TimeSpan s_windowsWait = TimeSpan.FromMinutes(1);

    private readonly FileStream? _stream; // Windows
    private int _fd = -1;                  // Unix

    private AuditFileLock(FileStream stream) => _stream = stream;

    private AuditFileLock(int fd) => _fd = fd;

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(int fd, int operation);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    /// <summary>Takes the lock (exclusive for writers, shared for readers), waiting as long as another process holds it.</summary>
    public static AuditFileLock Acquire(string path, bool exclusive)
    {
        if (OperatingSystem.IsWindows()) return AcquireWindows(path, exclusive);
        // Opened with open(2), not FileStream: .NET takes its own non-blocking flock on open, which would refuse at once
        // (even between two handles of one process) instead of waiting for the holder.
        // On Linux through AuditFiles: a symbolic link or FIFO planted at the lock's name is refused, not followed or waited on.
        var flags = O_RDWR | (OperatingSystem.IsMacOS() ? O_CREAT_MAC | O_CLOEXEC_MAC : O_CREAT_LINUX | O_CLOEXEC_LINUX);
        var fd = OperatingSystem.IsLinux() ? AuditFiles.OpenDescriptor(path, write: true, create: true) : Open(path, flags, 0x1B6 /* 0666, less the umask */);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is 13 or 1 or 30) throw new UnauthorizedAccessException($"Cannot open the lock file '{path}' (errno {errno}).");
            throw new IOException($"Cannot open the lock file '{path}' (errno {errno}).");
        }
        while (Flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) continue;
            Close(fd);
            throw new IOException($"Cannot lock '{path}' (errno {errno}).");
        }
        return new AuditFileLock(fd);
    }

    private static AuditFileLock AcquireWindows(string path, bool exclusive)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(s_windowsWait.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return new AuditFileLock(exclusive
                    ? new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1)
                    : new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.Read, 1));
            }
            catch (IOException) when (Stopwatch.GetTimestamp() < deadline)
            {
                Thread.Sleep(Random.Shared.Next(1, 8));
            }
        }
    }

    public void Dispose()
    {
        _stream?.Dispose();
        if (_fd >= 0) Close(_fd); // closing the descriptor releases the flock
        _fd = -1;
    }
}
