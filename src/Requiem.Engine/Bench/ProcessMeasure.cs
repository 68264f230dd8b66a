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
        private Microsoft.Win32.SafeHandles.SafeFileHandle? _handle;

        public static WindowsJob? Create()
        {
            if (!OperatingSystem.IsWindows()) return null;
            var h = Interop.Kernel32.CreateJobObjectW(IntPtr.Zero, null);
            if (!h.IsInvalid) return new WindowsJob { _handle = h };
            h.Dispose();
            return null;
        }

        public void Assign(Process p)
        {
            if (OperatingSystem.IsWindows() && _handle is not null && !Interop.Kernel32.AssignProcessToJobObject(_handle, p.SafeHandle)) Dispose();
        }

        public void Terminate()
        {
            if (OperatingSystem.IsWindows() && _handle is not null) Interop.Kernel32.TerminateJobObject(_handle, 1);
        }

        /// <summary>(user ms, kernel ms) of every process that ran in the job; null if the job is not usable.</summary>
        public (double?, double?)? TryQueryTimes()
        {
            if (!OperatingSystem.IsWindows() || _handle is null) return null;
            if (!Interop.Kernel32.QueryInformationJobObject(_handle, Interop.Kernel32.JobObjectBasicAccountingInformation, out var info,
                    Marshal.SizeOf<Interop.Kernel32.JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>(), IntPtr.Zero)) return null;
            return (info.TotalUserTime / 10_000.0, info.TotalKernelTime / 10_000.0);
        }

        public void Dispose()
        {
            _handle?.Dispose();
            _handle = null;
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

    /// <summary>posix_spawnp + wait4 on Linux through the engine's one process host (<see cref="Processes.ProcessHost"/>).</summary>
    private static class LinuxSpawn
    {
        public static ProcessMeasurement Run(ProcessLaunch launch, CancellationToken cancel)
        {
            Processes.HostedProcess p;
            try
            {
                p = Processes.ProcessHost.Start(new Processes.ProcessSpec
                {
                    Argv = launch.Argv, Environment = BuildEnvironment(launch.Environment), WorkingDirectory = launch.WorkingDirectory,
                });
            }
            catch (Processes.ProcessStartException ex)
            {
                throw new RequiemException("BenchLaunchFailed", ErrorKind.InvalidOperation, $"Cannot start '{launch.Argv[0]}': {ex.Message}.", launch.Argv[0]);
            }
            using (p)
            {
                var outTask = ReadAllAsync(p.Stdout);
                var errTask = ReadAllAsync(p.Stderr);
                // One waiter per run: this thread. Kills (timeout, Ctrl+C) go to the child's process group.
                var timedOut = 0;
                using var reg = cancel.Register(() => p.KillGroup());
                using var timer = launch.Timeout is { } t
                    ? new Timer(_ => { if (p.KillGroup()) Volatile.Write(ref timedOut, 1); }, null, t, Timeout.InfiniteTimeSpan)
                    : null;
                Processes.ProcessExit exit;
                try
                {
                    exit = p.WaitForExit();
                }
                catch (InvalidOperationException ex)
                {
                    throw new RequiemException("BenchWaitFailed", ErrorKind.InvalidOperation, ex.Message + ".", launch.Argv[0]);
                }
                timer?.Dispose();
                // Descendants that outlive the child may still hold the pipes: give them a moment, then kill the group.
                if (!Task.WaitAll(new Task[] { outTask, errTask }, TimeSpan.FromSeconds(2)))
                {
                    p.KillGroup();
                    Task.WaitAll(new Task[] { outTask, errTask }, TimeSpan.FromSeconds(5));
                }
                cancel.ThrowIfCancellationRequested();

                // exec charges the child with the high-water RSS of the image it replaced — with vfork-style spawning,
                // ours (pwsh, ~100+ MB). A figure at or below our own VmHWM is that floor, not the child: report null.
                var floor = ReadOwnPeakRssKb();
                long? maxRss = floor is { } f && exit.MaxRssKb <= f ? null : exit.MaxRssKb;
                return new ProcessMeasurement
                {
                    WallMs = exit.WallMs,
                    UserMs = exit.UserMs,
                    SystemMs = exit.SystemMs,
                    MaxRssKb = maxRss,
                    MaxRssFloorKb = floor,
                    ExitCode = exit.ExitCode,
                    Signal = exit.Signal,
                    TimedOut = Volatile.Read(ref timedOut) == 1,
                    Stdout = outTask.IsCompletedSuccessfully ? outTask.Result : Array.Empty<byte>(),
                    Stderr = errTask.IsCompletedSuccessfully ? errTask.Result : Array.Empty<byte>(),
                };
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
