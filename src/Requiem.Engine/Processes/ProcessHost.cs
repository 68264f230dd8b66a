using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using static Requiem.Engine.Interop.Posix;

namespace Requiem.Engine.Processes;

/// <summary>What to start: an argv vector (argv[0] is the program, searched on the host's PATH when it has no slash).</summary>
public sealed class ProcessSpec
{
    public required IReadOnlyList<string> Argv { get; init; }
    /// <summary>The complete environment, as NAME=value strings.</summary>
    public required IReadOnlyList<string> Environment { get; init; }
    public string? WorkingDirectory { get; init; }
    /// <summary>A pipe for stdin (<see cref="HostedProcess.Stdin"/>); otherwise stdin reads /dev/null.</summary>
    public bool StdinPipe { get; init; }
    /// <summary>Files opened read-only at the given descriptor numbers in the child (bwrap's <c>--seccomp 3</c>).</summary>
    public IReadOnlyList<(int Fd, string Path)> ReadOnlyFiles { get; init; } = Array.Empty<(int, string)>();
}

/// <summary>How a hosted process ended, with the rusage of it and every descendant it waited for.</summary>
public sealed record ProcessExit(int ExitCode, int? Signal, double WallMs, double UserMs, double SystemMs, long MaxRssKb);

/// <summary>
/// The one way the engine starts a child process on Linux, for runs (Invoke-RequiemExec) and benchmark cases alike:
/// <c>posix_spawnp</c> into its own process group with every signal at its default disposition and an empty mask
/// (.NET ignores SIGPIPE, and an ignored disposition would survive exec), stdout and stderr on pipes, stdin on a pipe or
/// /dev/null, optional read-only descriptors, and one waiter calling <c>wait4(pid)</c>. Kills go to the process group
/// and only while the child is not reaped, so a recycled pid is never signalled.
/// </summary>
public static class ProcessHost
{
    /// <summary>Linux x64/arm64 (the struct layouts this host assumes); elsewhere callers use System.Diagnostics.Process.</summary>
    public static bool Supported => OperatingSystem.IsLinux() && System.Environment.Is64BitProcess
                                    && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>Starts the process; <see cref="ProcessStartException"/> when it cannot be started (errno in the message).</summary>
    public static unsafe HostedProcess Start(ProcessSpec spec)
    {
        var allocs = new List<IntPtr>();
        // Generous opaque buffers: glibc's posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336, sigset_t 128.
        var fa = NativeMemory.AllocZeroed(1024);
        var attr = NativeMemory.AllocZeroed(1024);
        var sigEmpty = NativeMemory.AllocZeroed(256);
        var sigDefault = NativeMemory.AllocZeroed(256);
        int* outPipe = stackalloc int[2];
        int* errPipe = stackalloc int[2];
        int* inPipe = stackalloc int[2];
        outPipe[0] = outPipe[1] = errPipe[0] = errPipe[1] = inPipe[0] = inPipe[1] = -1;
        try
        {
            if (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0 || (spec.StdinPipe && pipe2(inPipe, O_CLOEXEC) != 0))
                throw new ProcessStartException($"pipe2 failed (errno {Marshal.GetLastPInvokeError()})");
            posix_spawn_file_actions_init(fa);
            if (spec.StdinPipe) posix_spawn_file_actions_adddup2(fa, inPipe[0], 0);
            else posix_spawn_file_actions_addopen(fa, 0, Utf8(allocs, "/dev/null"), O_RDONLY, 0);
            posix_spawn_file_actions_adddup2(fa, outPipe[1], 1);
            posix_spawn_file_actions_adddup2(fa, errPipe[1], 2);
            foreach (var (fd, path) in spec.ReadOnlyFiles) posix_spawn_file_actions_addopen(fa, fd, Utf8(allocs, path), O_RDONLY, 0);
            if (spec.WorkingDirectory is { } cwd)
            {
                var rc = posix_spawn_file_actions_addchdir_np(fa, Utf8(allocs, cwd));
                if (rc != 0) throw new ProcessStartException($"cannot set the working directory {cwd} (error {rc})");
            }
            posix_spawnattr_init(attr);
            posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
            posix_spawnattr_setpgroup(attr, 0);
            sigemptyset(sigEmpty);
            posix_spawnattr_setsigmask(attr, sigEmpty);
            sigemptyset(sigDefault);
            for (var s = 1; s < 32; s++) if (s is not 9 and not 19) sigaddset(sigDefault, s);
            posix_spawnattr_setsigdefault(attr, sigDefault);

            var argv = (byte**)NativeMemory.AllocZeroed((nuint)(spec.Argv.Count + 1), (nuint)sizeof(byte*));
            allocs.Add((IntPtr)argv);
            for (var i = 0; i < spec.Argv.Count; i++) argv[i] = Utf8(allocs, spec.Argv[i]);
            var envp = (byte**)NativeMemory.AllocZeroed((nuint)(spec.Environment.Count + 1), (nuint)sizeof(byte*));
            allocs.Add((IntPtr)envp);
            for (var i = 0; i < spec.Environment.Count; i++) envp[i] = Utf8(allocs, spec.Environment[i]);

            var start = Stopwatch.GetTimestamp();
            int pid;
            var spawnRc = posix_spawnp(&pid, argv[0], fa, attr, argv, envp);
            if (spawnRc != 0) throw new ProcessStartException($"{Marshal.GetPInvokeErrorMessage(spawnRc)} (errno {spawnRc})");
            close(outPipe[1]); outPipe[1] = -1;
            close(errPipe[1]); errPipe[1] = -1;
            if (spec.StdinPipe) { close(inPipe[0]); inPipe[0] = -1; }
            var process = new HostedProcess(pid, start,
                spec.StdinPipe ? Stream(ref inPipe[1], FileAccess.Write) : null, Stream(ref outPipe[0], FileAccess.Read), Stream(ref errPipe[0], FileAccess.Read));
            return process;
        }
        finally
        {
            for (var i = 0; i < 2; i++)
            {
                if (outPipe[i] >= 0) close(outPipe[i]);
                if (errPipe[i] >= 0) close(errPipe[i]);
                if (inPipe[i] >= 0) close(inPipe[i]);
            }
            posix_spawn_file_actions_destroy(fa);
            posix_spawnattr_destroy(attr);
            NativeMemory.Free(fa);
            NativeMemory.Free(attr);
            NativeMemory.Free(sigEmpty);
            NativeMemory.Free(sigDefault);
            foreach (var p in allocs) NativeMemory.Free((void*)p);
        }
    }

    private static FileStream Stream(ref int fd, FileAccess access)
    {
        var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), access, 1);
        fd = -1;
        return stream;
    }

    private static unsafe byte* Utf8(List<IntPtr> allocs, string s)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        var p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        allocs.Add((IntPtr)p);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }
}

/// <summary>The program could not be started (posix_spawnp or a pipe failed); the message says why.</summary>
public sealed class ProcessStartException : Exception
{
    public ProcessStartException(string message) : base(message) { }
}

/// <summary>A child started by <see cref="ProcessHost"/>: its pipes, its waiter and its group kill.</summary>
public sealed class HostedProcess : IDisposable
{
    private readonly object _gate = new();
    private readonly long _start;
    private bool _reaped;
    private Task<ProcessExit>? _exit;

    internal HostedProcess(int pid, long start, FileStream? stdin, FileStream stdout, FileStream stderr)
    {
        Pid = pid;
        _start = start;
        Stdin = stdin;
        Stdout = stdout;
        Stderr = stderr;
    }

    public int Pid { get; }
    public FileStream? Stdin { get; }
    public FileStream Stdout { get; }
    public FileStream Stderr { get; }

    /// <summary>Blocks until the child ends (wait4 on this thread) and reaps it; every later wait returns the same exit.</summary>
    public ProcessExit WaitForExit() => Waiter(inline: true).GetAwaiter().GetResult();

    /// <summary>The exit, reaped by wait4 on one of the engine's dedicated I/O threads (never on the thread pool).</summary>
    public Task<ProcessExit> WaitForExitAsync() => Waiter(inline: false);

    private Task<ProcessExit> Waiter(bool inline)
    {
        TaskCompletionSource<ProcessExit>? mine = null;
        Task<ProcessExit> task;
        lock (_gate)
        {
            if (_exit is null)
            {
                mine = new TaskCompletionSource<ProcessExit>(TaskCreationOptions.RunContinuationsAsynchronously);
                _exit = mine.Task;
            }
            task = _exit;
        }
        if (mine is not null)
        {
            // The wait runs outside the gate, so a kill (timeout, Ctrl+C) is never held up by the waiter.
            void Body()
            {
                try { mine.SetResult(Reap()); }
                catch (InvalidOperationException ex) { mine.SetException(ex); }
            }
            if (inline) Body();
            else _ = Execution.ExecIoThreads.Run(Body);
        }
        return task;
    }

    private unsafe ProcessExit Reap()
    {
        int status;
        Rusage ru;
        while (true)
        {
            var w = wait4(Pid, &status, 0, &ru);
            if (w == Pid) break;
            var errno = Marshal.GetLastPInvokeError();
            if (w == -1 && errno == EINTR) continue;
            throw new InvalidOperationException($"wait4({Pid}) failed (errno {errno})");
        }
        var wall = Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
        lock (_gate) _reaped = true;
        int exit;
        int? signal = null;
        if ((status & 0x7f) == 0) exit = (status >> 8) & 0xff;
        else
        {
            signal = status & 0x7f;
            exit = 128 + signal.Value;
        }
        return new ProcessExit(exit, signal, wall, ru.UtimeSec * 1000.0 + ru.UtimeUsec / 1000.0, ru.StimeSec * 1000.0 + ru.StimeUsec / 1000.0, ru.MaxRss);
    }

    /// <summary>
    /// SIGKILL to the child's process group, and to the child itself while it is not reaped. After the reap the group
    /// is still safe to signal: the kernel never hands out a pid that is some live process's group id, so either
    /// descendants still hold the group (and are killed) or there is no such group.
    /// </summary>
    /// <returns>Whether the child itself was still running (not yet reaped) when the signal was sent.</returns>
    public bool KillGroup()
    {
        lock (_gate)
        {
            kill(-Pid, SIGKILL);
            if (!_reaped) kill(Pid, SIGKILL);
            return !_reaped;
        }
    }

    public void Dispose()
    {
        try { Stdin?.Dispose(); } catch (IOException) { }
        Stdout.Dispose();
        Stderr.Dispose();
    }
}
