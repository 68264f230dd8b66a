using System.Text;
using Requiem.Engine;
using Requiem.Engine.Execution;
using Requiem.Engine.Json;
using Xunit;

namespace Requiem.Tests.Json;

public class StrictTextTests
{
    [Fact]
    public void DecodesUtf8WithAndWithoutBomAndUtf16WithBom()
    {
        Assert.Equal("{\"a\":\"é\"}", StrictText.Decode(Encoding.UTF8.GetBytes("{\"a\":\"é\"}"), "request", null));
        Assert.Equal("{}", StrictText.Decode(new byte[] { 0xEF, 0xBB, 0xBF, (byte)'{', (byte)'}' }, "request", null));
        Assert.Equal("{}", StrictText.Decode(new byte[] { 0xFF, 0xFE, (byte)'{', 0, (byte)'}', 0 }, "request", null));
    }

    [Theory]
    [InlineData(new byte[] { (byte)'"', 0xFF, (byte)'"' })]
    [InlineData(new byte[] { (byte)'"', 0xC3, 0x28, (byte)'"' })]
    [InlineData(new byte[] { (byte)'"', 0xED, 0xA0, 0x80, (byte)'"' })] // an encoded surrogate (CESU-8)
    [InlineData(new byte[] { (byte)'"', 0xF0, 0x9F, 0x98, (byte)'"' })] // truncated 4-byte sequence
    public void RefusesInvalidUtf8AsInvalidJson(byte[] bytes)
    {
        var ex = Assert.Throws<RequiemException>(() => StrictText.Decode(bytes, "request", "file.json"));
        Assert.Equal("InvalidJson", ex.ErrorId);
        Assert.Equal("file.json", ex.Target);
    }

    [Theory]
    [InlineData("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"cwd\":\"\\ud800\"}")]
    [InlineData("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"argv\":[\"\\udc00\\ud800\"]}")]
    [InlineData("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"env\":{\"\\ud800\":\"x\"}}")]
    public void ALoneSurrogateEscapeInARequestIsInvalidJson(string json)
    {
        Assert.Equal("InvalidJson", Assert.Throws<RequiemException>(() => ExecRequestParser.Parse(json)).ErrorId);
    }

    [Fact]
    public void ALoneSurrogateInTheTextOrInATypedRequestIsInvalidJson()
    {
        var raw = "{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"argv\":[\"" + '\uD800' + "\"]}";
        Assert.Equal("InvalidJson", Assert.Throws<RequiemException>(() => ExecRequestParser.Parse(raw)).ErrorId);
        var typed = new ExecRequest { Command = "/bin/true", WorkspaceRoot = "/tmp", Argv = new[] { "a\uDC00" } };
        Assert.Equal("InvalidJson", Assert.Throws<RequiemException>(() => typed.Validate()).ErrorId);
        var invalidUtf8 = Encoding.UTF8.GetBytes("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"argv\":[\"?\"]}");
        invalidUtf8[Array.IndexOf(invalidUtf8, (byte)'?')] = 0xFF;
        Assert.Equal("InvalidJson", Assert.Throws<RequiemException>(() => ExecRequestParser.Parse(invalidUtf8)).ErrorId);
    }

    [Fact]
    public void LimitsAndPathLengthsAreTypedErrors()
    {
        RequiemException Parse(string json) => Assert.Throws<RequiemException>(() => ExecRequestParser.Parse(json));
        Assert.Equal("InvalidRequestLimit", Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{\"max_processes\":4194305}}").ErrorId);
        Assert.Equal(4_194_304, ExecRequestParser.Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{\"max_processes\":4194304}}").Policy.MaxProcesses);
        Assert.Equal("InvalidRequestLimit", Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{\"max_output_file_bytes\":-1}}").ErrorId);
        var longPath = new string('a', ExecRequest.MaxPathBytes + 1);
        Assert.Equal("PathTooLong", Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"cwd\":\"" + longPath + "\"}").ErrorId);
        Assert.Equal("PathTooLong", Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"outputs\":[\"" + longPath + "\"]}").ErrorId);
        // Multi-byte characters count as their UTF-8 bytes.
        Assert.Equal("PathTooLong", Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"cwd\":\"" + new string('é', 2048) + "\"}").ErrorId);
    }

    [Fact]
    public void TheOutputFileCapIsOmittedFromTheNormalizedRequestUnlessGiven()
    {
        var plain = ExecRequestParser.Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\"}");
        Assert.DoesNotContain("max_output_file_bytes", Encoding.UTF8.GetString(plain.CanonicalBytes()));
        Assert.Equal(ExecPolicy.DefaultMaxOutputFileBytes, plain.Policy.EffectiveMaxOutputFileBytes);
        var capped = ExecRequestParser.Parse("{\"command\":\"/bin/true\",\"workspace_root\":\"/tmp\",\"policy\":{\"max_output_file_bytes\":5}}");
        Assert.Contains("\"max_output_file_bytes\":5", Encoding.UTF8.GetString(capped.CanonicalBytes()));
    }
}

public class RealPathTests
{
    [Fact]
    public void ResolvingAVeryLongPathThatDoesNotExistIsLinear()
    {
        // 1 MiB of components below a directory that does not exist: nothing below the first missing one is looked up.
        var root = Path.Combine(Path.GetTempPath(), "requiem-realpath-" + Guid.NewGuid().ToString("n"));
        var path = root + "/" + string.Concat(Enumerable.Repeat("a/", 512 * 1024));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var real = Requiem.Engine.Sandbox.WorkspacePaths.RealPath(path);
        Assert.True(sw.Elapsed.TotalSeconds < 5, $"took {sw.Elapsed}");
        Assert.Equal(path.TrimEnd('/'), real);
    }

    [Fact]
    public void ResolvesLinksAndDotDotAfterAMissingComponentLexically()
    {
        var root = Directory.CreateTempSubdirectory("requiem-realpath-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "real"));
            File.CreateSymbolicLink(Path.Combine(root, "link"), Path.Combine(root, "real"));
            Assert.Equal(Path.Combine(root, "real", "x"), Requiem.Engine.Sandbox.WorkspacePaths.RealPath(Path.Combine(root, "link", "x")));
            Assert.Equal(Path.Combine(root, "real"), Requiem.Engine.Sandbox.WorkspacePaths.RealPath(root + "/missing/../link"));
        }
        finally { Directory.Delete(root, true); }
    }
}
