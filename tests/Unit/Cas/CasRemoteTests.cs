using System.Text;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Cas;

/// <summary>The remote tier's rules, over a folder backend (the Azure backend is tested against Azurite in Pester).</summary>
public sealed class CasRemoteTests : IDisposable
{
    private static readonly HashPrimitive Blake3 = HashPrimitive.Select(allowFallback: false);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-remote-unit-" + Guid.NewGuid().ToString("n"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string RemoteRoot => Path.Combine(_dir, "remote");

    private CasStore NewAgent(ICasBackend? backend = null)
    {
        var store = CasStore.Open(Path.Combine(_dir, Guid.NewGuid().ToString("n")[..8]), Blake3);
        store.AttachRemote(backend ?? new FileSystemCasBackend(RemoteRoot));
        return store;
    }

    [Theory]
    [InlineData(CasEncoding.Identity)]
    [InlineData(CasEncoding.Zstd)]
    public void PutOnOneAgentIsReadOnAnotherAfterUpload(CasEncoding encoding)
    {
        var a = NewAgent();
        var data = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("shared ", 3000)));
        var put = a.PutBytes(data, encoding);
        Assert.Single(a.Remote!.PendingNames());
        var up = a.Remote.UploadPending();
        Assert.Equal(1, up.Uploaded);
        Assert.Equal(0, up.Pending);
        Assert.True(File.Exists(Path.Combine(RemoteRoot, CasLayout.ObjectName(put.Hash, encoding))));

        var b = NewAgent();
        Assert.Null(b.Locate(put.Hash));
        Assert.Equal(data, b.ReadAllBytes(put.Hash));
        Assert.NotNull(b.Locate(put.Hash));     // filled locally
        Assert.Empty(b.Remote!.PendingNames()); // and not queued to go back up
    }

    [Fact]
    public void ATamperedRemoteObjectIsNotUsed()
    {
        var a = NewAgent();
        var put = a.PutBytes(Encoding.UTF8.GetBytes("genuine"));
        a.Remote!.UploadPending();
        File.WriteAllText(Path.Combine(RemoteRoot, CasLayout.ObjectName(put.Hash, CasEncoding.Identity)), "forged");

        var b = NewAgent();
        var ex = Assert.Throws<RequiemException>(() => b.ReadAllBytes(put.Hash));
        Assert.Equal("CasRemoteObjectCorrupt", ex.ErrorId);
        Assert.Null(b.Locate(put.Hash));
        Assert.Contains(b.Remote!.DrainWarnings(), w => w.Contains("corrupt and was not used", StringComparison.Ordinal));
        Assert.Empty(Directory.EnumerateFiles(b.TempDirectory)); // the download was discarded

        var report = b.Remote.Verify(sample: 0);
        Assert.False(report.Valid);
        Assert.Equal(put.Hash, Assert.Single(report.Corrupt).Hash);
    }

    [Fact]
    public void AnUnreachableRemoteKeepsTheJournalUntilASyncSucceeds()
    {
        var down = new UnreachableBackend();
        var a = NewAgent(down);
        var put = a.PutBytes(Encoding.UTF8.GetBytes("offline work"));
        var r = a.Remote!.UploadPending();
        Assert.False(r.Reachable);
        Assert.Equal(1, r.Pending);
        Assert.Contains(a.Remote.DrainWarnings(), w => w.Contains("unreachable", StringComparison.Ordinal));
        Assert.Equal(CasFetchOutcome.Unreachable, a.Remote.FetchObject(new string('0', 64)));

        // The next run (a new handle on the same folder) with the remote back: Sync uploads what waited.
        var again = CasStore.Open(a.Root, Blake3);
        again.AttachRemote(new FileSystemCasBackend(RemoteRoot));
        var sync = again.Remote!.Sync();
        Assert.Equal(1, sync.Uploaded);
        Assert.Equal(0, sync.Pending);
        Assert.Equal(0, again.Remote.Sync().Uploaded); // an object is uploaded once
        Assert.True(File.Exists(Path.Combine(RemoteRoot, CasLayout.ObjectName(put.Hash, CasEncoding.Identity))));
    }

    [Fact]
    public void SyncUploadsObjectsRefsAndActionCacheEntriesTheRemoteLacks()
    {
        var plain = CasStore.Open(Path.Combine(_dir, "before-remote"), Blake3); // written before a remote existed
        var put = plain.PutBytes(Encoding.UTF8.GetBytes("old object"));
        plain.SetRef("builds/main", put.Hash);
        var key = new string('a', 64);
        var entry = plain.Layout.PathOf(CasLayout.ActionCacheName(key));
        Directory.CreateDirectory(Path.GetDirectoryName(entry)!);
        File.WriteAllText(entry, "{}");

        plain.AttachRemote(new FileSystemCasBackend(RemoteRoot));
        var sync = plain.Remote!.Sync();
        Assert.Equal(3, sync.Uploaded);
        Assert.True(File.Exists(Path.Combine(RemoteRoot, "refs", "builds", "main")));
        Assert.True(File.Exists(Path.Combine(RemoteRoot, "ac", "aa", key + ".json")));

        var b = NewAgent();
        Assert.True(b.TryFetchDocument(CasLayout.ActionCacheName(key)));
        Assert.Equal("{}", File.ReadAllText(b.Layout.PathOf(CasLayout.ActionCacheName(key))));
        Assert.False(b.TryFetchDocument(CasLayout.ActionCacheName(new string('b', 64))));
    }

    [Fact]
    public void GcPlanComesFromTheRootProvidersAndExecutesSeparately()
    {
        var store = CasStore.Open(Path.Combine(_dir, "gc"), Blake3);
        var kept = store.PutBytes(Encoding.UTF8.GetBytes("kept by a provider"));
        var lost = store.PutBytes(Encoding.UTF8.GetBytes("unreferenced"));
        foreach (var h in new[] { kept.Hash, lost.Hash }) File.SetLastWriteTimeUtc(store.Locate(h)!.Value.Path, DateTime.UtcNow.AddDays(-30));
        var options = new CasGcOptions { RootProviders = new ICasGcRootProvider[] { CasRefRootProvider.Instance, new FixedRoots(kept.Hash) } };
        var gc = new CasGarbageCollector(store);
        var plan = gc.Plan(options);
        Assert.Equal(lost.Hash, Assert.Single(plan.Candidates).Hash);
        Assert.NotNull(store.Locate(lost.Hash)); // planning removes nothing
        gc.Execute(plan, options);
        Assert.Null(store.Locate(lost.Hash));
        Assert.NotNull(store.Locate(kept.Hash));
    }

    [Theory]
    [InlineData("DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c2VjcmV0c2VjcmV0c2VjcmV0;BlobEndpoint=http://storage.example.com/a;", "RemoteInsecure")]
    [InlineData("not a connection string at all", "InvalidRemoteConnectionString")]
    public void TheAzureBackendRefusesInsecureOrInvalidSettingsWithoutShowingThem(string connection, string id)
    {
        var ex = Assert.Throws<RequiemException>(() => new AzureBlobCasBackend(connection, "requiem"));
        Assert.Equal(id, ex.ErrorId);
        Assert.DoesNotContain("c2VjcmV0", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheAzureBackendAcceptsHttpOnLoopback()
    {
        var backend = new AzureBlobCasBackend("UseDevelopmentStorage=true", "requiem");
        Assert.StartsWith("Azure Blob container 'requiem' at http://127.0.0.1:10000/devstoreaccount1", backend.Description, StringComparison.Ordinal);
        Assert.DoesNotContain("AccountKey", backend.Description, StringComparison.Ordinal);
    }

    private static byte[] Random(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Theory]
    [InlineData(CasEncoding.Identity, 1)]
    [InlineData(CasEncoding.Zstd, 1)]
    [InlineData(CasEncoding.Identity, 4093)]
    [InlineData(CasEncoding.Zstd, 4093)]
    public void ADownloadIsVerifiedWhileItIsWrittenWhateverTheChunkSizes(CasEncoding encoding, int chunk)
    {
        var a = NewAgent();
        // Several MiB, half random and half repetitive: many decoder rounds and more than one staging chunk.
        var data = Random(3 << 20, 7).Concat(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("0123456789", 200_000)))).ToArray();
        var put = a.PutBytes(data, encoding);
        a.Remote!.UploadPending();
        var b = NewAgent(new ChunkedBackend(new FileSystemCasBackend(RemoteRoot), chunk == 1 ? 1 << 16 : chunk));
        Assert.Equal(CasFetchOutcome.Fetched, b.Remote!.FetchObject(put.Hash));
        var info = b.GetInfo(put.Hash, verify: true);
        Assert.Equal(data.Length, info.Size);
        Assert.Equal(encoding, info.Encoding);
        Assert.Equal(data, b.ReadAllBytes(put.Hash));
        Assert.Empty(Directory.EnumerateFiles(b.TempDirectory));
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("trailing")]
    [InlineData("other")]
    public void ADamagedZstdBlobIsNotPublished(string damage)
    {
        var a = NewAgent();
        var data = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 40_000).Select(i => $"line {i}\n")));
        var put = a.PutBytes(data, CasEncoding.Zstd);
        var other = a.PutBytes(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("other ", 1000))), CasEncoding.Zstd);
        a.Remote!.UploadPending();
        var blob = Path.Combine(RemoteRoot, CasLayout.ObjectName(put.Hash, CasEncoding.Zstd));
        var bytes = File.ReadAllBytes(blob);
        File.WriteAllBytes(blob, damage switch
        {
            "truncated" => bytes[..(bytes.Length / 2)],
            "trailing" => bytes.Concat(Encoding.ASCII.GetBytes("garbage after the frame")).ToArray(),
            _ => File.ReadAllBytes(Path.Combine(RemoteRoot, CasLayout.ObjectName(other.Hash, CasEncoding.Zstd))),
        });

        var b = NewAgent();
        var ex = Assert.Throws<RequiemException>(() => b.ReadAllBytes(put.Hash));
        Assert.Equal("CasRemoteObjectCorrupt", ex.ErrorId);
        Assert.Null(b.Locate(put.Hash));
        Assert.Empty(Directory.EnumerateFiles(b.TempDirectory));
        Assert.Single(b.Remote!.DrainWarnings(), w => w.Contains("corrupt and was not used", StringComparison.Ordinal));
    }

    [Fact]
    public void PrefetchDownloadsMissingObjectsConcurrentlyAndEachIsVerified()
    {
        var a = NewAgent();
        var hashes = Enumerable.Range(0, 24).Select(i => a.PutBytes(Random(5000, 100 + i)).Hash).ToList();
        a.Remote!.UploadPending();
        // One of them is forged in the container: the prefetch skips it, and the read of it says so (once).
        File.WriteAllText(Path.Combine(RemoteRoot, CasLayout.ObjectName(hashes[5], CasEncoding.Identity)), "forged");

        var tracking = new OverlapBackend(new FileSystemCasBackend(RemoteRoot));
        var b = NewAgent(tracking);
        b.Remote!.DownloadParallelism = 8;
        var local = b.PutBytes(Encoding.UTF8.GetBytes("already here")).Hash;
        b.Prefetch(hashes.Append(local).Append(hashes[0]));
        Assert.True(tracking.MaxInFlight > 1, "the downloads overlapped");
        Assert.Equal(23, hashes.Count(h => b.Locate(h) is not null));
        Assert.Null(b.Locate(hashes[5]));
        Assert.Equal(25, tracking.Downloads); // each missing object once (the forged one also as .zst), the local one not at all
        var ex = Assert.Throws<RequiemException>(() => b.ReadAllBytes(hashes[5]));
        Assert.Equal("CasRemoteObjectCorrupt", ex.ErrorId);
        Assert.Equal(25, tracking.Downloads); // not downloaded again by this handle
        Assert.Single(b.Remote.DrainWarnings(), w => w.Contains("corrupt and was not used", StringComparison.Ordinal));
    }

    [Fact]
    public void RefsFallThroughAndARemovalIsATombstoneNobodyReadsBack()
    {
        var a = NewAgent();
        var hash = a.PutBytes(Encoding.UTF8.GetBytes("ref target")).Hash;
        a.SetRef("builds/main", hash);
        a.Remote!.UploadPending();
        var remoteRef = Path.Combine(RemoteRoot, "refs", "builds", "main");
        Assert.Equal(hash + "\n", File.ReadAllText(remoteRef));

        var b = NewAgent();
        Assert.Equal(hash, b.GetRef("builds/main"));
        Assert.True(File.Exists(b.RefPath("builds/main")));  // filled locally
        Assert.Empty(b.Remote!.PendingNames());              // and not queued to go back up

        Assert.True(a.RemoveRef("builds/main"));
        Assert.Contains("refs/builds/main", a.Remote.PendingNames());
        Assert.Null(a.GetRef("builds/main"));                // the pending removal wins over the remote copy
        Assert.False(File.Exists(a.RefPath("builds/main")));
        a.Remote.UploadPending();
        Assert.Empty(a.Remote.PendingNames());
        Assert.Equal(0, new FileInfo(remoteRef).Length);     // a tombstone

        Assert.Null(NewAgent().GetRef("builds/main"));
        var sync = b.Remote.Sync();                          // b still holds its older copy: it is not uploaded
        Assert.Equal(0, sync.Uploaded);
        Assert.Equal(0, new FileInfo(remoteRef).Length);
    }

    [Fact]
    public void AnObjectBlobLargerThanTheBoundStopsTheDownloadAtTheBound()
    {
        var endless = new EndlessBackend(new FileSystemCasBackend(RemoteRoot));
        var b = NewAgent(endless);
        b.Remote!.MaxObjectBytes = 1 << 20;
        var hash = new string('7', 64);
        Assert.Equal(CasFetchOutcome.TooLarge, b.Remote.FetchObject(hash));
        // No more than the bound (plus the one chunk that crossed it and was refused) reached the local disk.
        Assert.True(endless.Written <= (1 << 20), $"{endless.Written} bytes were accepted");
        Assert.Null(b.Locate(hash));
        Assert.Empty(Directory.EnumerateFiles(b.TempDirectory));
        Assert.Contains(b.Remote.DrainWarnings(), w => w.Contains("max_object_bytes", StringComparison.Ordinal));
        var ex = Assert.Throws<RequiemException>(() => b.ReadAllBytes(hash));
        Assert.Equal("CasRemoteObjectTooLarge", ex.ErrorId);
        Assert.Equal(hash, ex.Target);
    }

    [Fact]
    public void AFolderBackendRefusesAnOversizedBlobBeforeWritingIt()
    {
        var name = CasLayout.ActionCacheName(new string('c', 64));
        var path = Path.Combine(RemoteRoot, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, new byte[4096]);
        using var sink = new MemoryStream();
        var ex = Assert.Throws<CasBlobTooLargeException>(() => new FileSystemCasBackend(RemoteRoot).Download(name, sink, 1024, default));
        Assert.Contains("4096", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, sink.Length);
    }

    [Fact]
    public void AnInvalidOrOversizedRemoteActionCacheEntryIsNotKeptLocally()
    {
        var bad = new string('a', 64);
        var huge = new string('b', 64);
        foreach (var (key, bytes) in new[] { (bad, Encoding.UTF8.GetBytes("{ not an entry")), (huge, new byte[CasRemote.MaxDocumentBytes + 1]) })
        {
            var path = Path.Combine(RemoteRoot, CasLayout.ActionCacheName(key));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }
        var b = NewAgent();
        var cache = new Requiem.Engine.ActionCache.ActionCacheStore(b);
        Assert.Null(cache.TryGet(bad));
        Assert.Null(cache.TryGet(huge));
        Assert.False(File.Exists(cache.Entries.PathOf(bad)), "an invalid fetched entry must not stay in the local store");
        Assert.False(File.Exists(cache.Entries.PathOf(huge)));
        var warnings = b.Remote!.DrainWarnings();
        Assert.Contains(warnings, w => w.Contains("not valid", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("more than", StringComparison.Ordinal));
    }

    /// <summary>A blob that never ends: 64 KiB chunks of zeros (up to 1 GiB); the most one download's destination accepted.</summary>
    private sealed class EndlessBackend(ICasBackend inner) : ICasBackend
    {
        public long Written;
        public string Description => inner.Description;
        public void Probe(CancellationToken cancel) => inner.Probe(cancel);
        public bool Exists(string name, CancellationToken cancel) => true;
        public bool CreateFromFile(string name, string path, CancellationToken cancel) => inner.CreateFromFile(name, path, cancel);
        public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel) => inner.PutDocument(name, content, overwrite, cancel);
        public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel) => inner.List(prefix, cancel);
        public bool Delete(string name, CancellationToken cancel) => inner.Delete(name, cancel);

        public bool Download(string name, Stream destination, CancellationToken cancel)
        {
            var chunk = new byte[64 << 10];
            long written = 0;
            try
            {
                for (var i = 0; i < (1 << 30) / chunk.Length; i++)
                {
                    destination.Write(chunk);
                    written += chunk.Length;
                }
            }
            finally
            {
                Written = Math.Max(Written, written); // per download (both encodings are tried)
            }
            return true;
        }
    }

    /// <summary>Hands the bytes over in chunks of a given size (as a network stream would).</summary>
    private sealed class ChunkedBackend(ICasBackend inner, int chunk) : ICasBackend
    {
        public string Description => inner.Description;
        public void Probe(CancellationToken cancel) => inner.Probe(cancel);
        public bool Exists(string name, CancellationToken cancel) => inner.Exists(name, cancel);
        public bool CreateFromFile(string name, string path, CancellationToken cancel) => inner.CreateFromFile(name, path, cancel);
        public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel) => inner.PutDocument(name, content, overwrite, cancel);
        public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel) => inner.List(prefix, cancel);
        public bool Delete(string name, CancellationToken cancel) => inner.Delete(name, cancel);

        public bool Download(string name, Stream destination, CancellationToken cancel)
        {
            using var ms = new MemoryStream();
            if (!inner.Download(name, ms, cancel)) return false;
            var bytes = ms.ToArray();
            for (var i = 0; i < bytes.Length; i += chunk) destination.Write(bytes, i, Math.Min(chunk, bytes.Length - i));
            return true;
        }
    }

    /// <summary>Counts downloads and how many ran at once: the first waits (up to 10 s) for a second to start.</summary>
    private sealed class OverlapBackend(ICasBackend inner) : ICasBackend
    {
        private int _inFlight;
        private int _maxInFlight;
        private int _downloads;
        private readonly ManualResetEventSlim _second = new();

        public int MaxInFlight => Volatile.Read(ref _maxInFlight);
        public int Downloads => Volatile.Read(ref _downloads);
        public string Description => inner.Description;
        public void Probe(CancellationToken cancel) => inner.Probe(cancel);
        public bool Exists(string name, CancellationToken cancel) => inner.Exists(name, cancel);
        public bool CreateFromFile(string name, string path, CancellationToken cancel) => inner.CreateFromFile(name, path, cancel);
        public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel) => inner.PutDocument(name, content, overwrite, cancel);
        public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel) => inner.List(prefix, cancel);
        public bool Delete(string name, CancellationToken cancel) => inner.Delete(name, cancel);

        public bool Download(string name, Stream destination, CancellationToken cancel)
        {
            var now = Interlocked.Increment(ref _inFlight);
            Interlocked.Increment(ref _downloads);
            int seen;
            while (now > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen) { }
            try
            {
                if (now >= 2) _second.Set();
                else if (Interlocked.CompareExchange(ref _firstDone, 1, 0) == 0) _second.Wait(TimeSpan.FromSeconds(10), cancel);
                return inner.Download(name, destination, cancel);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }

        private int _firstDone;
    }

    private sealed class FixedRoots : ICasGcRootProvider
    {
        private readonly string _hash;
        public FixedRoots(string hash) => _hash = hash;
        public IEnumerable<CasGcRoot> EnumerateRoots(CasStore store) { yield return new CasGcRoot(_hash, "test", AsManifest: false); }
    }

    private sealed class UnreachableBackend : ICasBackend
    {
        public string Description => "an unreachable test backend";
        private static CasBackendUnavailableException Down() => new("connection refused (test)");
        public void Probe(CancellationToken cancel) => throw Down();
        public bool Exists(string name, CancellationToken cancel) => throw Down();
        public bool CreateFromFile(string name, string path, CancellationToken cancel) => throw Down();
        public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel) => throw Down();
        public bool Download(string name, Stream destination, CancellationToken cancel) => throw Down();
        public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel) => throw Down();
        public bool Delete(string name, CancellationToken cancel) => throw Down();
    }
}
