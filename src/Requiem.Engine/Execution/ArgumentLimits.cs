using System.Runtime.InteropServices;
using System.Text;

namespace Requiem.Engine.Execution;

/// <summary>
/// The operating system's limit on the size of a new process's arguments and environment, checked before launch so an
/// oversized request is refused with the limit named, instead of failing inside exec (E2BIG) or CreateProcess.
/// </summary>
public static partial class ArgumentLimits
{
    /// <summary>CreateProcess: the command line, including its terminating NUL, in UTF-16 characters.</summary>
    public const int WindowsCommandLineChars = 32_767;
    /// <summary>Linux MAX_ARG_STRLEN (32 pages): the most bytes, NUL included, of one argument or environment string.</summary>
    public const int LinuxMaxStringBytes = 32 * 4096;

    private const int ScArgMaxLinux = 0;
    private const int ScArgMaxBsd = 1;

    private static long SysConf(int name) => Interop.Libc.SysConf(name);

    /// <summary>sysconf(_SC_ARG_MAX) on Unix (it follows the stack rlimit on Linux); null where unknown.</summary>
    public static long? UnixArgMax()
    {
        if (OperatingSystem.IsWindows()) return null;
        try
        {
            var value = SysConf(OperatingSystem.IsLinux() ? ScArgMaxLinux : ScArgMaxBsd);
            return value > 0 ? value : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Throws <c>ArgumentListTooLong</c> when the command, its arguments and environment cannot be passed to a new process here.</summary>
    public static void Check(string commandPath, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment)
    {
        if (OperatingSystem.IsWindows()) CheckWindows(commandPath, argv);
        else CheckUnix(commandPath, argv, environment, UnixArgMax());
    }

    /// <summary>
    /// Counted as the kernel does (fs/exec.c): the executable's path, argv[0] and every argument and "NAME=value" string
    /// with its NUL, plus one pointer per argument and environment string; on Linux each string is also capped by
    /// MAX_ARG_STRLEN.
    /// </summary>
    public static void CheckUnix(string commandPath, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment, long? argMax)
    {
        long total = Utf8(commandPath) + 1;
        void Add(string text, string what)
        {
            var bytes = Utf8(text) + 1;
            if (OperatingSystem.IsLinux() && bytes > LinuxMaxStringBytes)
                throw new RequiemException("ArgumentListTooLong", ErrorKind.LimitsExceeded,
                    $"{what} is {bytes} bytes; Linux passes at most {LinuxMaxStringBytes} bytes (MAX_ARG_STRLEN) in one argument or environment string, so the command was not started. Pass large data through stdin or an input file.",
                    what);
            total += bytes;
        }
        Add(commandPath, "argv[0]");
        for (var i = 0; i < argv.Count; i++) Add(argv[i], $"$.argv[{i}]");
        foreach (var (name, value) in environment) Add(name + "=" + value, $"$.env.{name}");
        total += (long)(argv.Count + 1 + environment.Count) * IntPtr.Size;
        if (argMax is { } max && total > max)
            throw new RequiemException("ArgumentListTooLong", ErrorKind.LimitsExceeded,
                $"The command's arguments and environment take {total} bytes ({argv.Count + 1} argument(s), {environment.Count} environment variable(s)); " +
                $"this system passes at most {max} bytes to a new process (ARG_MAX, sysconf(_SC_ARG_MAX)), so the command was not started. " +
                "Pass large data through stdin or an input file.", "$.argv");
    }

    /// <summary>The command line CreateProcess would get: each argument quoted as the C runtime parses it back.</summary>
    public static void CheckWindows(string commandPath, IReadOnlyList<string> argv)
    {
        long chars = Quoted(commandPath) + 1;
        foreach (var a in argv) chars += 1 + Quoted(a);
        if (chars > WindowsCommandLineChars)
            throw new RequiemException("ArgumentListTooLong", ErrorKind.LimitsExceeded,
                $"The command line would be {chars} characters; Windows passes at most {WindowsCommandLineChars} (CreateProcess), so the command was not started. " +
                "Pass large data through stdin or an input file.", "$.argv");
    }

    private static long Utf8(string s) => Encoding.UTF8.GetByteCount(s);

    private static long Quoted(string arg)
    {
        if (arg.Length > 0 && arg.IndexOfAny(new[] { ' ', '\t', '\n', '\v', '"' }) < 0) return arg.Length;
        long n = 2, backslashes = 0;
        foreach (var c in arg)
        {
            if (c == '\\') { backslashes++; continue; }
            n += c == '"' ? backslashes * 2 + 2 : backslashes + 1;
            backslashes = 0;
        }
        return n + backslashes * 2;
    }
}
