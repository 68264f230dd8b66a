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
}
