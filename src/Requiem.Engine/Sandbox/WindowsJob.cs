using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using Microsoft.Win32.SafeHandles;
using static Requiem.Engine.Interop.Kernel32;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// Windows: a process created suspended (CREATE_SUSPENDED), assigned to a Job Object carrying the limits
/// (JOB_OBJECT_LIMIT_PROCESS_MEMORY, JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_JOB_TIME,
/// JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE), then resumed — so no instruction runs outside the job. Written to the Win32
/// documentation of CreateJobObjectW, SetInformationJobObject, CreateProcessW, AssignProcessToJobObject and
/// ResumeThread. Only called behind <see cref="OperatingSystem.IsWindows"/>.
/// </summary>
[SupportedOSPlatform("windows")]
public sealed class WindowsJob : IDisposable
{
    // Inheritable pipe ends exist from CreatePipe until the child's copies are closed; two runs starting at once would
    // otherwise leak each other's pipe ends into their children (and never see EOF). Serialize that window, as
    // System.Diagnostics.Process does.
    private static readonly object s_createLock = new();

    private readonly SafeFileHandle _job;
    private readonly SafeFileHandle _process;

    private WindowsJob(SafeFileHandle job, SafeFileHandle process, int pid, Stream stdin, Stream stdout, Stream stderr)
    {
        _job = job;
        _process = process;
        ProcessId = pid;
        StandardInput = stdin;
        StandardOutput = stdout;
        StandardError = stderr;
    }

    public int ProcessId { get; }
    public Stream StandardInput { get; }
    public Stream StandardOutput { get; }
    public Stream StandardError { get; }

    /// <summary>Creates a job with KILL_ON_JOB_CLOSE and a process limit, to prove Job Objects work here.</summary>
    public static bool Probe(out string detail)
    {
        var job = CreateJobObjectW(IntPtr.Zero, null);
        if (job.IsInvalid)
        {
            detail = "CreateJobObjectW failed: " + new Win32Exception(Marshal.GetLastWin32Error()).Message;
            return false;
        }
        using (job)
        {
            var info = new JOBOBJECT_EXTENDED_LIMIT_INFORMATION();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
            info.BasicLimitInformation.ActiveProcessLimit = 4;
            var ok = SetInformationJobObject(job, JobObjectExtendedLimitInformation, ref info, (uint)Marshal.SizeOf<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>());
            detail = ok ? "job object with limits created" : "SetInformationJobObject failed: " + new Win32Exception(Marshal.GetLastWin32Error()).Message;
            return ok;
        }
    }

    /// <summary>Starts <paramref name="application"/> suspended inside a new job with the given limits, then resumes it.</summary>
    public static WindowsJob Start(string application, IReadOnlyList<string> argv, string cwd, IReadOnlyDictionary<string, string> env,
        long? maxMemoryBytes, long? maxCpuSeconds, long? maxProcesses)
    {
        var job = CreateJobObjectW(IntPtr.Zero, null);
        if (job.IsInvalid) throw Fail("CreateJobObjectW");
        var info = new JOBOBJECT_EXTENDED_LIMIT_INFORMATION();
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
        if (maxMemoryBytes is { } mem)
        {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
            info.ProcessMemoryLimit = (UIntPtr)(ulong)mem;
        }
        if (maxCpuSeconds is { } cpu)
        {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_JOB_TIME;
            info.BasicLimitInformation.PerJobUserTimeLimit = cpu * 10_000_000L; // 100-ns units
        }
        if (maxProcesses is { } procs)
        {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
            info.BasicLimitInformation.ActiveProcessLimit = (uint)Math.Min(procs, uint.MaxValue);
        }
        if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, ref info, (uint)Marshal.SizeOf<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>()))
        {
            job.Dispose();
            throw Fail("SetInformationJobObject");
        }

        SafeFileHandle inWrite, outRead, errRead;
        PROCESS_INFORMATION pi;
        lock (s_createLock)
        {
            var sa = new SECURITY_ATTRIBUTES { nLength = Marshal.SizeOf<SECURITY_ATTRIBUTES>(), bInheritHandle = 1 };
            if (!CreatePipe(out var inRead, out inWrite, ref sa, 0)) throw Fail("CreatePipe");
            if (!CreatePipe(out outRead, out var outWrite, ref sa, 0)) throw Fail("CreatePipe");
            if (!CreatePipe(out errRead, out var errWrite, ref sa, 0)) throw Fail("CreatePipe");
            // The parent's ends must not be inherited, or the child would keep its own pipes open.
            SetHandleInformation(inWrite, HANDLE_FLAG_INHERIT, 0);
            SetHandleInformation(outRead, HANDLE_FLAG_INHERIT, 0);
            SetHandleInformation(errRead, HANDLE_FLAG_INHERIT, 0);

            var si = new STARTUPINFOW
            {
                cb = Marshal.SizeOf<STARTUPINFOW>(),
                dwFlags = STARTF_USESTDHANDLES,
                hStdInput = inRead.DangerousGetHandle(),
                hStdOutput = outWrite.DangerousGetHandle(),
                hStdError = errWrite.DangerousGetHandle(),
            };
            var commandLine = new StringBuilder(WindowsCommandLine.Build(application, argv));
            var envBlock = BuildEnvironmentBlock(env);
            var created = CreateProcessW(application, commandLine, IntPtr.Zero, IntPtr.Zero, true,
                CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | CREATE_NO_WINDOW, envBlock, cwd, ref si, out pi);
            var error = Marshal.GetLastWin32Error();
            inRead.Dispose();
            outWrite.Dispose();
            errWrite.Dispose();
            if (!created)
            {
                job.Dispose();
                inWrite.Dispose(); outRead.Dispose(); errRead.Dispose();
                throw new RequiemException("CommandStartFailed", ErrorKind.InvalidOperation,
                    $"CreateProcessW('{application}') failed: {new Win32Exception(error).Message}", application);
            }
        }
        var process = new SafeFileHandle(pi.hProcess, ownsHandle: true);
        using var thread = new SafeFileHandle(pi.hThread, ownsHandle: true);
        if (!AssignProcessToJobObject(job, process))
        {
            var e = Fail("AssignProcessToJobObject");
            TerminateProcess(process, 1);
            process.Dispose(); job.Dispose();
            throw e;
        }
        if (ResumeThread(thread) == uint.MaxValue)
        {
            var e = Fail("ResumeThread");
            TerminateJobObject(job, 1);
            process.Dispose(); job.Dispose();
            throw e;
        }
        return new WindowsJob(job, process, pi.dwProcessId,
            new FileStream(inWrite, FileAccess.Write, 1), new FileStream(outRead, FileAccess.Read, 1), new FileStream(errRead, FileAccess.Read, 1));
    }

    /// <summary>Waits for the main process; returns false on timeout.</summary>
    public bool WaitForExit(int milliseconds) => WaitForSingleObject(_process, milliseconds < 0 ? INFINITE : (uint)milliseconds) == WAIT_OBJECT_0;

    public int ExitCode => GetExitCodeProcess(_process, out var code) ? (int)code : -1;

    /// <summary>Kills every process in the job.</summary>
    public void Kill() => TerminateJobObject(_job, 1);

    public void Dispose()
    {
        StandardInput.Dispose();
        _process.Dispose();
        _job.Dispose(); // KILL_ON_JOB_CLOSE: anything left in the job dies here
    }

    private static string BuildEnvironmentBlock(IReadOnlyDictionary<string, string> env)
    {
        var sb = new StringBuilder();
        foreach (var (k, v) in env.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase)) sb.Append(k).Append('=').Append(v).Append('\0');
        if (env.Count == 0) sb.Append('\0');
        sb.Append('\0');
        return sb.ToString();
    }

    private static RequiemException Fail(string what) =>
        new("SandboxSetupFailed", ErrorKind.ResourceUnavailable, $"{what} failed: {new Win32Exception(Marshal.GetLastWin32Error()).Message}", what);
}

/// <summary>Windows has no argv vector at the API: the command line is built so that CommandLineToArgvW / the MSVC runtime split it back exactly.</summary>
public static class WindowsCommandLine
{
    /// <summary>Quotes argv the way CommandLineToArgvW / the MSVC runtime split it back.</summary>
    public static string Build(string application, IReadOnlyList<string> argv)
    {
        var sb = new StringBuilder();
        Append(sb, application);
        foreach (var a in argv)
        {
            sb.Append(' ');
            Append(sb, a);
        }
        return sb.ToString();

        static void Append(StringBuilder sb, string arg)
        {
            if (arg.Length > 0 && arg.IndexOfAny(new[] { ' ', '\t', '\n', '\v', '"' }) < 0)
            {
                sb.Append(arg);
                return;
            }
            sb.Append('"');
            var backslashes = 0;
            foreach (var c in arg)
            {
                if (c == '\\') { backslashes++; continue; }
                if (c == '"') sb.Append('\\', backslashes * 2 + 1);
                else sb.Append('\\', backslashes);
                backslashes = 0;
                sb.Append(c);
            }
            sb.Append('\\', backslashes * 2);
            sb.Append('"');
        }
    }

}
