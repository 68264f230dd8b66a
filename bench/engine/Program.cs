using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Requiem.Engine.Hashing;

// CPU (user, system) and wall time of the hashing engine's parts on one file, 5 rounds after a warm-up, with the
// 1-minute load average beside each round. See the project file for the modes.
if (args.Length < 1)
{
    Console.Error.WriteLine("usage: <kernel|preadonly|file|pieces|mmap> [file] [threads] [piece-chunks] [-seq|-willneed]");
    return 2;
}
var mode = args[0];
var path = args.Length > 1 ? args[1] : "";
var threads = args.Length > 2 ? int.Parse(args[2]) : 1;
var hash = HashPrimitive.Select(false).WithMaxThreads(threads);
Console.WriteLine($"lanes: {Blake3Lanes.Widest}");
switch (mode)
{
    case "kernel":
    {
        var piece = new byte[256 * 1024];
        new Random(1).NextBytes(piece);
        var cv = new uint[8];
        Bench.Run("kernel-in-L2", threads, () => { for (var i = 0; i < 4096; i++) Blake3Lanes.SubtreeChainingValue(piece, (ulong)i * 256, cv); });
        break;
    }
    case "preadonly":
    {
        using var handle = File.OpenHandle(path);
        var buffer = new byte[256 * 1024];
        var length = RandomAccess.GetLength(handle);
        Bench.Run("pread-copy-only", threads, () => { for (long o = 0; o < length; o += buffer.Length) RandomAccess.Read(handle, buffer, o); });
        break;
    }
    case "file":
        Bench.Run("hashfile", threads, () => hash.HashFile(path, HashDomain.None));
        Console.WriteLine(hash.HashFile(path, HashDomain.None).Hash);
        break;
    case "pieces":
    {
        var pieceChunks = int.Parse(args[3]);
        var advice = args.Length > 4 ? args[4] : "";
        Bench.Run($"pieces-{pieceChunks}k{advice}", threads, () => Bench.HashInPieces(path, pieceChunks, threads, advice));
        break;
    }
    case "mmap":
        unsafe
        {
            using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            using var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            var length = (int)Math.Min(new FileInfo(path).Length, int.MaxValue);
            var input = (nint)pointer;
            Bench.Run("mmap", threads, () => hash.HashBytes(new ReadOnlySpan<byte>((void*)input, length), HashDomain.None));
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        break;
    default:
        Console.Error.WriteLine($"unknown mode {mode}");
        return 2;
}
return 0;

internal static partial class Bench
{
    [ThreadStatic] private static byte[]? t_buffer;

    public static void Run(string label, int threads, Action action)
    {
        var process = Process.GetCurrentProcess();
        action();
        for (var round = 0; round < 5; round++)
        {
            var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "";
            process.Refresh();
            var user = process.UserProcessorTime;
            var system = process.PrivilegedProcessorTime;
            var watch = Stopwatch.StartNew();
            action();
            watch.Stop();
            process.Refresh();
            Console.WriteLine($"{label} threads={threads} wall={watch.Elapsed.TotalSeconds:F3} user={(process.UserProcessorTime - user).TotalSeconds:F3} " +
                $"sys={(process.PrivilegedProcessorTime - system).TotalSeconds:F3} load={load}");
        }
    }

    /// <summary>HashFile's plan (domain None) with a chosen piece size, and optionally posix_fadvise first.</summary>
    public static void HashInPieces(string path, int pieceChunks, int threads, string advice)
    {
        using var handle = File.OpenHandle(path);
        var fd = (int)handle.DangerousGetHandle();
        if (advice == "-seq") _ = PosixFadvise(fd, 0, 0, 2);
        if (advice == "-willneed") _ = PosixFadvise(fd, 0, 0, 3);
        var state = new Blake3Compact();
        var wholeChunks = (RandomAccess.GetLength(handle) - 1) / 1024;
        state.AbsorbSubtrees(wholeChunks, pieceChunks, threads, (first, chunks, target) =>
        {
            var piece = (t_buffer ??= new byte[4096 * 1024]).AsSpan(0, chunks * 1024);
            for (var n = 0; n < piece.Length;) n += RandomAccess.Read(handle, piece[n..], first * 1024 + n);
            Blake3Lanes.SubtreeChainingValue(piece, target.Counter, target.Output);
        });
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);
}
