namespace Requiem.Engine.Hashing;

/// <summary>Lowercase hex, the only digest string format of the contract.</summary>
public static class Hex
{
    public const int DigestLength = 64;

    public static string ToLower(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return string.Empty;
        Span<char> chars = bytes.Length <= 128 ? stackalloc char[bytes.Length * 2] : new char[bytes.Length * 2];
        for (var i = 0; i < bytes.Length; i++)
        {
            var b = bytes[i];
            chars[2 * i] = Digit(b >> 4);
            chars[2 * i + 1] = Digit(b & 0xF);
        }
        return new string(chars);
    }

    private static char Digit(int v) => (char)(v < 10 ? '0' + v : 'a' + v - 10);

    /// <summary>True for exactly 64 hex characters (either case).</summary>
    public static bool IsDigest(string? s) => s is { Length: DigestLength } && IsHex(s);

    public static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!char.IsAsciiHexDigit(c)) return false;
        }
        return true;
    }

    /// <summary>
    /// Validates a full digest given by a user and returns its canonical lowercase form;
    /// throws <c>InvalidDigest</c> for anything else (wrong length, non-hex, path characters).
    /// </summary>
    public static string NormalizeDigest(string? s, string what = "digest")
    {
        if (s is null || !IsDigest(s.Trim()))
        {
            throw new RequiemException("InvalidDigest", ErrorKind.InvalidArgument,
                $"'{s}' is not a valid {what}: expected {DigestLength} hexadecimal characters.", s);
        }
        return s.Trim().ToLowerInvariant();
    }
}
