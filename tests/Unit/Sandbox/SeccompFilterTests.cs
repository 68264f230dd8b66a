using System.Diagnostics;
using System.Runtime.InteropServices;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Sandbox;

/// <summary>The seccomp program bwrap is given is the launcher's, byte for byte.</summary>
public sealed class SeccompFilterTests
{
    [Fact]
    public void TheEnginesProgramIsTheLaunchersByteForByte()
    {
        if (!OperatingSystem.IsLinux() || SandboxProbe.LauncherCandidate() is not { } launcher || !File.Exists(launcher)) return;
        var psi = new ProcessStartInfo(launcher) { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--print-seccomp");
        using var p = Process.Start(psi)!;
        using var bytes = new MemoryStream();
        p.StandardOutput.BaseStream.CopyTo(bytes);
        Assert.True(p.WaitForExit(10_000));
        var expected = SeccompFilter.Program(RuntimeInformation.ProcessArchitecture);
        if (expected is null)
        {
            Assert.NotEqual(0, p.ExitCode); // neither has a program for this architecture
            return;
        }
        Assert.Equal(0, p.ExitCode);
        Assert.Equal(expected, bytes.ToArray());
    }

    [Fact]
    public void ChecksTheArchitectureFirstAndAllowsByDefault()
    {
        foreach (var (arch, audit) in new[] { (Architecture.X64, 0xc000003eu), (Architecture.Arm64, 0xc00000b7u) })
        {
            var prog = SeccompFilter.Program(arch)!;
            Assert.Equal(0, prog.Length % 8);
            Assert.Equal(4u, BitConverter.ToUInt32(prog, 4));                   // load seccomp_data.arch
            Assert.Equal(audit, BitConverter.ToUInt32(prog, 12));               // compared with this architecture
            Assert.Equal(0x80000000u, BitConverter.ToUInt32(prog, 20));         // else kill the process
            Assert.Equal(0x7fff0000u, BitConverter.ToUInt32(prog, prog.Length - 4)); // the last instruction allows
        }
        Assert.Null(SeccompFilter.Program(Architecture.S390x));
    }

    /// <summary>
    /// The program run for every syscall number, as the kernel does when it is installed: exactly the listed calls get
    /// EPERM (found by the binary search), clone3 ENOSYS, clone EPERM only with a namespace flag, x32 numbers EPERM,
    /// another architecture is killed, and everything else is allowed.
    /// </summary>
    [Fact]
    public void DeniesExactlyTheListedCallsOnX64()
    {
        var prog = SeccompFilter.Program(Architecture.X64)!;
        var denied = new HashSet<uint>
        {
            165, 166, 155, 428, 429, 430, 431, 432, 433, 442, 272, 308, 101, 310, 311, 246, 320, 175, 313, 176, 321, 298,
            250, 248, 249, 304, 169, 167, 168, 323,
        };
        const uint Allow = 0x7fff0000u, Eperm = 0x00050001u, Enosys = 0x00050026u, Kill = 0x80000000u, X64 = 0xc000003eu;
        for (uint nr = 0; nr < 1024; nr++)
        {
            var expected = denied.Contains(nr) ? Eperm : nr == 435 ? Enosys : Allow;
            Assert.Equal(expected, Run(prog, nr, X64, 0));
        }
        Assert.Equal(Allow, Run(prog, 56, X64, 0x11u));            // clone for a thread or a fork
        Assert.Equal(Eperm, Run(prog, 56, X64, 0x10000000u));      // clone with CLONE_NEWUSER
        Assert.Equal(Eperm, Run(prog, 0x40000000u + 1, X64, 0));   // an x32 call
        Assert.Equal(Kill, Run(prog, 1, 0x40000003u, 0));          // an i386 call
    }

    /// <summary>A classic-BPF interpreter for the instructions the program uses (seccomp_data: nr, arch, args[0] low word).</summary>
    private static uint Run(byte[] prog, uint nr, uint arch, uint arg0)
    {
        uint a = 0;
        for (var pc = 0; ;)
        {
            var code = BitConverter.ToUInt16(prog, pc * 8);
            var (jt, jf, k) = (prog[pc * 8 + 2], prog[pc * 8 + 3], BitConverter.ToUInt32(prog, pc * 8 + 4));
            switch (code)
            {
                case 0x20: a = k switch { 0 => nr, 4 => arch, 16 => arg0, _ => throw new InvalidOperationException($"load {k}") }; pc++; break;
                case 0x06: return k;
                case 0x15: pc += 1 + (a == k ? jt : jf); break;
                case 0x35: pc += 1 + (a >= k ? jt : jf); break;
                case 0x45: pc += 1 + ((a & k) != 0 ? jt : jf); break;
                default: throw new InvalidOperationException($"opcode {code:x}");
            }
        }
    }
}
