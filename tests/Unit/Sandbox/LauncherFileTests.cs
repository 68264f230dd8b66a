using System.Runtime.InteropServices;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Sandbox;

public sealed class LauncherFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-xunit-" + Guid.NewGuid().ToString("n"));

    public LauncherFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>A minimal 64-bit little-endian ELF header with the given e_machine.</summary>
    private string Elf(string name, ushort machine)
    {
        var header = new byte[64];
        header[0] = 0x7F; header[1] = (byte)'E'; header[2] = (byte)'L'; header[3] = (byte)'F';
        header[4] = 2; header[5] = 1; header[6] = 1;
        BitConverter.GetBytes(machine).CopyTo(header, 18);
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, header);
        return path;
    }

    [Fact]
    public void AcceptsTheRunningArchitectureAndRefusesAnother()
    {
        var own = LauncherFile.ExpectedMachine(RuntimeInformation.ProcessArchitecture);
        Assert.NotNull(own);
        Assert.Null(LauncherFile.CheckMachine(Elf("own", own!.Value)));
        var other = own == 183 ? (ushort)62 : (ushort)183;
        var problem = LauncherFile.CheckMachine(Elf("other", other));
        Assert.NotNull(problem);
        Assert.Contains("ELF machine", problem);
        Assert.Contains(RuntimeInformation.ProcessArchitecture.ToString(), problem);
    }

    [Fact]
    public void RefusesAFileThatIsNotElf()
    {
        var path = Path.Combine(_dir, "script");
        File.WriteAllText(path, "#!/bin/sh\nexit 0\n");
        Assert.Contains("not an ELF executable", LauncherFile.CheckMachine(path));
    }

    [Fact]
    public void RestoresTheExecuteBitOfAnOwnedFile()
    {
        if (!OperatingSystem.IsLinux()) return;
        var own = LauncherFile.ExpectedMachine(RuntimeInformation.ProcessArchitecture)!.Value;
        var path = Elf("no-x", own);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var check = LauncherFile.Check(path);
        Assert.True(check.Usable, check.Problem);
        Assert.True(check.RestoredExecuteBit);
        Assert.Equal(UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute,
            File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute));
    }

    [Fact]
    public void AMissingLauncherIsNotUsableAndSaysHowToGetOne()
    {
        var check = LauncherFile.Check(Path.Combine(_dir, "absent"));
        Assert.False(check.Usable);
        Assert.StartsWith("not found at", check.Problem);
        Assert.Contains("C compiler", check.Fix);
    }
}
