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
    private static readonly TimeSpan s_windowsWait = TimeSpan.FromMinutes(1);

    private readonly FileStream _stream;

    private AuditFileLock(FileStream stream) => _stream = stream;

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(int fd, int operation);

    /// <summary>Takes the lock (exclusive for writers, shared for readers), waiting as long as another process holds it.</summary>
    public static AuditFileLock Acquire(string path, bool exclusive)
    {
        if (OperatingSystem.IsWindows()) return AcquireWindows(path, exclusive);
        // FileShare.ReadWrite: .NET's own open-time flock would otherwise refuse at once instead of waiting.
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 1);
        try
        {
            var fd = (int)stream.SafeFileHandle.DangerousGetHandle();
            while (Flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) throw new IOException($"Cannot lock '{path}' (errno {errno}).");
            }
            return new AuditFileLock(stream);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
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

    public void Dispose() => _stream.Dispose(); // closing the descriptor releases the flock
}
