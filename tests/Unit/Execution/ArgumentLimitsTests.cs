using Requiem.Engine;
using Requiem.Engine.Execution;
using Xunit;

namespace Requiem.Tests.Execution;

public sealed class ArgumentLimitsTests
{
    private static readonly Dictionary<string, string> NoEnv = new(StringComparer.Ordinal);

    [Fact]
    public void CountsStringsWithTheirNulsAndOnePointerEach_AsTheKernelDoes()
    {
        // "/bin/sh" twice (filename and argv[0]) = 2 × 8, "ab" = 3, "K=v" = 4, pointers (argv[0], "ab", "K=v") = 3 × pointer size.
        var env = new Dictionary<string, string>(StringComparer.Ordinal) { ["K"] = "v" };
        long exact = 16 + 3 + 4 + 3 * IntPtr.Size;
        ArgumentLimits.CheckUnix("/bin/sh", new[] { "ab" }, env, exact);
        var ex = Assert.Throws<RequiemException>(() => ArgumentLimits.CheckUnix("/bin/sh", new[] { "ab" }, env, exact - 1));
        Assert.Equal("ArgumentListTooLong", ex.ErrorId);
        Assert.Equal(ErrorKind.LimitsExceeded, ex.Kind);
        Assert.Contains($"take {exact} bytes", ex.Message);
        Assert.Contains($"at most {exact - 1} bytes", ex.Message);
    }

    [Fact]
    public void NoKnownLimitMeansNoTotalCheck()
    {
        ArgumentLimits.CheckUnix("/bin/sh", Enumerable.Repeat("x", 1000).ToArray(), NoEnv, argMax: null);
    }

    [Fact]
    public void TheSystemLimitIsReadOnUnix()
    {
        if (OperatingSystem.IsWindows()) return;
        Assert.True(ArgumentLimits.UnixArgMax() >= 4096);
    }

    [Fact]
    public void AWindowsCommandLineOverTheLimitIsRefused()
    {
        ArgumentLimits.CheckWindows(@"C:\tool.exe", new[] { new string('a', 32_000) });
        var ex = Assert.Throws<RequiemException>(() => ArgumentLimits.CheckWindows(@"C:\tool.exe", new[] { new string('a', 32_760) }));
        Assert.Equal("ArgumentListTooLong", ex.ErrorId);
        Assert.Contains("32767", ex.Message);
    }
}
