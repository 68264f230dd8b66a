using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Requiem.Engine.Diagnostics;

namespace Requiem.Engine.Sandbox;

/// <summary>What <see cref="LauncherFile.Check"/> found; <see cref="Problem"/> and <see cref="Fix"/> are set when it is not usable.</summary>
public sealed record LauncherFileCheck(string Path, bool Usable, string? Problem, string? Fix, bool RestoredExecuteBit);

/// <summary>
/// Checks the launcher file before it is probed: it exists, it is executable (a module installed from a nupkg, which is
/// a zip, arrives without execute bits, so they are restored where the file's owner allows) and it is an ELF file for
/// this process's CPU (a linux-x64 launcher is not tried on arm64). Each path is checked once per process.
/// </summary>
public static partial class LauncherFile
{
    private static readonly ConcurrentDictionary<string, LauncherFileCheck> s_checks = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, byte> s_warned = new(StringComparer.Ordinal);

    public static LauncherFileCheck Check(string path) => s_checks.GetOrAdd(path, Inspect);

    /// <summary>
    /// Warns once per process and launcher path when the launcher in effect cannot be used (Linux only; nothing is
    /// said with <c>REQUIEM_LAUNCHER=none</c>, which asks for the tool chain).
    /// </summary>
    public static void WarnIfUnusable(IEngineOutput output)
    {
        if (!OperatingSystem.IsLinux() || SandboxProbe.LauncherCandidate() is not { } path) return;
        var check = Check(path);
        if (check.Usable || !s_warned.TryAdd(path, 0)) return;
        output.Warning($"requiem-launch is not used: {check.Problem}. Runs use the slower tool chain instead (bubblewrap where it works, else unshare/prlimit). Fix: {check.Fix}");
    }

    private static LauncherFileCheck Inspect(string path)
    {
        if (OperatingSystem.IsWindows()) return Unusable(path, "the launcher is for Linux", "none: Windows runs use Job Objects");
        if (!File.Exists(path))
        {
            return Unusable(path, $"not found at {path} (it is built only where a C compiler was present)",
                "build the module on this machine with a C compiler (cc, or musl-gcc) installed, or set REQUIEM_LAUNCHER=none to use the tool chain without this warning");
        }
        var machineProblem = CheckMachine(path);
        if (machineProblem is not null)
        {
            return Unusable(path, machineProblem,
                $"build the launcher for {RuntimeInformation.ProcessArchitecture} from src/native/requiem-launch.c (build.ps1 on this machine) and put it at {path}, or point REQUIEM_LAUNCHER at such a build");
        }
        if (IsExecutable(path)) return new LauncherFileCheck(path, true, null, null, false);
        try
        {
            var mode = File.GetUnixFileMode(path);
            // Execute for whoever may read it, as the build left it (a zip keeps no modes).
            var add = UnixFileMode.UserExecute
                      | (mode.HasFlag(UnixFileMode.GroupRead) ? UnixFileMode.GroupExecute : 0)
                      | (mode.HasFlag(UnixFileMode.OtherRead) ? UnixFileMode.OtherExecute : 0);
            File.SetUnixFileMode(path, mode | add);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            return Unusable(path, $"{path} is not executable and its execute bit could not be restored ({ex.Message})",
                $"run 'chmod +x {path}' as the file's owner, or install the module with Install-PSResource -Scope CurrentUser so you own its files");
        }
        if (IsExecutable(path)) return new LauncherFileCheck(path, true, null, null, true);
        return Unusable(path, $"{path} cannot be executed even with its execute bit set (is its folder on a noexec mount?)",
            "install the module on a file system mounted with exec, or point REQUIEM_LAUNCHER at a copy on one");
    }

    private static LauncherFileCheck Unusable(string path, string problem, string fix) => new(path, false, problem, fix, false);

    /// <summary>Null when the file is an ELF executable for this process's architecture; else why not.</summary>
    internal static string? CheckMachine(string path)
    {
        Span<byte> header = stackalloc byte[20];
        int read;
        try
        {
            using var stream = File.OpenRead(path);
            read = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            return $"{path} cannot be read ({ex.Message})";
        }
        if (read < header.Length || header[0] != 0x7F || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
        {
            return $"{path} is not an ELF executable";
        }
        // e_machine sits at offset 18 in both ELF classes, in the byte order EI_DATA names (1 little, 2 big endian).
        var machine = header[5] == 2 ? BinaryPrimitives.ReadUInt16BigEndian(header[18..]) : BinaryPrimitives.ReadUInt16LittleEndian(header[18..]);
        var expected = ExpectedMachine(RuntimeInformation.ProcessArchitecture);
        if (expected is null || machine == expected) return null;
        return $"{path} is built for ELF machine {MachineName(machine)}, but this process runs on {RuntimeInformation.ProcessArchitecture}";
    }

    /// <summary>ELF e_machine for a .NET architecture (null: not known here, so not checked).</summary>
    internal static ushort? ExpectedMachine(Architecture architecture) => architecture switch
    {
        Architecture.X64 => 62,        // EM_X86_64
        Architecture.Arm64 => 183,     // EM_AARCH64
        Architecture.X86 => 3,         // EM_386
        Architecture.Arm => 40,        // EM_ARM
        Architecture.S390x => 22,      // EM_S390
        Architecture.Ppc64le => 21,    // EM_PPC64
        Architecture.LoongArch64 => 258,
        _ => null,
    };

    private static string MachineName(ushort machine) => machine switch
    {
        62 => "x86-64 (62)",
        183 => "aarch64 (183)",
        3 => "i386 (3)",
        40 => "arm (40)",
        22 => "s390 (22)",
        21 => "ppc64 (21)",
        258 => "loongarch (258)",
        243 => "riscv (243)",
        _ => machine.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private const int X_OK = 1;

    private static int Access(string path, int mode) => Interop.Libc.Access(path, mode);

    /// <summary>access(2) with X_OK: the kernel's own answer, which also says no on a noexec mount.</summary>
    private static bool IsExecutable(string path) => Access(path, X_OK) == 0;
}
