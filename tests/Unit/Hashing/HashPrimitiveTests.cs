using System.Diagnostics;
using System.Text;
using Requiem.Engine;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Hashing;

public class HashPrimitiveTests
{
    private static readonly HashPrimitive Blake3 = HashPrimitive.Select(allowFallback: false);

    [Fact]
    public void SelfTestPasses()
    {
        Assert.True(HashSelfTest.Result.Passed, HashSelfTest.Result.Detail);
        Assert.False(Blake3.IsFallback);
        Assert.Equal("BLAKE3", Blake3.Algorithm);
    }

    [Theory]
    [InlineData("", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")]
    [InlineData("hello", "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f")]
    public void SeedDigests(string input, string expected) =>
        Assert.Equal(expected, Blake3.HashBytes(Encoding.UTF8.GetBytes(input), HashDomain.None));

    [Fact]
    public void OfficialVectorsMatchInMemoryAndFromFile()
    {
        foreach (var (length, expected) in HashSelfTest.OfficialVectors)
        {
            var input = HashSelfTest.VectorInput(length);
            Assert.Equal(expected, Blake3.HashBytes(input, HashDomain.None));
            var file = Path.GetTempFileName();
            try
            {
                File.WriteAllBytes(file, input);
                Assert.Equal(expected, Blake3.HashFile(file, HashDomain.None).Hash);
            }
            finally { File.Delete(file); }
        }
    }

    [Theory]
    [InlineData(HashDomain.Cas, "cas:")]
    [InlineData(HashDomain.Request, "req:")]
    [InlineData(HashDomain.Result, "res:")]
    public void DomainIsPrefixThenBytes(HashDomain domain, string prefix)
    {
        var data = Encoding.UTF8.GetBytes("{\"a\":1}");
        var manual = Blake3.HashBytes(Encoding.ASCII.GetBytes(prefix).Concat(data).ToArray(), HashDomain.None);
        Assert.Equal(manual, Blake3.HashBytes(data, domain));
        Assert.NotEqual(Blake3.HashBytes(data, HashDomain.None), Blake3.HashBytes(data, domain));
    }

    [Theory]
    [InlineData(1L << 20)]            // exactly the parallel threshold
    [InlineData((1L << 20) - 1)]
    [InlineData((8L << 20) + 4097)]   // crosses read-buffer boundaries
    public void LargeFilesHashTheSameAsInMemory(long length)
    {
        var data = new byte[length];
        new Random(7).NextBytes(data);
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, data);
            foreach (var domain in new[] { HashDomain.None, HashDomain.Cas })
            {
                using var h = Blake3.CreateHasher(domain);
                h.Update(data);
                var serial = h.FinalizeHex();
                var info = Blake3.HashFile(file, domain);
                Assert.Equal(serial, info.Hash);
                Assert.Equal(length, info.Length);
            }
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void AgreesWithB3sumWhenInstalled()
    {
        var b3sum = new[] { "/usr/bin/b3sum", "/usr/local/bin/b3sum" }.FirstOrDefault(File.Exists);
        if (b3sum is null) return; // .ci/run installs b3sum; the Pester suite also cross-checks
        var file = Path.GetTempFileName();
        try
        {
            var data = new byte[3 * 1024 * 1024 + 17];
            new Random(3).NextBytes(data);
            File.WriteAllBytes(file, data);
            var psi = new ProcessStartInfo(b3sum) { RedirectStandardOutput = true };
            psi.ArgumentList.Add("--no-names");
            psi.ArgumentList.Add(file);
            using var p = Process.Start(psi)!;
            var expected = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            Assert.Equal(expected, Blake3.HashFile(file, HashDomain.None).Hash);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void MissingFileIsTypedError()
    {
        var ex = Assert.Throws<RequiemException>(() => Blake3.HashFile("/definitely/not/here", HashDomain.None));
        Assert.Equal("FileNotFound", ex.ErrorId);
        Assert.Equal(ErrorKind.ObjectNotFound, ex.Kind);
    }

    [Fact]
    public void DirectoryIsTypedError()
    {
        var ex = Assert.Throws<RequiemException>(() => Blake3.HashFile(Path.GetTempPath(), HashDomain.None));
        Assert.Equal("PathIsDirectory", ex.ErrorId);
    }

    [Fact]
    public void CancellationStopsLargeFileHashing()
    {
        var file = Path.GetTempFileName();
        try
        {
            using (var fs = File.OpenWrite(file)) fs.SetLength(200L << 20);
            using var cts = new CancellationTokenSource();
            cts.Cancel();
            Assert.ThrowsAny<OperationCanceledException>(() => Blake3.HashFile(file, HashDomain.None, cts.Token));
        }
        finally { File.Delete(file); }
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("zz1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")]
    [InlineData("../1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")]
    public void NormalizeDigestRefusesBadDigests(string value)
    {
        var ex = Assert.Throws<RequiemException>(() => Hex.NormalizeDigest(value));
        Assert.Equal("InvalidDigest", ex.ErrorId);
    }

    [Fact]
    public void NormalizeDigestLowercases() =>
        Assert.Equal("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            Hex.NormalizeDigest("AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262"));
}

public class Blake3CompactTests
{
    [Fact]
    public void AgreesWithBlake3NetOnEveryLengthAroundBlockAndChunkBoundaries()
    {
        var rng = new Random(11);
        var data = new byte[40 * 1024];
        rng.NextBytes(data);
        var lengths = Enumerable.Range(0, 2100)
            .Concat(new[] { 3071, 3072, 3073, 4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 31744, 32768, 33792, 40960 });
        foreach (var length in lengths)
        {
            var compact = new Blake3Compact();
            compact.Update(data.AsSpan(0, length));
            var digest = new byte[32];
            compact.Finalize(digest);
            var expected = Blake3.Hasher.Hash(data.AsSpan(0, length)).ToString();
            Assert.True(expected == Hex.ToLower(digest), $"length {length}");
        }
    }

    [Fact]
    public void SplitUpdatesGiveTheSameDigest()
    {
        var data = new byte[9000];
        new Random(5).NextBytes(data);
        var whole = new Blake3Compact();
        whole.Update(data);
        Span<byte> a = stackalloc byte[32];
        whole.Finalize(a);
        foreach (var piece in new[] { 1, 7, 63, 64, 65, 1000, 1024, 1025 })
        {
            var split = new Blake3Compact();
            for (var o = 0; o < data.Length; o += piece) split.Update(data.AsSpan(o, Math.Min(piece, data.Length - o)));
            var b = new byte[32];
            split.Finalize(b);
            Assert.True(a.SequenceEqual(b.AsSpan()), $"piece {piece}");
        }
    }

    [Fact]
    public void DomainPrefixedSmallAndLargePathsAgree()
    {
        var hash = HashPrimitive.Select(false);
        var data = new byte[12345];
        new Random(9).NextBytes(data);
        using var big = new Blake3RequiemHasher(HashDomain.Cas);    // the Blake3 package, the reference
        big.Update(data);
        Assert.Equal(big.FinalizeHex(), hash.HashBytes(data, HashDomain.Cas)); // compact (known small length)
    }
}

public class SmallFileReaderTests
{
    [Fact]
    public void ReadsSmallFilesWholeAndDeclinesEverythingElse()
    {
        if (!OperatingSystem.IsLinux()) return; // the fast path exists on Linux only; elsewhere TryRead always declines
        var dir = Directory.CreateTempSubdirectory("requiem-sfr-").FullName;
        try
        {
            var small = Path.Combine(dir, "small.bin");
            var data = new byte[4096];
            new Random(4).NextBytes(data);
            File.WriteAllBytes(small, data);
            var buffer = new byte[65536];
            Assert.True(SmallFileReader.TryRead(small, buffer, out var n));
            Assert.Equal(4096, n);
            Assert.True(buffer.AsSpan(0, n).SequenceEqual(data));

            var empty = Path.Combine(dir, "empty.bin");
            File.WriteAllBytes(empty, Array.Empty<byte>());
            Assert.True(SmallFileReader.TryRead(empty, buffer, out n));
            Assert.Equal(0, n);

            var exact = Path.Combine(dir, "exact.bin");
            File.WriteAllBytes(exact, new byte[65536]);
            Assert.False(SmallFileReader.TryRead(exact, buffer, out _));      // fills the buffer: not "small"
            Assert.False(SmallFileReader.TryRead(dir, buffer, out _));        // a directory
            Assert.False(SmallFileReader.TryRead(Path.Combine(dir, "missing"), buffer, out _));

            // Through HashFile, both paths give the same digest as hashing the bytes.
            var hash = HashPrimitive.Select(false);
            Assert.Equal(hash.HashBytes(data, HashDomain.Cas), hash.HashFile(small, HashDomain.Cas).Hash);
            Assert.Equal(hash.HashBytes(new byte[65536], HashDomain.None), hash.HashFile(exact, HashDomain.None).Hash);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void AThreadLimitCapsTheThreadsHashingALargeFile()
    {
        // What Get-RequiemDigest -ThrottleLimit N does: the file's subtrees are hashed by at most N threads.
        var file = Path.GetTempFileName();
        try
        {
            var data = new byte[(16 << 20) + 3];
            new Random(15).NextBytes(data);
            File.WriteAllBytes(file, data);
            var hash = HashPrimitive.Select(false);
            var expected = hash.HashBytes(data, HashDomain.Cas);
            foreach (var cap in new[] { 1, 2, 3 })
            {
                using var probe = HashConcurrencyProbe.Install();
                Assert.Equal(expected, hash.WithMaxThreads(cap).HashFile(file, HashDomain.Cas).Hash);
                Assert.Equal(cap - 1, probe.HelpersStarted);
                Assert.InRange(probe.Peak, 1, cap);
            }
        }
        finally { File.Delete(file); }
    }
}
