using System.Runtime.InteropServices;

namespace Requiem.Engine.Interop;

/// <summary>posix_spawn, pipes and wait4 (Linux x64/arm64 struct layouts, glibc or musl), for <see cref="Processes.ProcessHost"/>.</summary>
internal static unsafe class Posix
{
    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;
    public const short POSIX_SPAWN_SETPGROUP = 0x02;
    public const short POSIX_SPAWN_SETSIGDEF = 0x04;
    public const short POSIX_SPAWN_SETSIGMASK = 0x08;
    public const int SIGKILL = 9;
    public const int EINTR = 4;

    [StructLayout(LayoutKind.Sequential)]
    public struct Rusage
    {
        public long UtimeSec, UtimeUsec, StimeSec, StimeUsec;
        public long MaxRss, IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NVcsw, NIvcsw;
    }

    [DllImport("libc", SetLastError = true)] public static extern int pipe2(int* fds, int flags);
    [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] public static extern int kill(int pid, int sig);
    [DllImport("libc", SetLastError = true)] public static extern int wait4(int pid, int* status, int options, Rusage* usage);
    [DllImport("libc")] public static extern int posix_spawn_file_actions_init(void* fa);
    [DllImport("libc")] public static extern int posix_spawn_file_actions_destroy(void* fa);
    [DllImport("libc")] public static extern int posix_spawn_file_actions_adddup2(void* fa, int fd, int newfd);
    [DllImport("libc")] public static extern int posix_spawn_file_actions_addopen(void* fa, int fd, byte* path, int oflag, int mode);
    [DllImport("libc")] public static extern int posix_spawn_file_actions_addchdir_np(void* fa, byte* path);
    [DllImport("libc")] public static extern int posix_spawnattr_init(void* attr);
    [DllImport("libc")] public static extern int posix_spawnattr_destroy(void* attr);
    [DllImport("libc")] public static extern int posix_spawnattr_setflags(void* attr, short flags);
    [DllImport("libc")] public static extern int posix_spawnattr_setpgroup(void* attr, int pgroup);
    [DllImport("libc")] public static extern int posix_spawnattr_setsigmask(void* attr, void* mask);
    [DllImport("libc")] public static extern int posix_spawnattr_setsigdefault(void* attr, void* mask);
    [DllImport("libc")] public static extern int sigemptyset(void* set);
    [DllImport("libc")] public static extern int sigaddset(void* set, int sig);
    [DllImport("libc")] public static extern int posix_spawnp(int* pid, byte* file, void* fa, void* attr, byte** argv, byte** envp);
}
