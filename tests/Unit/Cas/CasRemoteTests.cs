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
