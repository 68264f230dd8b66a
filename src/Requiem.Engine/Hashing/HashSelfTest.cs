namespace Requiem.Engine.Hashing;

/// <summary>
/// Known-answer test of the BLAKE3 implementation, run once per process before the first digest.
/// Vectors: "" and "hello" (as the Requiem CLI hashes them), and official BLAKE3 test vectors (input byte i = i mod 251)
/// that cross the 1024-byte chunk boundary and, up to 100 KiB, run the widest vector lanes and parent nodes.
/// </summary>
public static class HashSelfTest
{
    /// <summary>Set to 1 to make the self-test fail, to exercise fail-closed behaviour (tests, drills).</summary>
    public const string SimulateFailureVariable = "REQUIEM_SIMULATE_BLAKE3_FAILURE";

    internal static readonly (int Length, string Expected)[] OfficialVectors =
    {
        (0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
        (1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
        (1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"),
        (1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"),
        (1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"),
        // Several chunks side by side in vector lanes, and parent compressions.
        (2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"),
        (8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"),
        (102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"),
    };

    private static readonly Lazy<SelfTestResult> s_result = new(Run, LazyThreadSafetyMode.ExecutionAndPublication);

    public static SelfTestResult Result => s_result.Value;

    private static SelfTestResult Run()
    {
        if (Environment.GetEnvironmentVariable(SimulateFailureVariable) == "1")
        {
            return new SelfTestResult(false, $"simulated BLAKE3 failure ({SimulateFailureVariable}=1)");
        }
        try
        {
            if (Blake3Hex(""u8) != "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
                return new SelfTestResult(false, "BLAKE3(\"\") does not match the known digest");
            if (Blake3Hex("hello"u8) != "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f")
                return new SelfTestResult(false, "BLAKE3(\"hello\") does not match the known digest");
            foreach (var (length, expected) in OfficialVectors)
            {
                if (Blake3Hex(VectorInput(length)) != expected)
                    return new SelfTestResult(false, $"BLAKE3 official test vector of length {length} does not match");
            }
            WarmUp();
            return new SelfTestResult(true, $"BLAKE3 known-answer tests passed ({OfficialVectors.Length + 2} vectors)");
        }
        catch (Exception ex) when (ex is TypeLoadException or FileNotFoundException or FileLoadException or BadImageFormatException or DllNotFoundException or PlatformNotSupportedException)
        {
            return new SelfTestResult(false, "BLAKE3 implementation could not be loaded: " + ex.Message);
        }
    }

    /// <summary>
    /// Calls the hashing paths enough times for the runtime to queue them for optimised (tier-1) code early: a
    /// short-lived pwsh pipeline over many small files otherwise runs most of its files through unoptimised code.
    /// </summary>
    private static void WarmUp()
    {
        var input = new byte[16 * 1024];
        for (var i = 0; i < 40; i++)
        {
            using var h = new CompactBlake3Hasher(HashDomain.None);
            h.Update(input.AsSpan(0, 1024 << (i % 5)));
            h.FinalizeHex();
        }
    }

    internal static byte[] VectorInput(int length)
    {
        var input = new byte[length];
        for (var i = 0; i < length; i++) input[i] = (byte)(i % 251);
        return input;
    }

    private static string Blake3Hex(ReadOnlySpan<byte> data)
    {
        using var h = new CompactBlake3Hasher(HashDomain.None);
        h.Update(data);
        return h.FinalizeHex();
    }
}

public sealed record SelfTestResult(bool Passed, string Detail);
