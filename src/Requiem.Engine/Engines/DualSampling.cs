namespace Requiem.Engine.Engines;

/// <summary>
/// Which requests a dual run samples: the first 8 bytes of the request digest, read as a big-endian fraction of 2^64,
/// below the rate. The digest is a uniform hash, so a rate r samples a share r of distinct requests, and one request
/// is always in or always out (its digest does not change), on every machine and in every process.
/// </summary>
public static class DualSampling
{
    public static bool IsSampled(string requestDigest, double rate)
    {
        if (double.IsNaN(rate) || rate < 0 || rate > 1)
            throw new RequiemException("InvalidSampleRate", ErrorKind.InvalidArgument, $"The dual sample rate {rate} is not between 0 and 1.", rate);
        if (rate >= 1) return true;
        if (rate <= 0) return false;
        return Fraction(requestDigest) < rate;
    }

    /// <summary>The request's position in [0, 1): the first 16 hex digits of its digest over 2^64.</summary>
    public static double Fraction(string requestDigest)
    {
        if (requestDigest is null || requestDigest.Length < 16 || !Hashing.Hex.IsHex(requestDigest.AsSpan(0, 16)))
            throw new RequiemException("InvalidDigest", ErrorKind.InvalidArgument, $"'{requestDigest}' is not a request digest.", requestDigest);
        // Sixteen hex digits read as one number are the first 8 bytes in big-endian order.
        var value = ulong.Parse(requestDigest.AsSpan(0, 16), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture);
        // The top 53 bits, so the fraction is exact in a double and strictly below 1.
        return (value >> 11) * (1.0 / (1UL << 53));
    }
}
