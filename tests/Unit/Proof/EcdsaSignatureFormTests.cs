using Requiem.Engine.Proof;
using Xunit;

namespace Requiem.Tests.Proof;

public class EcdsaSignatureFormTests
{
    [Fact]
    public void SignaturesAreLowSAndTheirHighSTwinsVerifyButAreRefused()
    {
        using var key = SigningKey.Generate();
        var pub = key.PublicKey();
        var data = "payload"u8.ToArray();
        for (var i = 0; i < 32; i++)
        {
            var sig = key.Sign(data);
            Assert.Null(EcdsaSignatureForm.Problem(sig));
            var twin = EcdsaSignatureForm.ToHighS(sig);
            Assert.NotEqual(sig, twin);
            // The twin is a valid ECDSA signature (the malleability is real) ...
            Assert.True(pub.Verify(data, twin));
            // ... and the accepted form refuses it; normalising gives the original back.
            Assert.Contains("high S", EcdsaSignatureForm.Problem(twin));
            Assert.Equal(sig, EcdsaSignatureForm.ToLowS(twin));
        }
    }

    [Fact]
    public void NonCanonicalDerIsRefused()
    {
        using var key = SigningKey.Generate();
        var sig = key.Sign("x"u8.ToArray());
        // Trailing byte, long-form length, and garbage.
        Assert.NotNull(EcdsaSignatureForm.Problem(sig.Concat(new byte[] { 0 }).ToArray()));
        var longForm = new byte[] { 0x30, 0x81, sig[1] }.Concat(sig.Skip(2)).ToArray();
        Assert.NotNull(EcdsaSignatureForm.Problem(longForm));
        Assert.NotNull(EcdsaSignatureForm.Problem(new byte[] { 1, 2, 3 }));
        Assert.NotNull(EcdsaSignatureForm.Problem(Array.Empty<byte>()));
    }
}
