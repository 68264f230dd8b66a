using Requiem.Engine.Config;
using Xunit;

namespace Requiem.Tests.Config;

public class ConfigValidatorTests
{
    [Fact]
    public void SeedExampleIsValid()
    {
        var json = "{\"config_version\":\"1.1\",\"hash\":{\"primitive\":\"blake3\",\"backend\":\"vendored\"},\"cas\":{\"version\":\"v2\",\"compression\":\"identity\"},\"sandbox\":{\"deny_network\":false,\"max_memory_bytes\":1073741824}}";
        var r = ConfigValidator.ValidateText(json, "test.json");
        Assert.True(r.Valid, string.Join("; ", r.Errors));
        Assert.Empty(r.Warnings);
    }

    [Theory]
    [InlineData("{\"config_version\":\"9\"}", "$.config_version")]
    [InlineData("{\"config_version\":\"1.1\",\"hash\":{\"primitive\":\"md5\"}}", "$.hash.primitive")]
    [InlineData("{\"config_version\":\"1.1\",\"cas\":{\"compression\":\"gzip\"}}", "$.cas.compression")]
    [InlineData("{\"config_version\":\"1.1\",\"sandbox\":{\"max_memory_bytes\":-5}}", "$.sandbox.max_memory_bytes")]
    [InlineData("{\"config_version\":\"1.1\",\"sandbox\":{\"deny_network\":\"yes\"}}", "$.sandbox.deny_network")]
    [InlineData("{\"config_version\":\"1.1\",\"surprise\":1}", "$.surprise")]
    [InlineData("{}", "$.config_version")]
    [InlineData("[1]", "$")]
    [InlineData("{not json", "$")]
    public void ProblemsNameTheField(string json, string field)
    {
        var r = ConfigValidator.ValidateText(json, "test.json");
        Assert.False(r.Valid);
        Assert.Contains(r.Errors, e => e.Field == field);
    }

    [Fact]
    public void AllowFallbackIsAWarning()
    {
        var r = ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"hash\":{\"allow_fallback\":true}}", "t");
        Assert.True(r.Valid);
        Assert.Contains(r.Warnings, w => w.Field == "$.hash.allow_fallback");
    }

    [Fact]
    public void RemoteMaxObjectBytesIsReadAndMustBePositive()
    {
        const string remote = "{\"config_version\":\"1.1\",\"remote\":{\"kind\":\"azure_blob\",\"container\":\"requiem\",\"connection_string_env\":\"REQ_CONN\"";
        var r = ConfigValidator.ValidateText(remote + ",\"max_object_bytes\":1048576}}", "t");
        Assert.True(r.Valid, string.Join("; ", r.Errors));
        Assert.Equal(1048576, r.Config!.Remote!.MaxObjectBytes);
        Assert.Equal(Requiem.Engine.Cas.CasRemote.DefaultMaxObjectBytes, ConfigValidator.ValidateText(remote + "}}", "t").Config!.Remote!.MaxObjectBytes);
        Assert.Contains(ConfigValidator.ValidateText(remote + ",\"max_object_bytes\":0}}", "t").Errors, e => e.Field == "$.remote.max_object_bytes");
    }
}
