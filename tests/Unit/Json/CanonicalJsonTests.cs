using System.Text;
using Requiem.Engine;
using Requiem.Engine.Json;
using Xunit;

namespace Requiem.Tests.Json;

public class CanonicalJsonTests
{
    [Fact]
    public void SortsMembersByUtf16CodeUnitsAndRemovesWhitespace()
    {
        // RFC 8785 section 3.2.3 sorting example (keys chosen to exercise UTF-16 ordering).
        var input = "{ \"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\", \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\", \"1\": \"One\", \"\\ud83d\\ude00\": \"Emoji: Grinning Face\", \"\\u0080\": \"Control\", \"\\u00f6\": \"Latin Small Letter O With Diaeresis\" }";
        var expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}";
        Assert.Equal(expected, CanonicalJson.CanonicalizeToString(input));
    }

    [Fact]
    public void TheSharedMemoGivesEachTextItsOwnCanonicalBytesAcrossManyTexts()
    {
        // More distinct texts than the memo holds, each asked for twice: a hit must be the bytes of that very text.
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < 300; i++)
            {
                var text = $"{{ \"b\": {i}, \"a\": [\"x{i}\", 1.50] }}";
                Assert.Equal(CanonicalJson.Canonicalize(text), CanonicalJson.CanonicalizeShared(text));
            }
        }
        var large = "{\"k\":\"" + new string('z', 10_000) + "\"}";
        Assert.Equal(CanonicalJson.Canonicalize(large), CanonicalJson.CanonicalizeShared(large));
        Assert.Equal("InvalidJson", Assert.Throws<RequiemException>(() => CanonicalJson.CanonicalizeShared("{\"a\":")).ErrorId);
    }

    [Fact]
    public void Rfc8785Example()
    {
        var input = "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}";
        var expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        Assert.Equal(expected, CanonicalJson.CanonicalizeToString(input));
    }

    [Theory]
    [InlineData(0.0, "0")]
    [InlineData(1.0, "1")]
    [InlineData(-1.5, "-1.5")]
    [InlineData(1e21, "1e+21")]
    [InlineData(1e20, "100000000000000000000")]
    [InlineData(123456789012345680000.0, "123456789012345680000")]
    [InlineData(0.000001, "0.000001")]
    [InlineData(0.0000001, "1e-7")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(9007199254740992.0, "9007199254740992")]
    [InlineData(295147905179352830000.0, "295147905179352830000")]
    public void NumbersUseEcmaScriptForm(double value, string expected) =>
        Assert.Equal(expected, CanonicalJson.FormatNumber(value));

    [Fact]
    public void DuplicateMembersAreRefused()
    {
        var ex = Assert.Throws<RequiemException>(() => CanonicalJson.Canonicalize("{\"a\":1,\"a\":2}"));
        Assert.Equal("DuplicateJsonMember", ex.ErrorId);
    }

    [Fact]
    public void InvalidJsonIsTypedError()
    {
        var ex = Assert.Throws<RequiemException>(() => CanonicalJson.Canonicalize("{\"a\":"));
        Assert.Equal("InvalidJson", ex.ErrorId);
    }

    [Fact]
    public void SameContentDifferentLayoutGivesSameBytes()
    {
        var a = CanonicalJson.Canonicalize("{\"b\": [1, 2.0, {\"y\":1, \"x\":2}], \"a\": \"\\u00e9\"}");
        var b = CanonicalJson.Canonicalize("{\"a\":\"é\",\"b\":[1.0,2,{\"x\":2,\"y\":1}]}");
        Assert.Equal(Encoding.UTF8.GetString(a), Encoding.UTF8.GetString(b));
    }
}
