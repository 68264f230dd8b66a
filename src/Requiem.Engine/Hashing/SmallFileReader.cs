using System.Runtime.InteropServices;

namespace Requiem.Engine.Hashing;

/// <summary>
/// Reads a whole small regular file on Linux with four system calls (open, pread, pread to confirm EOF, close)
/// instead of the eight of a .NET file handle (which adds fstat twice and an advisory flock/unlock pair). Hashing
/// thousands of small files is dominated by these calls. Anything unusual — an error, a file that fills the buffer,
/// a short read that is not EOF, another OS — returns false and the caller takes the ordinary .NET path, which also
/// produces the typed errors.
/// </summary>
internal static partial class SmallFileReader
{
    private const int O_RDONLY_CLOEXEC = 0x80000; // O_RDONLY (0) | O_CLOEXEC (02000000), the same on x86-64 and arm64

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "pread", SetLastError = true)]
    private static unsafe partial nint Pread(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    private static bool s_unavailable;

    /// <summary>Reads the file into <paramref name="buffer"/> if it is strictly smaller than the buffer.</summary>
    public static unsafe bool TryRead(string path, Span<byte> buffer, out int length)
    {
        length = 0;
        if (s_unavailable || !OperatingSystem.IsLinux()) return false;
        int fd;
        try
        {
            fd = Open(path, O_RDONLY_CLOEXEC);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return false;
        }
        if (fd < 0) return false;
        try
        {
            fixed (byte* p = buffer)
            {
                var n = Pread(fd, p, (nuint)buffer.Length, 0);
                if (n < 0 || n >= buffer.Length) return false;
                byte probe;
                if (Pread(fd, &probe, 1, n) != 0) return false; // a short read that is not end-of-file: take the slow path
                length = (int)n;
                return true;
            }
        }
        finally
        {
            Close(fd);
        }
    }
}
