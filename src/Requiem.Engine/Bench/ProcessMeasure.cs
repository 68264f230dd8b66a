using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Requiem.Engine.Bench;

/// <summary>What to launch for one measured run: an argv vector (argv[0] is the program), env overrides, cwd.</summary>
public sealed class ProcessLaunch
{
    public required IReadOnlyList<string> Argv { get; init; }
    /// <summary>Variables to set (value) or remove (null) on top of the inherited environment.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }
    public string? WorkingDirectory { get; init; }
    public TimeSpan? Timeout { get; init; }
}

/// <summary>The raw measurement of one process run.</summary>
public sealed class ProcessMeasurement
{
    public required double WallMs { get; init; }
    public double? UserMs { get; init; }
    public double? SystemMs { get; init; }
    public long? MaxRssKb { get; init; }
    /// <summary>Linux: the spawning host's own peak RSS, below which the kernel's figure for the child is not its own (see docs).</summary>
    public long? MaxRssFloorKb { get; init; }
    public required int ExitCode { get; init; }
    /// <summary>The signal that ended the process (Unix), else null.</summary>
    public int? Signal { get; init; }
    public bool TimedOut { get; init; }
    public required byte[] Stdout { get; init; }
    public required byte[] Stderr { get; init; }
}

/// <summary>
/// Launches one process and measures it. On Linux (x64/arm64) the engine spawns the child itself with
/// <c>posix_spawnp</c> (own process group, default signal dispositions, stdin from /dev/null, stdout/stderr on
/// pipes) and one dedicated waiter calls <c>wait4(pid)</c>: the kernel returns the rusage of exactly that child plus
/// every descendant it waited for, so CPU times cover the process tree and max RSS is the largest process in it —
/// with no interference from other processes the host (pwsh) starts at the same time, which
/// <c>getrusage(RUSAGE_CHILDREN)</c> deltas could not exclude (and RUSAGE_CHILDREN's ru_maxrss is a lifetime
/// maximum, useless as a delta). Elsewhere the portable path uses <see cref="Process"/>: wall time precisely,
/// CPU and peak working set of the direct child when the OS still reports them after exit (Windows does), else null.
/// </summary>
public static class ProcessMeasure
{
    /// <summary>"linux-wait4" or "process-api": which path <see cref="Run"/> takes on this machine.</summary>
    public static string Method => UseNative ? "linux-wait4" : OperatingSystem.IsWindows() ? "windows-job" : "process-api";

    private static bool UseNative =>
        OperatingSystem.IsLinux() && System.Environment.Is64BitProcess &&
        System.Environment.GetEnvironmentVariable("REQUIEM_BENCH_PORTABLE") != "1";

    /// <summary>Launches, waits, measures. Throws <c>BenchLaunchFailed</c> if the program cannot be started.</summary>
    public static ProcessMeasurement Run(ProcessLaunch launch, CancellationToken cancel)
    {
        if (launch.Argv.Count == 0 || string.IsNullOrEmpty(launch.Argv[0]))
            throw new RequiemException("InvalidBenchSpec", ErrorKind.InvalidArgument, "A case needs a program to run (argv is empty).", null);
        if (launch.WorkingDirectory is { } cwd && !Directory.Exists(cwd))
            throw new RequiemException("BenchLaunchFailed", ErrorKind.ObjectNotFound, $"The working directory '{cwd}' does not exist.", cwd);
        launch = WithProgramFromCasePath(launch);
        return UseNative ? LinuxSpawn.Run(launch, cancel) : RunPortable(launch, cancel);
    }

    /// <summary>
    /// A bare program name is looked up on the PATH the case sets, if it sets one (posix_spawnp and Process would
    /// search the host's PATH instead).
    /// </summary>
    private static ProcessLaunch WithProgramFromCasePath(ProcessLaunch launch)
    {
        var program = launch.Argv[0];
        if (program.Contains('/') || program.Contains('\\') || launch.Environment is null ||
            !launch.Environment.TryGetValue("PATH", out var path) || string.IsNullOrEmpty(path))
            return launch;
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, program);
            if (File.Exists(candidate))
                return new ProcessLaunch { Argv = new[] { candidate }.Concat(launch.Argv.Skip(1)).ToArray(), Environment = launch.Environment, WorkingDirectory = launch.WorkingDirectory, Timeout = launch.Timeout };
        }
        return launch;
    }

    /// <summary>The shell argv for a command line: /bin/sh -c on Unix, cmd /d /s /c on Windows.</summary>
    public static string[] ShellArgv(string commandLine) =>
        OperatingSystem.IsWindows()
            ? new[] { System.Environment.GetEnvironmentVariable("ComSpec") ?? "cmd.exe", "/d", "/s", "/c", commandLine }
            : new[] { "/bin/sh", "-c", commandLine };

    private static ProcessMeasurement RunPortable(ProcessLaunch launch, CancellationToken cancel)
    {
        var psi = new ProcessStartInfo(launch.Argv[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = launch.WorkingDirectory ?? System.Environment.CurrentDirectory,
        };
        if (OperatingSystem.IsWindows() && launch.Argv.Count == 5 && launch.Argv[1] == "/d" && launch.Argv[2] == "/s" && launch.Argv[3] == "/c")
        {
            // cmd.exe does not parse C-style escaping: with /s it strips one pair of outer quotes and runs the rest verbatim.
            psi.Arguments = "/d /s /c \"" + launch.Argv[4] + "\"";
        }
        else
        {
            foreach (var a in launch.Argv.Skip(1)) psi.ArgumentList.Add(a);
        }
        if (launch.Environment is not null)
        {
            foreach (var (k, v) in launch.Environment)
            {
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
            }
        }
        using var p = new Process { StartInfo = psi };
        using var job = OperatingSystem.IsWindows() ? WindowsJob.Create() : null;
        var start = Stopwatch.GetTimestamp();
        try
        {
            p.Start();
            // Windows: the job collects the CPU time of every process the child starts after this point.
            job?.Assign(p);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new RequiemException("BenchLaunchFailed", ErrorKind.InvalidOperation, $"Cannot start '{launch.Argv[0]}': {ex.Message}", launch.Argv[0], ex);
        }
        p.StandardInput.Close();
        var outTask = ReadAllAsync(p.StandardOutput.BaseStream);
        var errTask = ReadAllAsync(p.StandardError.BaseStream);
        var timedOut = false;
        using (cancel.Register(() => { job?.Terminate(); TryKill(p); }))
        {
            var ms = launch.Timeout is { } t ? (int)Math.Min(int.MaxValue, t.TotalMilliseconds) : -1;
            if (!p.WaitForExit(ms))
            {
                timedOut = true;
                job?.Terminate();
                TryKill(p);
                p.WaitForExit();
            }
            p.WaitForExit();
        }
        var wall = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        cancel.ThrowIfCancellationRequested();
        double? user = null, sys = null;
        long? rss = null;
        if (job?.TryQueryTimes() is { } jobTimes)
        {
            (user, sys) = jobTimes;
        }
        else
        {
            try { user = p.UserProcessorTime.TotalMilliseconds; sys = p.PrivilegedProcessorTime.TotalMilliseconds; }
            catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception) { }
        }
        try { rss = p.PeakWorkingSet64 / 1024; if (rss == 0) rss = null; }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception) { }
        return new ProcessMeasurement
        {
            WallMs = wall, UserMs = user, SystemMs = sys, MaxRssKb = rss,
            ExitCode = p.ExitCode, TimedOut = timedOut,
            Stdout = outTask.GetAwaiter().GetResult(), Stderr = errTask.GetAwaiter().GetResult(),
        };
    }

    /// <summary>
    /// A Windows Job Object around one run: user and kernel time of every process in it (the tree), and kill-the-tree.
    /// The child is assigned right after it starts (Process cannot create it suspended), so a grandchild started
    /// in those first microseconds would escape the accounting.
    /// </summary>
    private sealed class WindowsJob : IDisposable
    {
        private IntPtr _handle;

        [StructLayout(LayoutKind.Sequential)]
        private struct BasicAccounting
        {
            public long TotalUserTime, TotalKernelTime, ThisPeriodTotalUserTime, ThisPeriodTotalKernelTime;
            public uint TotalPageFaultCount, TotalProcesses, ActiveProcesses, TotalTerminatedProcesses;
        }

        [DllImport("kernel32", SetLastError = true)] private static extern IntPtr CreateJobObjectW(IntPtr attributes, IntPtr name);
        [DllImport("kernel32", SetLastError = true)] private static extern bool AssignProcessToJobObject(IntPtr job, IntPtr process);
        [DllImport("kernel32", SetLastError = true)] private static extern bool TerminateJobObject(IntPtr job, uint exitCode);
        [DllImport("kernel32", SetLastError = true)] private static extern bool CloseHandle(IntPtr handle);
        [DllImport("kernel32", SetLastError = true)] private static extern bool QueryInformationJobObject(IntPtr job, int infoClass, out BasicAccounting info, int length, IntPtr returnLength);

        public static WindowsJob? Create()
        {
            var h = CreateJobObjectW(IntPtr.Zero, IntPtr.Zero);
            return h == IntPtr.Zero ? null : new WindowsJob { _handle = h };
        }

        public void Assign(Process p)
        {
            if (!AssignProcessToJobObject(_handle, p.Handle)) { CloseHandle(_handle); _handle = IntPtr.Zero; }
        }

        public void Terminate()
        {
            if (_handle != IntPtr.Zero) TerminateJobObject(_handle, 1);
        }

        /// <summary>(user ms, kernel ms) of every process that ran in the job; null if the job is not usable.</summary>
        public (double?, double?)? TryQueryTimes()
        {
            if (_handle == IntPtr.Zero) return null;
            if (!QueryInformationJobObject(_handle, 1, out var info, Marshal.SizeOf<BasicAccounting>(), IntPtr.Zero)) return null;
            return (info.TotalUserTime / 10_000.0, info.TotalKernelTime / 10_000.0);
        }

        public void Dispose()
        {
            if (_handle != IntPtr.Zero) CloseHandle(_handle);
            _handle = IntPtr.Zero;
        }
    }

    private static void TryKill(Process p)
    {
        try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } catch (System.ComponentModel.Win32Exception) { }
    }

    internal static Task<byte[]> ReadAllAsync(Stream s) => Task.Run(() =>
    {
        using var ms = new MemoryStream();
        try { s.CopyTo(ms); } catch (IOException) { } catch (ObjectDisposedException) { }
        return ms.ToArray();
    });

    /// <summary>posix_spawnp + wait4 on Linux (glibc or musl; x64/arm64 struct layouts).</summary>
    private static unsafe class LinuxSpawn
    {
        private const int O_RDONLY = 0;
        private const int O_CLOEXEC = 0x80000;
        private const short POSIX_SPAWN_SETPGROUP = 0x02;
        private const short POSIX_SPAWN_SETSIGDEF = 0x04;
        private const short POSIX_SPAWN_SETSIGMASK = 0x08;
        private const int SIGKILL = 9;
        private const int EINTR = 4;
        private const int ECHILD = 10;

        [StructLayout(LayoutKind.Sequential)]
        private struct Rusage
        {
            public long UtimeSec, UtimeUsec, StimeSec, StimeUsec;
            public long MaxRss, IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NVcsw, NIvcsw;
        }

        [DllImport("libc", SetLastError = true)] private static extern int pipe2(int* fds, int flags);
        [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
        [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
        [DllImport("libc", SetLastError = true)] private static extern int wait4(int pid, int* status, int options, Rusage* usage);
        [DllImport("libc")] private static extern int posix_spawn_file_actions_init(void* fa);
        [DllImport("libc")] private static extern int posix_spawn_file_actions_destroy(void* fa);
        [DllImport("libc")] private static extern int posix_spawn_file_actions_adddup2(void* fa, int fd, int newfd);
        [DllImport("libc")] private static extern int posix_spawn_file_actions_addopen(void* fa, int fd, byte* path, int oflag, int mode);
        [DllImport("libc")] private static extern int posix_spawn_file_actions_addchdir_np(void* fa, byte* path);
        [DllImport("libc")] private static extern int posix_spawnattr_init(void* attr);
        [DllImport("libc")] private static extern int posix_spawnattr_destroy(void* attr);
        [DllImport("libc")] private static extern int posix_spawnattr_setflags(void* attr, short flags);
        [DllImport("libc")] private static extern int posix_spawnattr_setpgroup(void* attr, int pgroup);
        [DllImport("libc")] private static extern int posix_spawnattr_setsigmask(void* attr, void* mask);
        [DllImport("libc")] private static extern int posix_spawnattr_setsigdefault(void* attr, void* mask);
        [DllImport("libc")] private static extern int sigemptyset(void* set);
        [DllImport("libc")] private static extern int sigaddset(void* set, int sig);
        [DllImport("libc")] private static extern int posix_spawnp(int* pid, byte* file, void* fa, void* attr, byte** argv, byte** envp);

        public static ProcessMeasurement Run(ProcessLaunch launch, CancellationToken cancel)
        {
            var env = BuildEnvironment(launch.Environment);
            var allocs = new List<IntPtr>();
            // Generous opaque buffers: glibc's posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336, sigset_t 128.
            var fa = NativeMemory.AllocZeroed(1024);
            var attr = NativeMemory.AllocZeroed(1024);
            var sigEmpty = NativeMemory.AllocZeroed(256);
            var sigDefault = NativeMemory.AllocZeroed(256);
            int* outPipe = stackalloc int[2];
            int* errPipe = stackalloc int[2];
            outPipe[0] = outPipe[1] = errPipe[0] = errPipe[1] = -1;
            int pid = 0;
            try
            {
                if (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0)
                    throw new RequiemException("BenchLaunchFailed", ErrorKind.ResourceUnavailable, $"pipe2 failed (errno {Marshal.GetLastPInvokeError()}).", launch.Argv[0]);

                posix_spawn_file_actions_init(fa);
                var devnull = Utf8(allocs, "/dev/null");
                posix_spawn_file_actions_addopen(fa, 0, devnull, O_RDONLY, 0);
                posix_spawn_file_actions_adddup2(fa, outPipe[1], 1);
                posix_spawn_file_actions_adddup2(fa, errPipe[1], 2);
                if (launch.WorkingDirectory is { } cwd)
                {
                    var rc = posix_spawn_file_actions_addchdir_np(fa, Utf8(allocs, cwd));
                    if (rc != 0) throw new RequiemException("BenchLaunchFailed", ErrorKind.InvalidOperation, $"Cannot set the working directory (error {rc}).", cwd);
                }

                posix_spawnattr_init(attr);
                posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
                posix_spawnattr_setpgroup(attr, 0);
                sigemptyset(sigEmpty);
                posix_spawnattr_setsigmask(attr, sigEmpty);
                // .NET ignores SIGPIPE and installs handlers; ignored dispositions survive exec, so reset them all.
                sigemptyset(sigDefault);
                for (var s = 1; s < 32; s++) if (s is not 9 and not 19) sigaddset(sigDefault, s);
                posix_spawnattr_setsigdefault(attr, sigDefault);

                var argv = (byte**)NativeMemory.AllocZeroed((nuint)(launch.Argv.Count + 1), (nuint)sizeof(byte*));
                allocs.Add((IntPtr)argv);
                for (var i = 0; i < launch.Argv.Count; i++) argv[i] = Utf8(allocs, launch.Argv[i]);
                var envp = (byte**)NativeMemory.AllocZeroed((nuint)(env.Count + 1), (nuint)sizeof(byte*));
                allocs.Add((IntPtr)envp);
                for (var i = 0; i < env.Count; i++) envp[i] = Utf8(allocs, env[i]);

                var start = Stopwatch.GetTimestamp();
                int spawned;
                var spawnRc = posix_spawnp(&spawned, argv[0], fa, attr, argv, envp);
                pid = spawned;
                if (spawnRc != 0)
                {
                    throw new RequiemException("BenchLaunchFailed", ErrorKind.InvalidOperation,
                        $"Cannot start '{launch.Argv[0]}': {Marshal.GetPInvokeErrorMessage(spawnRc)} (errno {spawnRc}).", launch.Argv[0]);
                }
                close(outPipe[1]); outPipe[1] = -1;
                close(errPipe[1]); errPipe[1] = -1;

                var outStream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(outPipe[0], true), FileAccess.Read, 1);
                outPipe[0] = -1;
                var errStream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(errPipe[0], true), FileAccess.Read, 1);
                errPipe[0] = -1;
                var outTask = ReadAllAsync(outStream);
                var errTask = ReadAllAsync(errStream);

                // One waiter per run: this thread. Kills (timeout, Ctrl+C) target the child's process group and are
                // only sent while the child has not been reaped, so a recycled pid is never signalled.
                var gate = new object();
                var reaped = false;
                var timedOut = false;
                void KillGroup(bool timeout)
                {
                    lock (gate)
                    {
                        if (reaped) return;
                        if (timeout) timedOut = true;
                        kill(-pid, SIGKILL);
                    }
                }
                using var reg = cancel.Register(() => KillGroup(false));
                using var timer = launch.Timeout is { } t ? new Timer(_ => KillGroup(true), null, t, Timeout.InfiniteTimeSpan) : null;

                int status;
                Rusage ru;
                int w;
                while (true)
                {
                    w = wait4(pid, &status, 0, &ru);
                    if (w == pid) break;
                    var errno = Marshal.GetLastPInvokeError();
                    if (w == -1 && errno == EINTR) continue;
                    throw new RequiemException("BenchWaitFailed", ErrorKind.InvalidOperation, $"wait4({pid}) failed (errno {errno}).", launch.Argv[0]);
                }
                var wall = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                lock (gate) reaped = true;

                // Descendants that outlive the child may still hold the pipes: give them a moment, then kill the group.
                if (!Task.WaitAll(new Task[] { outTask, errTask }, TimeSpan.FromSeconds(2)))
                {
                    kill(-pid, SIGKILL);
                    Task.WaitAll(new Task[] { outTask, errTask }, TimeSpan.FromSeconds(5));
                }
                outStream.Dispose();
                errStream.Dispose();
                cancel.ThrowIfCancellationRequested();

                // exec charges the child with the high-water RSS of the image it replaced — with vfork-style spawning,
                // ours (pwsh, ~100+ MB). A figure at or below our own VmHWM is that floor, not the child: report null.
                var floor = ReadOwnPeakRssKb();
                long? maxRss = floor is { } f && ru.MaxRss <= f ? null : ru.MaxRss;
                int exit; int? signal = null;
                if ((status & 0x7f) == 0) exit = (status >> 8) & 0xff;
                else { signal = status & 0x7f; exit = 128 + signal.Value; }
                return new ProcessMeasurement
                {
                    WallMs = wall,
                    UserMs = ru.UtimeSec * 1000.0 + ru.UtimeUsec / 1000.0,
                    SystemMs = ru.StimeSec * 1000.0 + ru.StimeUsec / 1000.0,
                    MaxRssKb = maxRss,
                    MaxRssFloorKb = floor,
                    ExitCode = exit,
                    Signal = signal,
                    TimedOut = timedOut,
                    Stdout = outTask.IsCompletedSuccessfully ? outTask.Result : Array.Empty<byte>(),
                    Stderr = errTask.IsCompletedSuccessfully ? errTask.Result : Array.Empty<byte>(),
                };
            }
            finally
            {
                for (var i = 0; i < 2; i++)
                {
                    if (outPipe[i] >= 0) close(outPipe[i]);
                    if (errPipe[i] >= 0) close(errPipe[i]);
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

        private static long? ReadOwnPeakRssKb()
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/self/status"))
                {
                    if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                    var digits = new string(line.Where(char.IsAsciiDigit).ToArray());
                    return long.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException) { }
            return null;
        }

        private static byte* Utf8(List<IntPtr> allocs, string s)
        {
            var n = Encoding.UTF8.GetByteCount(s);
            var p = (byte*)NativeMemory.Alloc((nuint)n + 1);
            allocs.Add((IntPtr)p);
            Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
            p[n] = 0;
            return p;
        }
    }

    /// <summary>The inherited environment with the overrides applied, as NAME=value strings.</summary>
    internal static List<string> BuildEnvironment(IReadOnlyDictionary<string, string?>? overrides)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in System.Environment.GetEnvironmentVariables())
            env[(string)e.Key] = (string?)e.Value ?? "";
        if (overrides is not null)
        {
            foreach (var (k, v) in overrides)
            {
                if (v is null) env.Remove(k); else env[k] = v;
            }
        }
        return env.Select(kv => kv.Key + "=" + kv.Value).ToList();
    }
}
