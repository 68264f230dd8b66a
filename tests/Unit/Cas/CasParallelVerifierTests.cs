using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Cas;

/// <summary>
/// The parallel store verifier on object files written here (identity and zstd, small and past the parallel threshold,
/// sound and broken in each way a store can be): every verdict equals the one-object check, arrives in input order,
/// and does not depend on the number of threads.
/// </summary>
public sealed class CasParallelVerifierTests : IDisposable
{
    private static readonly HashPrimitive Blake3 = HashPrimitive.Select(allowFallback: false);
    private readonly string _dir = Directory.CreateTempSubdirectory("requiem-verifier-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private CasVerifyItem Write(string name, byte[] content, CasEncoding encoding, Action<string>? spoil = null, long expectedSize = -1)
    {
        var path = Path.Combine(_dir, name);
        if (encoding == CasEncoding.Zstd)
        {
            using var compressor = new ZstdSharp.Compressor(3);
            File.WriteAllBytes(path, compressor.Wrap(content).ToArray());
        }
        else File.WriteAllBytes(path, content);
        spoil?.Invoke(path);
        return new CasVerifyItem(path, Blake3.HashBytes(content, HashDomain.Cas), encoding, expectedSize);
    }

    private static byte[] Content(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        // Half of it repetitive, so zstd has something to compress.
        for (var i = 0; i < length / 2; i++) data[i] = (byte)(i % 13);
        return data;
    }

    private List<CasVerifyItem> MixedStore()
    {
        var items = new List<CasVerifyItem>();
        for (var i = 0; i < 300; i++)
        {
            var encoding = i % 3 == 0 ? CasEncoding.Zstd : CasEncoding.Identity;
            var length = i % 50 == 7 ? (3 << 20) + i : 4096 + i;   // a few past the parallel threshold
            var content = Content(length, i);
            items.Add((i % 37) switch
            {
                5 => Write($"o{i}", content, encoding, p => { var b = File.ReadAllBytes(p); b[^1] ^= 1; File.WriteAllBytes(p, b); }),
                6 => Write($"o{i}", content, encoding, File.Delete),
                8 => Write($"o{i}", content, CasEncoding.Zstd, p => { var b = File.ReadAllBytes(p); File.WriteAllBytes(p, b[..(b.Length / 2)]); }),
                9 => Write($"o{i}", content, encoding, expectedSize: content.Length + 1),
                _ => Write($"o{i}", content, encoding, expectedSize: i % 2 == 0 ? content.Length : -1),
            });
        }
        return items;
    }

    [Fact]
    public void EveryVerdictMatchesTheOneObjectCheckInInputOrderForAnyThreadCount()
    {
        var items = MixedStore();
        var expected = items.Select(item => CasParallelVerifier.VerifyOne(Blake3, item)).ToList();
        Assert.Contains(expected, r => r.Status == CasVerifyStatus.Ok);
        Assert.Contains(expected, r => r.Status == CasVerifyStatus.Vanished);
        Assert.Contains(expected, r => r.Status == CasVerifyStatus.Corrupt && r.Reason!.Contains("content hashes to"));
        Assert.Contains(expected, r => r.Status == CasVerifyStatus.Corrupt && r.Reason!.Contains("zstd frame does not decode"));
        Assert.Contains(expected, r => r.Status == CasVerifyStatus.Corrupt && r.Reason!.Contains("were expected"));
        Assert.Contains(expected, r => r.Status == CasVerifyStatus.Ok && r.Size > HashPrimitive.ParallelThreshold);

        foreach (var threads in new[] { 1, 2, Environment.ProcessorCount, 5 })
        {
            var results = new CasParallelVerifier(Blake3.WithMaxThreads(threads), threads).Verify(items).ToList();
            Assert.Equal(Enumerable.Range(0, items.Count), results.Select(r => r.Index));
            for (var i = 0; i < items.Count; i++)
                Assert.True(expected[i] == results[i].Result, $"{threads} threads, item {i}: {results[i].Result} != {expected[i]}");
        }
    }

    [Fact]
    public void SoundObjectsAreOkWithTheirUncompressedSize()
    {
        var small = Content(4096, 1);
        var large = Content((2 << 20) + 3, 2);
        var items = new[]
        {
            Write("a", small, CasEncoding.Identity), Write("b", small, CasEncoding.Zstd, expectedSize: small.Length),
            Write("c", large, CasEncoding.Identity, expectedSize: large.Length), Write("d", large, CasEncoding.Zstd),
        };
        var results = new CasParallelVerifier(Blake3, 2).Verify(items).Select(r => r.Result).ToList();
        Assert.All(results, r => Assert.Equal(CasVerifyStatus.Ok, r.Status));
        Assert.Equal(new long[] { small.Length, small.Length, large.Length, large.Length }, results.Select(r => r.Size));
    }

    [Fact]
    public void MoreObjectsThanTheWindowAllArriveInOrder()
    {
        var verifier = new CasParallelVerifier(Blake3, 3);
        var content = Content(100, 3);
        var one = Write("same", content, CasEncoding.Identity);
        var items = Enumerable.Repeat(one, verifier.Window * 3 + 7).ToList();
        var indexes = verifier.Verify(items).Select(r => { Assert.Equal(CasVerifyStatus.Ok, r.Result.Status); return r.Index; }).ToList();
        Assert.Equal(Enumerable.Range(0, items.Count), indexes);
    }

    [Fact]
    public void CancellationStopsTheRunWithOperationCanceled()
    {
        var items = Enumerable.Repeat(Write("x", Content(4096, 4), CasEncoding.Identity), 50_000).ToList();
        using var cancel = new CancellationTokenSource();
        var seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var _ in new CasParallelVerifier(Blake3, 2).Verify(items, cancel.Token))
                if (++seen == 100) cancel.Cancel();
        });
        Assert.InRange(seen, 100, items.Count - 1);
    }

    [Fact]
    public void StoppingEarlyDoesNotVerifyEverything()
    {
        var items = Enumerable.Repeat(Write("y", Content(4096, 5), CasEncoding.Identity), 10).ToList();
        var first = new CasParallelVerifier(Blake3, 2).Verify(items).Take(3).ToList();
        Assert.Equal(new[] { 0, 1, 2 }, first.Select(r => r.Index));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void NeverMoreThreadsHashAtOnceThanTheCap(int cap)
    {
        // Several objects past the parallel threshold among small ones: the workers and any subtree helpers together.
        var items = MixedStore();
        using (var probe = HashConcurrencyProbe.Install())
        {
            var results = new CasParallelVerifier(Blake3, cap).Verify(items).ToList();
            Assert.Equal(items.Count, results.Count);
            Assert.InRange(probe.Peak, 1, cap);
            // With more objects than threads every worker hashes its object alone: no subtree helpers on top.
            Assert.Equal(0, probe.HelpersStarted);
        }
    }

    [Fact]
    public void ASingleLargeObjectGetsEveryThreadOfTheCap()
    {
        var large = Write("large", Content((8 << 20) + 5, 9), CasEncoding.Identity);
        foreach (var cap in new[] { 1, 3 })
        {
            using var probe = HashConcurrencyProbe.Install();
            var result = Assert.Single(new CasParallelVerifier(Blake3, cap).Verify(new[] { large }).ToList()).Result;
            Assert.Equal(CasVerifyStatus.Ok, result.Status);
            Assert.Equal(cap - 1, probe.HelpersStarted);
            Assert.InRange(probe.Peak, 1, cap);
        }
    }

    [Fact]
    public void DamagedObjectsAreRereadByTheirWorkersAndReportedInInputOrder()
    {
        var items = MixedStore();
        var expected = items.Select(item => CasParallelVerifier.VerifyOne(Blake3, item)).ToList();
        foreach (var threads in new[] { 1, 3 })
        {
            var results = new CasParallelVerifier(Blake3, threads, TimeSpan.FromMilliseconds(1)).Verify(items).ToList();
            Assert.Equal(Enumerable.Range(0, items.Count), results.Select(r => r.Index));
            for (var i = 0; i < items.Count; i++)
            {
                var r = results[i].Result;
                Assert.Equal(expected[i].Status == CasVerifyStatus.Corrupt, r.Reread);
                Assert.True(expected[i] == (r with { Reread = false }), $"{threads} threads, item {i}: {r} != {expected[i]}");
            }
        }
    }

    [Theory]
    [InlineData(CasEncoding.Identity, 100)]
    [InlineData(CasEncoding.Zstd, 100)]
    [InlineData(CasEncoding.Identity, (2 << 20) + 1)]
    public void ManifestsAreScannedFromTheBytesThatAreHashed(CasEncoding encoding, int padding)
    {
        var refs = Enumerable.Range(0, 3).Select(i => Blake3.HashBytes(new[] { (byte)i }, HashDomain.Cas)).ToArray();
        var manifest = new CasManifest { Kind = new string('k', padding), References = refs, Manifests = refs[..1] }.ToJsonBytes();
        var data = Content((2 << 20) + 7, 12);
        var items = new[]
        {
            Write("m", manifest, encoding) with { ScanManifest = true },
            Write("d", data, encoding) with { ScanManifest = true },
            Write("n", manifest, encoding),
        };
        var results = new CasParallelVerifier(Blake3, 2).Verify(items).Select(r => r.Result).ToList();
        Assert.All(results, r => Assert.Equal(CasVerifyStatus.Ok, r.Status));
        Assert.Equal(CasManifestStatus.Manifest, results[0].Manifest!.Status);
        Assert.Equal(refs, results[0].Manifest!.References);
        Assert.Equal(refs[..1], results[0].Manifest!.Manifests);
        Assert.Equal(CasManifestStatus.NotManifest, results[1].Manifest!.Status);
        Assert.Null(results[2].Manifest);
    }

    [Fact]
    public void ThreadCountBelowOneIsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CasParallelVerifier(Blake3, 0));
}
