using System.Runtime.InteropServices;

namespace Requiem.Engine.Interop;

/// <summary>The C library calls of the sandbox and the process host (Linux and other Unix; never called on Windows).</summary>
internal static partial class Libc
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillProcess(int pid, int signal);

    /// <summary>The effective user id (1 on Windows, which has none, so that "root" checks are false there).</summary>
    public static uint Geteuid() => OperatingSystem.IsWindows() ? 1u : GetEffectiveUserId();

    /// <summary>kill(2); a no-op on Windows.</summary>
    public static void Kill(int pid, int signal)
    {
        if (!OperatingSystem.IsWindows()) KillProcess(pid, signal);
    }
}
