using System.Formats.Asn1;
using System.Numerics;

namespace Requiem.Engine.Proof;

/// <summary>
/// The one accepted byte form of a P-256 ECDSA signature: strict DER <c>SEQUENCE { r INTEGER, s INTEGER }</c> with
/// <c>s ≤ n/2</c> ("low S"). ECDSA is malleable — <c>(r, n − s)</c> verifies as well as <c>(r, s)</c> — so without this rule
/// a third party could change a signed envelope's bytes and it would still verify.
/// </summary>
public static class EcdsaSignatureForm
{
    /// <summary>The order n of the P-256 group (SEC 2, secp256r1).</summary>
    private static readonly BigInteger s_order = BigInteger.Parse("0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", System.Globalization.NumberStyles.HexNumber);
    private static readonly BigInteger s_halfOrder = s_order >> 1;

    /// <summary>The same signature with <c>s</c> replaced by <c>n − s</c> when it is in the upper half.</summary>
    public static byte[] ToLowS(byte[] der)
    {
        var (r, s) = Read(der) ?? throw new ArgumentException("not a DER ECDSA signature", nameof(der));
        return s > s_halfOrder ? Write(r, s_order - s) : der;
    }

    /// <summary>The high-S twin of a signature (tests and review tools: it must be refused).</summary>
    public static byte[] ToHighS(byte[] der)
    {
        var (r, s) = Read(der) ?? throw new ArgumentException("not a DER ECDSA signature", nameof(der));
        return s <= s_halfOrder ? Write(r, s_order - s) : der;
    }

    /// <summary>Why <paramref name="der"/> is not in the accepted form, or null when it is.</summary>
    public static string? Problem(byte[] der)
    {
        if (Read(der) is not var (r, s)) return "is not a strict DER ECDSA signature";
        if (r.Sign <= 0 || r >= s_order || s.Sign <= 0 || s >= s_order) return "has r or s outside 1..n-1";
        if (!Write(r, s).AsSpan().SequenceEqual(der)) return "is not in canonical DER form";
        if (s > s_halfOrder) return "has a high S value (s > n/2); only the low-S form is accepted, because (r, n-s) is a second valid signature over the same bytes";
        return null;
    }

    private static (BigInteger R, BigInteger S)? Read(byte[] der)
    {
        try
        {
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            var seq = reader.ReadSequence();
            var r = seq.ReadInteger();
            var s = seq.ReadInteger();
            seq.ThrowIfNotEmpty();
            reader.ThrowIfNotEmpty();
            return (r, s);
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    private static byte[] Write(BigInteger r, BigInteger s)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteInteger(r);
            writer.WriteInteger(s);
        }
        return writer.Encode();
    }
}
