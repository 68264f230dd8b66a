using Requiem.Engine.Bench;
using Xunit;

namespace Requiem.Tests.Bench;

public sealed class CiReporterTests
{
    [Fact]
    public void GitHubOutputsUseTheMultilineSafeFormat()
    {
        var text = CiReporter.FormatGitHubOutput(new[]
        {
            new KeyValuePair<string, string>("regressed", "true"),
            new KeyValuePair<string, string>("regressed_cases", "a\nb=c"),
        });
        var lines = text.Split('\n');
        Assert.StartsWith("regressed<<ghadelimiter_", lines[0]);
        Assert.Equal("true", lines[1]);
        Assert.Equal(lines[0]["regressed<<".Length..], lines[2]);
        Assert.StartsWith("regressed_cases<<ghadelimiter_", lines[3]);
        Assert.Equal("a", lines[4]);
        Assert.Equal("b=c", lines[5]);
        Assert.Equal(lines[3]["regressed_cases<<".Length..], lines[6]);
        Assert.NotEqual(lines[2], lines[6]);
    }

    [Fact]
    public void AnUnsupportedInputNamesWhatIsAccepted()
    {
        var ex = Assert.Throws<Requiem.Engine.RequiemException>(() => CiReporter.Format(42, CiProvider.GitHub));
        Assert.Equal("UnsupportedInputType", ex.ErrorId);
        Assert.Contains("proof verification", ex.Message);
        Assert.Contains("CAS verification", ex.Message);
    }
}
