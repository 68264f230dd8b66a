using System.Text;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Cas;

public sealed class CasStoreTests : IDisposable
{
    private static readonly HashPrimitive Blake3 = HashPrimitive.Select(allowFallback: false);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-cas-unit-" + Guid.NewGuid().ToString("n"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private CasStore NewStore() => CasStore.Open(Path.Combine(_dir, Guid.NewGuid().ToString("n")[..8]), Blake3);

    private static string Old(CasStore store, string hash, int days = 30)
    {
        var path = store.Locate(hash)!.Value.Path;
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddDays(-days));
        return path;
    }

    [Theory]
    [InlineData(CasEncoding.Identity)]
    [InlineData(CasEncoding.Zstd)]
    public void RoundTripsAndNamesByCasDigest(CasEncoding encoding)
    {
        var store = NewStore();
        var data = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("requiem ", 5000)));
        var put = store.PutBytes(data, encoding);
        Assert.Equal(Blake3.HashBytes(data, HashDomain.Cas), put.Hash);
        Assert.False(put.Existed);
        Assert.Equal(encoding, put.Encoding);
        Assert.Equal(data, store.ReadAllBytes(put.Hash));
        Assert.True(store.PutBytes(data, encoding).Existed);
        var info = store.GetInfo(put.Hash, verify: false);
        Assert.Equal(data.Length, info.Size); // zstd: from the frame header
        if (encoding == CasEncoding.Zstd) Assert.True(put.StoredSize < data.Length / 10);
    }

    /// <summary>Makes a store look settled (its folder and config last changed a minute ago), as one opened earlier in the day.</summary>
    private static void Settle(string root)
    {
        File.SetLastWriteTimeUtc(Path.Combine(root, CasStore.ConfigFileName), DateTime.UtcNow.AddMinutes(-1));
        Directory.SetLastWriteTimeUtc(root, DateTime.UtcNow.AddMinutes(-1));
    }

    [Fact]
    public void ReopeningAStoreSeesItsConfigChangedSinceTheLastOpen()
    {
        var root = Path.Combine(_dir, "reopen-config");
        CasStore.Open(root, Blake3);
        Settle(root);
        CasStore.Open(root, Blake3); // checked, and remembered as checked
        var config = Path.Combine(root, CasStore.ConfigFileName);
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"blake3\"", "\"sha256\"", StringComparison.Ordinal));
        Assert.Equal("CasAlgorithmMismatch", Assert.Throws<RequiemException>(() => CasStore.Open(root, Blake3)).ErrorId);
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"sha256\"", "\"blake3\"", StringComparison.Ordinal).Replace(EngineInfo.CasFormatVersion, "v0", StringComparison.Ordinal));
        Assert.Equal("UnsupportedCasVersion", Assert.Throws<RequiemException>(() => CasStore.Open(root, Blake3)).ErrorId);
    }

    [Fact]
    public void ReopeningAStoreRemakesAFolderRemovedSinceTheLastOpen()
    {
        var root = Path.Combine(_dir, "reopen-folders");
        CasStore.Open(root, Blake3);
        Settle(root);
        CasStore.Open(root, Blake3);
        Directory.Delete(Path.Combine(root, "tmp"));
        Directory.Delete(Path.Combine(root, "objects"));
        var store = CasStore.Open(root, Blake3);
        Assert.True(Directory.Exists(Path.Combine(root, "tmp")));
        var put = store.PutBytes(new byte[] { 7, 7, 7 });
        Assert.Equal(new byte[] { 7, 7, 7 }, store.ReadAllBytes(put.Hash));
    }

    [Fact]
    public void ReopeningARemovedStoreIsRefusedOrRecreatedAsAtFirstOpen()
    {
        var root = Path.Combine(_dir, "reopen-removed");
        CasStore.Open(root, Blake3);
        Settle(root);
        CasStore.Open(root, Blake3);
        Directory.Delete(root, recursive: true);
        Assert.Equal("CasNotFound", Assert.Throws<RequiemException>(() => CasStore.Open(root, Blake3, create: false)).ErrorId);
        Assert.True(File.Exists(Path.Combine(CasStore.Open(root, Blake3).Root, CasStore.ConfigFileName)));
    }

    [Fact]
    public void ProcessesOpeningANewStoreAtOnceAllGetTheStore()
    {
        // A store being created by one opener while another lists its folder (config just renamed into place, its
        // folders made) is a store, not a non-empty folder to refuse: CI once saw NotACasStore from that race.
        for (var round = 0; round < 200; round++)
        {
            var root = Path.Combine(_dir, "race-" + round);
            using var start = new Barrier(4);
            var errors = new System.Collections.Concurrent.ConcurrentBag<Exception>();
            var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
            {
                start.SignalAndWait();
                try { CasStore.Open(root, Blake3).PutBytes(new byte[] { 1, 2, 3 }); }
                catch (Exception ex) { errors.Add(ex); }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Empty(errors);
        }
    }

    [Fact]
    public void StreamedZstdRecordsContentSizeAndDecodes()
    {
        var store = NewStore();
        var file = Path.Combine(_dir, "big.bin");
        Directory.CreateDirectory(_dir);
        var data = new byte[CasStore.SmallObjectLimit + 12345];
        for (var i = 0; i < data.Length; i++) data[i] = (byte)(i % 7);
        File.WriteAllBytes(file, data);
        var put = store.PutFile(file, CasEncoding.Zstd);
        Assert.Equal(data.Length, CasStore.ReadZstdContentSize(store.ObjectPath(put.Hash, CasEncoding.Zstd)));
        Assert.Equal(data, store.ReadAllBytes(put.Hash));
    }

    [Fact]
    public void ResolvesPrefixesAndRefusesBadOnes()
    {
        var store = NewStore();
        var a = store.PutBytes("a"u8).Hash;
        Assert.Equal(a, store.ResolveHash(a[..6]));
        Assert.Equal(a, store.ResolveHash(a.ToUpperInvariant()));
        Assert.Equal("InvalidDigest", Assert.Throws<RequiemException>(() => store.ResolveHash("abc")).ErrorId);
        Assert.Equal("InvalidDigest", Assert.Throws<RequiemException>(() => store.ResolveHash("../../x")).ErrorId);
        Assert.Equal("InvalidDigest", Assert.Throws<RequiemException>(() => store.ResolveHash(new string('a', 65))).ErrorId);
        Assert.Equal("CasObjectNotFound", Assert.Throws<RequiemException>(() => store.ResolveHash(a[0] == '0' ? "1111" : "0000")).ErrorId);
        Assert.Equal("InvalidDigest", Assert.Throws<RequiemException>(() => store.ObjectPath("../" + a[3..], CasEncoding.Identity)).ErrorId);

        // Two objects sharing a four-character prefix.
        var seen = new Dictionary<string, string>();
        string? prefix = null;
        for (var i = 0; prefix is null; i++)
        {
            var text = "collide " + i;
            var h = Blake3.HashBytes(Encoding.UTF8.GetBytes(text), HashDomain.Cas);
            if (seen.TryGetValue(h[..4], out var other)) { store.PutBytes(Encoding.UTF8.GetBytes(other)); store.PutBytes(Encoding.UTF8.GetBytes(text)); prefix = h[..4]; }
            else seen[h[..4]] = text;
        }
        Assert.Equal("AmbiguousHashPrefix", Assert.Throws<RequiemException>(() => store.ResolveHash(prefix)).ErrorId);
    }

    [Fact]
    public void BatchKeepsOrderReportsErrorsPerItemAndPublishesOnlyOnCommit()
    {
        var store = NewStore();
        Directory.CreateDirectory(_dir);
        var files = Enumerable.Range(0, 50).Select(i =>
        {
            var p = Path.Combine(_dir, $"b{i}.txt");
            File.WriteAllText(p, "batch item " + (i % 40)); // ten duplicates
            return p;
        }).ToList();
        files.Insert(10, Path.Combine(_dir, "missing.txt"));
        using var batch = store.BeginBatch(4);
        foreach (var f in files) batch.EnqueueFile(f, CasEncoding.Identity, 3, f);
        Thread.Sleep(200);
        Assert.Empty(store.EnumerateHashes()); // staged, not visible
        var items = batch.CommitItems();
        Assert.Equal(files, items.Select(i => (string)i.State!));
        Assert.Equal("FileNotFound", items[10].Error!.ErrorId);
        Assert.Equal(40, items.Where(i => i.Result is { Existed: false }).Count());
        Assert.Equal(10, items.Where(i => i.Result is { Existed: true }).Count());
        Assert.Equal(40, store.EnumerateHashes().Count());
        Assert.Empty(store.EnumerateTempFiles());
    }

    [Fact]
    public void DisposingAnUncommittedBatchLeavesNothing()
    {
        var store = NewStore();
        using (var batch = store.BeginBatch(2))
        {
            for (var i = 0; i < 20; i++) batch.EnqueueBytes(Encoding.UTF8.GetBytes("never committed " + i));
        }
        Assert.Empty(store.EnumerateHashes());
        Assert.Empty(store.EnumerateTempFiles());
    }

    [Fact]
    public void ConcurrentPutsOfTheSameObjectWriteItExactlyOnce()
    {
        var store = NewStore();
        var data = Encoding.UTF8.GetBytes(new string('x', 100000));
        var results = new CasPutResult[16];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
            results[i] = CasStore.Open(store.Root, Blake3).PutBytes(data));
        Assert.Single(results, r => !r.Existed);
        Assert.Single(store.EnumerateHashes());
        Assert.Equal(data, store.ReadAllBytes(results[0].Hash));
    }

    [Fact]
    public void CorruptionIsAnErrorNeverData()
    {
        var store = NewStore();
        var put = store.PutBytes("precious"u8);
        var path = store.ObjectPath(put.Hash, CasEncoding.Identity);
        File.WriteAllText(path, "precioux");
        var ex = Assert.Throws<RequiemException>(() => store.ReadAllBytes(put.Hash));
        Assert.Equal("CasObjectCorrupt", ex.ErrorId);
        var report = store.Verify(new CasVerifyOptions { All = true, RereadDelay = TimeSpan.Zero });
        Assert.False(report.Valid);
        Assert.Equal(put.Hash, Assert.Single(report.Corrupt).Hash);
    }

    [Fact]
    public void SamplesRotateThroughEveryObject()
    {
        var store = NewStore();
        var all = Enumerable.Range(0, 23).Select(i => store.PutBytes(Encoding.UTF8.GetBytes("s" + i)).Hash).ToHashSet();
        var seen = new HashSet<string>();
        for (var run = 0; run < 5; run++) // ceil(23 / 5) = 5 runs
        {
            var r = store.Verify(new CasVerifyOptions { Sample = 5 });
            Assert.Equal(5, r.Checked);
            seen.UnionWith(r.SampledHashes);
        }
        Assert.Equal(all, seen);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void VerificationReadsAManifestARefNamesOnce(bool all)
    {
        var store = NewStore();
        var a = store.PutBytes("a"u8).Hash;
        var b = store.PutBytes(Encoding.UTF8.GetBytes(new string('b', 5000)), CasEncoding.Zstd).Hash;
        var gone = store.PutBytes("gone"u8).Hash;
        store.SetRef("r/one", store.PutManifest(new CasManifest { Kind = "one", References = new[] { a, b } }).Hash);
        var three = store.PutManifest(new CasManifest { Kind = "three", References = new[] { gone } }).Hash;
        store.SetRef("r/three", three);
        var bad = store.PutBytes("{\"requiem_manifest\":\"2\"}"u8).Hash;
        store.SetRef("r/bad", bad);
        store.SetRef("r/data", a);
        File.Delete(store.Locate(gone)!.Value.Path);

        var before = store.Activity.ObjectsVerified;
        var report = store.Verify(all ? new CasVerifyOptions { All = true } : new CasVerifyOptions { Sample = 100 });
        Assert.Equal(5, report.Checked);
        // Every object was read (and hashed) once: the manifests the refs name were scanned from that same read.
        Assert.Equal(report.Checked, store.Activity.ObjectsVerified - before);
        var missing = Assert.Single(report.Missing);
        Assert.Equal((gone, "manifest:" + three), (missing.Hash, missing.ReferencedBy));
        var invalid = Assert.Single(report.InvalidManifests);
        Assert.Equal((bad, "ref:r/bad"), (invalid.Hash, invalid.ReferencedBy));
        Assert.Empty(report.Corrupt);
    }

    [Fact]
    public void GcFollowsManifestsRecursivelyAndHonoursTheGracePeriod()
    {
        var store = NewStore();
        var leaf = store.PutBytes("leaf"u8).Hash;
        var inner = store.PutManifest(new CasManifest { Kind = "inner", References = new[] { leaf } }).Hash;
        var outer = store.PutManifest(new CasManifest { Kind = "outer", References = new[] { inner }, Manifests = new[] { inner } }).Hash;
        var garbage = store.PutBytes("garbage"u8).Hash;
        var young = store.PutBytes("young"u8).Hash;
        // A manifest written now (no ref yet) freshened what it names, so an old blob it references is young again.
        var pending = store.PutBytes("pending blob"u8).Hash;
        Old(store, pending);
        store.PutManifest(new CasManifest { Kind = "in-flight", References = new[] { pending } });
        store.SetRef("results/outer", outer);
        foreach (var h in new[] { leaf, inner, outer, garbage }) Old(store, h);

        var dry = store.CollectGarbage(new CasGcOptions { DryRun = true });
        Assert.Equal(garbage, Assert.Single(dry.Candidates).Hash);
        Assert.True(store.Contains(garbage));

        var report = store.CollectGarbage(new CasGcOptions());
        Assert.Equal(1, report.RemovedCount);
        Assert.False(store.Contains(garbage));
        foreach (var h in new[] { leaf, inner, outer, young, pending }) Assert.True(store.Contains(h), h);

        // Declining in the callback keeps the object.
        var other = store.PutBytes("declined"u8).Hash;
        Old(store, other);
        var declined = store.CollectGarbage(new CasGcOptions { ShouldRemove = _ => false });
        Assert.Equal(0, declined.RemovedCount);
        Assert.True(store.Contains(other));
    }

    [Theory]
    [InlineData("{\"kind\":5,\"requiem_manifest\":\"1\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"kind\":\"\\ud800\",\"references\":[],\"requiem_manifest\":\"1\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"references\":[\"nope\"],\"requiem_manifest\":\"1\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"references\":[[\"x\"]],\"requiem_manifest\":\"1\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"requiem_manifest\":\"2\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"requiem_manifest\":\"1\",\"requiem_manifest\":\"1\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"requiem_manifest\":\"1\"} trailing", CasManifestStatus.Invalid)]
    [InlineData("{\"manifests\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"],\"references\":[],\"requiem_manifest\":\"1\"}", CasManifestStatus.Invalid)]
    [InlineData("{\"kind\":5}", CasManifestStatus.NotManifest)]
    [InlineData("{\"kind\":\"x\",\"references\":[", CasManifestStatus.NotManifest)]
    [InlineData("[1,2]", CasManifestStatus.NotManifest)]
    [InlineData("plain text", CasManifestStatus.NotManifest)]
    [InlineData("", CasManifestStatus.NotManifest)]
    [InlineData("{\"kind\":\"k\",\"references\":[],\"requiem_manifest\":\"1\"}", CasManifestStatus.Manifest)]
    public void ManifestParsingNeverThrowsAndSaysWhatItFound(string text, CasManifestStatus expected)
    {
        var manifest = CasManifest.Parse(Encoding.UTF8.GetBytes(text), out var status, out var problem);
        Assert.Equal(expected, status);
        Assert.Equal(expected == CasManifestStatus.Manifest, manifest is not null);
        Assert.Equal(expected == CasManifestStatus.Invalid, problem is not null && status == CasManifestStatus.Invalid);
    }

    [Fact]
    public void ManifestScanStreamsAManifestOfAnySizeInAnyChunking()
    {
        var refs = Enumerable.Range(0, 3000).Select(i => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i))).ToLowerInvariant()).ToArray();
        using var body = System.Text.Json.JsonDocument.Parse("{\"files\":[" + string.Join(",", refs.Select(r => $"{{\"path\":\"{new string('p', 6000)}\",\"digest\":\"{r}\"}}")) + "]}");
        var bytes = new CasManifest { Kind = "exec_result", References = refs, Manifests = refs[..2], Body = body.RootElement.Clone() }.ToJsonBytes();
        Assert.True(bytes.Length > 16 << 20);
        foreach (var chunk in new[] { 1 << 20, 4093, 1 })
        {
            var scanner = new CasManifestScanner();
            var limit = chunk == 1 ? 200_000 : bytes.Length; // byte-by-byte over the start (where the body's long tokens are) is enough
            for (var at = 0; at < limit; at += chunk) scanner.Write(bytes.AsSpan(at, Math.Min(chunk, limit - at)));
            if (limit < bytes.Length) scanner.Write(bytes.AsSpan(limit));
            scanner.Complete();
            Assert.Equal(CasManifestStatus.Manifest, scanner.Status);
            Assert.Equal("exec_result", scanner.Kind);
            Assert.Equal(refs, scanner.References);
            Assert.Equal(refs[..2], scanner.Manifests);
        }
    }

    [Fact]
    public void ABatchHoldsABoundedNumberOfDescriptors()
    {
        if (!OperatingSystem.IsLinux()) return;
        var store = NewStore();
        using var batch = store.BeginBatch(parallelism: 1);
        var before = Directory.GetFileSystemEntries("/proc/self/fd").Length;
        for (var i = 0; i < 3000; i++) batch.EnqueueBytes(Encoding.ASCII.GetBytes("object " + i));
        var during = Directory.GetFileSystemEntries("/proc/self/fd").Length;
        Assert.True(during - before <= CasWriteBatch.MaxOpenStaged + 64, $"{during - before} descriptors held by a batch of 3000");
        var results = batch.Commit();
        Assert.Equal(3000, results.Count(r => !r.Existed));
        Assert.Empty(Directory.GetFiles(store.TempDirectory));
        Assert.True(store.Verify(new CasVerifyOptions { All = true }).Valid);
    }

    [Fact]
    public void APutRepairsAnObjectFoundCorrupt()
    {
        var store = NewStore();
        var data = Encoding.ASCII.GetBytes(new string('x', 5000));
        var put = store.PutBytes(data);
        var path = store.ObjectPath(put.Hash, CasEncoding.Identity);
        var bytes = File.ReadAllBytes(path);
        bytes[10] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.True(store.PutBytes(data).Existed); // not known yet: deduplicated without a re-read
        var error = Assert.Throws<RequiemException>(() => store.ReadAllBytes(put.Hash));
        Assert.Equal("CasObjectCorrupt", error.ErrorId);
        var repaired = store.PutBytes(data);
        Assert.False(repaired.Existed);
        Assert.Equal(data, store.ReadAllBytes(put.Hash));
        Assert.True(store.PutBytes(data).Existed);
        // The damaged bytes are kept as evidence outside objects/, and nothing else records the damage.
        var quarantined = Assert.Single(Directory.GetFiles(store.QuarantineDirectory));
        Assert.StartsWith(put.Hash + ".", Path.GetFileName(quarantined));
        Assert.Equal(bytes, File.ReadAllBytes(quarantined));
        Assert.False(Directory.Exists(Path.Combine(store.Root, "corrupt")));
    }

    [Fact]
    public void VerificationMovesADamagedObjectToQuarantineAndReportsItUntilItIsStoredAgain()
    {
        var store = NewStore();
        var put = store.PutBytes("named by a ref"u8);
        store.SetRef("results/r", put.Hash);
        var path = store.ObjectPath(put.Hash, CasEncoding.Identity);
        File.WriteAllText(path, "NAMED BY A REF");

        var first = store.Verify(new CasVerifyOptions { All = true, RereadDelay = TimeSpan.Zero });
        var corrupt = Assert.Single(first.Corrupt);
        Assert.Equal(put.Hash, corrupt.Hash);
        Assert.NotNull(corrupt.QuarantinePath);
        Assert.Equal("NAMED BY A REF", File.ReadAllText(corrupt.QuarantinePath!));
        Assert.False(File.Exists(path), "a damaged object must not stay under objects/");
        Assert.Empty(first.Missing); // reported once, as corrupt

        // Still reported (once, as corrupt, not also as a missing ref target) until the bytes are stored again.
        var second = store.Verify(new CasVerifyOptions { All = true, RereadDelay = TimeSpan.Zero });
        Assert.False(second.Valid);
        Assert.Equal(corrupt.QuarantinePath, Assert.Single(second.Corrupt).QuarantinePath);
        Assert.Contains("quarantine", second.Corrupt[0].Reason);
        Assert.Empty(second.Missing);
        var read = Assert.Throws<RequiemException>(() => store.ReadAllBytes(put.Hash));
        Assert.Equal("CasObjectCorrupt", read.ErrorId);
        Assert.Contains(corrupt.QuarantinePath!, read.Message);

        Assert.False(store.PutBytes("named by a ref"u8).Existed);
        Assert.True(store.Verify(new CasVerifyOptions { All = true }).Valid);
    }

    [Fact]
    public void QuarantinePutsBackAnObjectThatVerifiesAfterTheMove()
    {
        // A writer may replace a damaged object with good bytes between a reader's failed check and its rename.
        var store = NewStore();
        var put = store.PutBytes("good bytes"u8);
        var path = store.ObjectPath(put.Hash, CasEncoding.Identity);
        Assert.Null(store.Quarantine(put.Hash, path, CasEncoding.Identity));
        Assert.Equal("good bytes", File.ReadAllText(path));
        Assert.Empty(Directory.GetFiles(store.QuarantineDirectory));
    }

    [Fact]
    public void ZstdIsUsedOnlyWhenItShrinksTheObject()
    {
        var store = NewStore();
        var random = new byte[100_000];
        new Random(5).NextBytes(random);
        var put = store.PutBytes(random, CasEncoding.Zstd);
        Assert.Equal(CasEncoding.Identity, put.Encoding);
        Assert.Equal(random.Length, put.StoredSize);
        Assert.Equal(CasEncoding.Identity, store.Locate(put.Hash)!.Value.Encoding);
        var text = store.PutBytes(Encoding.ASCII.GetBytes(new string('z', 100_000)), CasEncoding.Zstd);
        Assert.Equal(CasEncoding.Zstd, text.Encoding);
        Assert.True(text.StoredSize < 1000);
    }

    [Fact]
    public void RefusesFoldersThatAreNotStores()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "other"));
        File.WriteAllText(Path.Combine(_dir, "other", "file.txt"), "x");
        Assert.Equal("NotACasStore", Assert.Throws<RequiemException>(() => CasStore.Open(Path.Combine(_dir, "other"), Blake3)).ErrorId);
        Assert.Equal("CasNotFound", Assert.Throws<RequiemException>(() => CasStore.Open(Path.Combine(_dir, "absent"), Blake3, create: false)).ErrorId);
        Assert.Equal(new[] { "file.txt" }, Directory.GetFileSystemEntries(Path.Combine(_dir, "other")).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void StreamedZstdIsOneStandardFrameWithEitherCodec(bool native)
    {
        NativeZstdCompressStream.Enabled = native;
        try
        {
            var store = NewStore();
            Directory.CreateDirectory(_dir);
            var file = Path.Combine(_dir, "codec-" + native + ".txt");
            var text = string.Concat(Enumerable.Range(0, 3_000_000).Select(i => (i % 97).ToString()));
            File.WriteAllText(file, text);
            var put = store.PutFile(file, CasEncoding.Zstd, 5);
            var path = store.ObjectPath(put.Hash, CasEncoding.Zstd);
            Assert.Equal(new FileInfo(file).Length, CasStore.ReadZstdContentSize(path));
            Assert.Equal(File.ReadAllBytes(file), store.ReadAllBytes(put.Hash));
            // Decodable by a plain zstd decoder as well.
            using var d = new ZstdSharp.Decompressor();
            Assert.Equal(File.ReadAllBytes(file), d.Unwrap(File.ReadAllBytes(path)).ToArray());
        }
        finally
        {
            NativeZstdCompressStream.Enabled = true;
        }
    }

    [Fact]
    public void NamedTempFilesWorkWhereUnnamedOnesAreUnavailable()
    {
        CasNative.AnonymousTempFilesEnabled = false;
        try
        {
            var store = NewStore();
            var single = store.PutBytes("named single"u8, CasEncoding.Zstd);
            using (var batch = store.BeginBatch(2))
            {
                for (var i = 0; i < 30; i++) batch.EnqueueBytes(Encoding.UTF8.GetBytes("named " + (i % 20)));
                var items = batch.CommitItems();
                Assert.Equal(20, items.Count(i => i.Result is { Existed: false }));
            }
            using (var abandoned = store.BeginBatch(2))
            {
                abandoned.EnqueueBytes("abandoned"u8.ToArray());
            }
            Assert.Equal(21, store.EnumerateHashes().Count());
            Assert.Equal("named single"u8.ToArray(), store.ReadAllBytes(single.Hash));
            Assert.Empty(store.EnumerateTempFiles());
        }
        finally
        {
            CasNative.AnonymousTempFilesEnabled = true;
        }
    }

    [Theory]
    [InlineData(new byte[] { 0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x05 }, 5)]          // single segment, 1-byte size
    [InlineData(new byte[] { 0x28, 0xB5, 0x2F, 0xFD, 0x60, 0x00, 0x01 }, 512)] // single segment, 2-byte size (+256)
    [InlineData(new byte[] { 0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x58 }, -1)]         // no content size
    [InlineData(new byte[] { 0x00, 0x01, 0x02, 0x03, 0x04 }, -1)]               // not zstd
    public void ParsesZstdFrameContentSize(byte[] header, long expected) =>
        Assert.Equal(expected, CasStore.ParseZstdContentSize(header));
}
