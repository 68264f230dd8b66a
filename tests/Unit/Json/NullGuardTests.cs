using Requiem.Engine.Bench;
using Requiem.Engine.Json;
using Xunit;

namespace Requiem.Tests.Json;

public sealed class NullGuardTests
{
    private static BenchSpec Spec(string casesJson) => JsonContract.Deserialize<BenchSpec>(
        $"{{\"bench_spec_version\":\"{BenchSpec.CurrentVersion}\",\"name\":\"n\",\"cases\":{casesJson}}}", "bench spec");

    [Fact]
    public void NamesANullListItemByItsJsonPath()
    {
        Assert.Equal("$.cases[1]", NullGuard.FindNull(Spec("[{\"name\":\"a\",\"command_line\":\"true\"},null]")));
    }

    [Fact]
    public void NamesANullRequiredPropertyInsideAnItemWithTheContractsName()
    {
        Assert.Equal("$.cases[0].name", NullGuard.FindNull(Spec("[{\"name\":null,\"command_line\":\"true\"}]")));
    }

    [Fact]
    public void NullsThatTheTypeAllowsAreNotReported()
    {
        Assert.Null(NullGuard.FindNull(Spec("[{\"name\":\"a\",\"command_line\":\"true\",\"argv\":null,\"env\":{\"X\":null}}]")));
    }
}
