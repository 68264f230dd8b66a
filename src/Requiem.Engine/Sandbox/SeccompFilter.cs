using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// The seccomp-bpf program of <c>policy.seccomp</c>, instruction for instruction the one requiem-launch installs
/// (<c>install_seccomp</c> in src/native/requiem-launch.c; <c>requiem-launch --print-seccomp</c> writes its bytes and a
/// unit test compares the two), for isolators that take a compiled program: bubblewrap's <c>--seccomp FD</c>.
/// Allow by default; the architecture is checked first (anything else is killed), x32 calls are refused, and EPERM is
/// returned for the calls that would undo or escape the sandbox (found by binary search, so that the kernel's
/// evaluation of the program for every syscall number at install time stays short); clone3 gets ENOSYS (its flags are in memory the filter
/// cannot read, so libc falls back to clone), and clone with a namespace flag gets EPERM.
/// </summary>
public static class SeccompFilter
{
    private const ushort LdWordAbs = 0x20, JumpEqual = 0x15, JumpGreaterEqual = 0x35, JumpSet = 0x45, Return = 0x06;
    private const uint RetAllow = 0x7fff0000u, RetErrno = 0x00050000u, RetKillProcess = 0x80000000u;
    private const uint Eperm = 1, Enosys = 38;
    private const uint OffsetNr = 0, OffsetArch = 4, OffsetArg0Low = 16;
    /// <summary>CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.</summary>
    private const uint NamespaceCloneFlags = 0x7e020000u;

    private sealed record Table(uint AuditArch, bool RefuseX32, uint[] Denied, uint CloneNr, uint Clone3Nr);

    private static readonly Table X64 = new(0xc000003eu, true, new uint[]
    {
        165, 166, 155,                          // mount, umount2, pivot_root
        428, 429, 430, 431, 432, 433, 442,      // open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr
        272, 308,                               // unshare, setns
        101, 310, 311,                          // ptrace, process_vm_readv, process_vm_writev
        246, 320,                               // kexec_load, kexec_file_load
        175, 313, 176,                          // init_module, finit_module, delete_module
        321, 298,                               // bpf, perf_event_open
        250, 248, 249,                          // keyctl, add_key, request_key
        304, 169, 167, 168, 323,                // open_by_handle_at, reboot, swapon, swapoff, userfaultfd
    }, 56, 435);

    private static readonly Table Arm64 = new(0xc00000b7u, false, new uint[]
    {
        40, 39, 41,
        428, 429, 430, 431, 432, 433, 442,
        97, 268,
        117, 270, 271,
        104, 294,
        105, 273, 106,
        280, 241,
        219, 217, 218,
        265, 142, 224, 225, 282,
    }, 220, 435);

    /// <summary>The program for this process's architecture as <c>struct sock_filter</c> bytes, or null where there is none.</summary>
    public static byte[]? Program(Architecture architecture)
    {
        var table = architecture switch { Architecture.X64 => X64, Architecture.Arm64 => Arm64, _ => null };
        if (table is null) return null;
        var prog = new List<(ushort Code, byte Jt, byte Jf, uint K)>
        {
            (LdWordAbs, 0, 0, OffsetArch),
            (JumpEqual, 1, 0, table.AuditArch),
            (Return, 0, 0, RetKillProcess),
            (LdWordAbs, 0, 0, OffsetNr),
        };
        if (table.RefuseX32)
        {
            prog.Add((JumpGreaterEqual, 0, 1, 0x40000000u));
            prog.Add((Return, 0, 0, RetErrno | Eperm));
        }
        // The denied calls by binary search (the kernel runs the program for every syscall number when it is installed):
        // JGE splits, leaves of up to LeafSize JEQs that jump to the deny return, the last one on to the clone checks.
        var sorted = table.Denied.Order().ToArray();
        var tail = prog.Count + SearchSize(sorted.Length);
        var deny = tail + 5;
        EmitSearch(prog, sorted, deny, tail);
        prog.Add((JumpEqual, 0, 1, table.Clone3Nr));
        prog.Add((Return, 0, 0, RetErrno | Enosys));
        prog.Add((JumpEqual, 0, 3, table.CloneNr));
        prog.Add((LdWordAbs, 0, 0, OffsetArg0Low));
        prog.Add((JumpSet, 0, 1, NamespaceCloneFlags));
        prog.Add((Return, 0, 0, RetErrno | Eperm)); // deny: the search's matches land here
        prog.Add((Return, 0, 0, RetAllow));
        var bytes = new byte[prog.Count * 8];
        for (var i = 0; i < prog.Count; i++)
        {
            var s = bytes.AsSpan(i * 8, 8);
            BinaryPrimitives.WriteUInt16LittleEndian(s, prog[i].Code);
            s[2] = prog[i].Jt;
            s[3] = prog[i].Jf;
            BinaryPrimitives.WriteUInt32LittleEndian(s[4..], prog[i].K);
        }
        return bytes;
    }

    private const int LeafSize = 3;

    private static int SearchSize(int count) => count <= LeafSize ? count : 1 + SearchSize(count / 2) + SearchSize(count - count / 2);

    private static void EmitSearch(List<(ushort Code, byte Jt, byte Jf, uint K)> prog, ReadOnlySpan<uint> sorted, int deny, int next)
    {
        if (sorted.Length <= LeafSize)
        {
            for (var i = 0; i < sorted.Length; i++)
            {
                var at = prog.Count;
                prog.Add((JumpEqual, (byte)(deny - at - 1), (byte)(i == sorted.Length - 1 ? next - at - 1 : 0), sorted[i]));
            }
            return;
        }
        var half = sorted.Length / 2;
        prog.Add((JumpGreaterEqual, (byte)SearchSize(half), 0, sorted[half]));
        EmitSearch(prog, sorted[..half], deny, next);
        EmitSearch(prog, sorted[half..], deny, next);
    }

    private static readonly Lazy<string?> s_file = new(WriteFile, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// The program written once per process to a file in a private (0700) temp folder, removed at exit, for a launch
    /// that opens it as a descriptor (bwrap reads and closes it before the command starts); null where there is no program.
    /// </summary>
    public static string? File => s_file.Value;

    private static string? WriteFile()
    {
        if (Program(RuntimeInformation.ProcessArchitecture) is not { } program) return null;
        var dir = Directory.CreateTempSubdirectory("requiem-seccomp-");
        var path = Path.Combine(dir.FullName, "filter.bpf");
        System.IO.File.WriteAllBytes(path, program);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { dir.Delete(recursive: true); } catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        };
        return path;
    }
}
