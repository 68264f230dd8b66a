namespace Requiem.Engine.Hashing;

/// <summary>The result of hashing one input (a file, a string or bytes).</summary>
public sealed class DigestInfo
{
    public DigestInfo(string algorithm, string hash, string? path, long length, HashDomain domain, bool fallback)
    {
        Algorithm = algorithm;
        Hash = hash;
        Path = path;
        Length = length;
        Domain = domain;
        HashFallback = fallback;
    }

    /// <summary>"BLAKE3", or "SHA256" when an explicitly allowed fallback was used.</summary>
    public string Algorithm { get; }

    /// <summary>Lowercase hex digest.</summary>
    public string Hash { get; }

    /// <summary>The file hashed, or null for in-memory input.</summary>
    public string? Path { get; }

    /// <summary>Number of input bytes (without the domain prefix).</summary>
    public long Length { get; }

    public HashDomain Domain { get; }

    /// <summary>True when the digest is not BLAKE3 because BLAKE3 was unavailable and fallback was allowed.</summary>
    public bool HashFallback { get; }
}

/// <summary>The outcome of comparing an input with an expected digest.</summary>
public sealed class DigestVerification
{
    public DigestVerification(bool valid, string expected, DigestInfo actual)
    {
        Valid = valid;
        Expected = expected;
        Actual = actual.Hash;
        Algorithm = actual.Algorithm;
        Path = actual.Path;
        Length = actual.Length;
        Domain = actual.Domain;
        HashFallback = actual.HashFallback;
    }

    public bool Valid { get; }
    public string Expected { get; }
    public string Actual { get; }
    public string Algorithm { get; }
    public string? Path { get; }
    public long Length { get; }
    public HashDomain Domain { get; }
    public bool HashFallback { get; }
}
