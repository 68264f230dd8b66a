using System.Text;
using Requiem.Engine;
using Requiem.Engine.Audit;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;
using Requiem.Engine.Tenants;
using Xunit;

namespace Requiem.Tests.Audit;

public sealed class AuditLogTests : IDisposable
{
    private static readonly HashPrimitive Blake3 = HashPrimitive.Select(allowFallback: false);
    private static readonly string D1 = new('a', 64);
    private static readonly string D2 = new('b', 64);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-audit-unit-" + Guid.NewGuid().ToString("n"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private AuditLog NewLog(int entries)
    {
        var log = new AuditLog(Path.Combine(_dir, Guid.NewGuid().ToString("n")[..8]), Blake3, tenant: null);
        for (var i = 0; i < entries; i++)
            log.Append(AuditActions.RefSet, new[] { i % 2 == 0 ? D1 : D2 }, new Dictionary<string, object?> { ["ref"] = $"r/{i}", ["n"] = i });
        return log;
    }

    private static List<string> Lines(AuditLog log) => File.ReadAllLines(log.LogPath).ToList();

    private static void Rewrite(AuditLog log, IEnumerable<string> lines) =>
        File.WriteAllText(log.LogPath, string.Concat(lines.Select(l => l + "\n")));

    private static IEnumerable<string> Codes(AuditVerification v) => v.Problems.Select(p => p.Code).Distinct();

    [Fact]
    public void ChainsEntriesWithDomainSeparatedHashes()
    {
        var log = NewLog(3);
        var entries = log.ReadEntries().ToList();
        Assert.Equal(new long[] { 1, 2, 3 }, entries.Select(e => e.Seq));
        Assert.Null(entries[0].Prev);
        Assert.Equal(entries[0].Hash, entries[1].Prev);
        Assert.Equal(entries[1].Hash, entries[2].Prev);
        // The hash is BLAKE3 over "audit:" and the canonical entry without its hash member.
        var node = System.Text.Json.Nodes.JsonNode.Parse(Lines(log)[1])!.AsObject();
        node.Remove("hash");
        var canonical = Requiem.Engine.Json.CanonicalJson.Canonicalize(node.ToJsonString());
        Assert.Equal(Blake3.HashBytes(canonical, HashDomain.Audit), entries[1].Hash);
        Assert.Equal(Blake3.HashBytes(Encoding.UTF8.GetBytes("audit:").Concat(canonical).ToArray(), HashDomain.None), entries[1].Hash);
        var v = log.Verify();
        Assert.True(v.Valid, string.Join("; ", v.Problems));
        Assert.Equal(3, v.Entries);
        Assert.Equal(3, v.HeadSeq);
    }

    [Fact]
    public void AnEmptyOrMissingLogIsValid()
    {
        var v = new AuditLog(Path.Combine(_dir, "none"), Blake3, null).Verify();
        Assert.True(v.Valid);
        Assert.Equal(0, v.Entries);
    }

    [Fact]
    public void DetectsAnEditedEntry()
    {
        var log = NewLog(5);
        var lines = Lines(log);
        lines[2] = lines[2].Replace("r/2", "r/X");
        Rewrite(log, lines);
        var v = log.Verify();
        Assert.False(v.Valid);
        var p = Assert.Single(v.Problems);
        Assert.Equal("EntryModified", p.Code);
        Assert.Equal(3, p.Line);
    }

    [Fact]
    public void DetectsADeletedEntry()
    {
        var log = NewLog(5);
        var lines = Lines(log);
        lines.RemoveAt(1);
        Rewrite(log, lines);
        var v = log.Verify();
        Assert.Contains("MissingEntries", Codes(v));
        Assert.Contains("ChainBroken", Codes(v));
    }

    [Fact]
    public void DetectsSwappedEntries()
    {
        var log = NewLog(5);
        var lines = Lines(log);
        (lines[1], lines[2]) = (lines[2], lines[1]);
        Rewrite(log, lines);
        var v = log.Verify();
        Assert.False(v.Valid);
        Assert.Contains("OutOfOrder", Codes(v));
        Assert.Contains("ChainBroken", Codes(v));
    }

    [Fact]
    public void DetectsAnInsertedEntryEvenWithAValidOwnHash()
    {
        var log = NewLog(4);
        var other = NewLog(4); // a well-formed entry of another log, self-consistent
        var lines = Lines(log);
        lines.Insert(2, Lines(other)[2]);
        Rewrite(log, lines);
        var v = log.Verify();
        Assert.DoesNotContain("EntryModified", Codes(v));
        Assert.Contains("ChainBroken", Codes(v));
        Assert.Contains("OutOfOrder", Codes(v));
    }

    [Fact]
    public void DetectsAForgedAppendedEntry()
    {
        var log = NewLog(3);
        // Forge entry 4 correctly chained onto entry 3 (anyone can compute the hash) but without the module's head.
        var forger = new AuditLog(Path.Combine(_dir, "forger"), Blake3, null);
        File.Copy(log.LogPath, Path.Combine(Directory.CreateDirectory(forger.Directory).FullName, AuditLog.LogFileName));
        File.Copy(log.HeadPath, forger.HeadPath);
        forger.Append(AuditActions.RefRemoved, new[] { D1 });
        File.WriteAllLines(log.LogPath, Lines(forger));
        var v = log.Verify();
        Assert.False(v.Valid);
        var p = Assert.Single(v.Problems);
        Assert.Equal("UnanchoredEntries", p.Code);
    }

    [Fact]
    public void DetectsATruncatedTail()
    {
        var log = NewLog(5);
        Rewrite(log, Lines(log).Take(3));
        var v = log.Verify();
        var p = Assert.Single(v.Problems);
        Assert.Equal("TruncatedTail", p.Code);
        Assert.Equal(5, p.Seq);
    }

    [Fact]
    public void AMissingHeadIsReportedAndTheNextAppendRecordsTheReset()
    {
        var log = NewLog(2);
        File.Delete(log.HeadPath);
        Assert.Equal(new[] { "HeadMissing" }, Codes(log.Verify()));
        log.Append(AuditActions.RefSet, new[] { D1 });
        var entries = log.ReadEntries().ToList();
        Assert.Equal(AuditActions.AnchorReset, entries[2].Action);
        Assert.Equal(4, entries[3].Seq);
        Assert.Equal(new[] { "AnchorReset" }, Codes(log.Verify()));
    }

    [Fact]
    public void AnAppendInterruptedAfterTheHeadIsCompletedByTheNextAppend()
    {
        var log = NewLog(3);
        var bytes = File.ReadAllBytes(log.LogPath);
        // The writer stopped half-way through the third line (the head already names entry 3).
        var cut = bytes.Length - 40;
        File.WriteAllBytes(log.LogPath, bytes[..cut]);
        Assert.Contains("TornLine", Codes(log.Verify()));
        log.Append(AuditActions.RefSet, new[] { D2 });
        var v = log.Verify();
        Assert.True(v.Valid, string.Join("; ", v.Problems));
        Assert.Equal(4, v.Entries);
    }

    [Fact]
    public void AppendsAfterTamperingKeepTheEvidence()
    {
        var log = NewLog(5);
        Rewrite(log, Lines(log).Take(2));
        log.Append(AuditActions.RefSet, new[] { D1 });
        var v = log.Verify();
        Assert.False(v.Valid);
        Assert.Contains("MissingEntries", Codes(v));
    }

    [Fact]
    public void ConcurrentAppendsFromManyThreadsFormOneChain()
    {
        var log = NewLog(0);
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            var mine = new AuditLog(log.StoreRoot, Blake3, null); // separate instances, as separate processes have
            for (var i = 0; i < 25; i++) mine.Append(AuditActions.CasPut, new[] { D1 });
        });
        var v = log.Verify();
        Assert.True(v.Valid, string.Join("; ", v.Problems));
        Assert.Equal(200, v.Entries);
    }

    [Fact]
    public void EntriesOfAnInterruptedBatchAreRestoredFromTheHead()
    {
        var log = NewLog(2);
        Parallel.For(0, 8, _ => new AuditLog(log.StoreRoot, Blake3, null).Append(AuditActions.CasPut, new[] { D2 }));
        using var head = System.Text.Json.JsonDocument.Parse(File.ReadAllText(log.HeadPath));
        var inHead = head.RootElement.GetProperty("entries").GetArrayLength();
        Assert.InRange(inHead, 1, 8);
        // The writer stopped after the head: none of the head's lines reached the log.
        var lines = Lines(log);
        Rewrite(log, lines.Take(lines.Count - inHead));
        Assert.Equal(new[] { "TruncatedTail" }, Codes(log.Verify()));
        log.Append(AuditActions.RefSet, new[] { D1 });
        var v = log.Verify();
        Assert.True(v.Valid, string.Join("; ", v.Problems));
        Assert.Equal(11, v.Entries);
    }

    [Theory]
    [InlineData("Ref.Set")]
    [InlineData("ref..set")]
    [InlineData("")]
    [InlineData("ref set")]
    [InlineData("ref.set\n")]
    public void RefusesABadAction(string action)
    {
        var log = NewLog(0);
        var ex = Assert.Throws<RequiemException>(() => log.Append(action));
        Assert.Equal("InvalidAuditEntry", ex.ErrorId);
    }

    [Fact]
    public void RefusesADigestThatIsNotOne()
    {
        var ex = Assert.Throws<RequiemException>(() => NewLog(0).Append(AuditActions.CasPut, new[] { "abc" }));
        Assert.Equal("InvalidAuditEntry", ex.ErrorId);
    }
}

public sealed class TenantTests : IDisposable
{
    private static readonly HashPrimitive Blake3 = HashPrimitive.Select(allowFallback: false);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-tenant-unit-" + Guid.NewGuid().ToString("n"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData("a")]
    [InlineData("team-a")]
    [InlineData("t_1")]
    [InlineData("0abc")]
    public void AcceptsValidNames(string name) => Assert.Equal(name, TenantName.Validate(name));

    [Theory]
    [InlineData("..")]
    [InlineData("../b")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("A")]
    [InlineData("-a")]
    [InlineData("_a")]
    [InlineData("a b")]
    [InlineData("C:")]
    public void RefusesPathTricks(string name)
    {
        var ex = Assert.Throws<RequiemException>(() => TenantName.Validate(name));
        Assert.Equal("InvalidTenantName", ex.ErrorId);
        Assert.Equal(name, ex.Target);
    }

    [Fact]
    public void RefusesANameLongerThan63() =>
        Assert.Throws<RequiemException>(() => TenantName.Validate(new string('a', 64)));

    [Fact]
    public void EachTenantIsItsOwnStoreUnderTheRoot()
    {
        var root = Path.Combine(_dir, "cas");
        var a = TenantStores.Open(root, "a", Blake3, create: true, new RequiemConfig());
        var b = TenantStores.Open(root, "b", Blake3, create: true, new RequiemConfig());
        Assert.Equal(Path.Combine(root, "tenants", "a"), a.Root);
        Assert.Equal("a", TenantStores.TenantOf(a.Root));
        Assert.Null(TenantStores.TenantOf(root));
        var put = a.PutBytes("only a"u8);
        Assert.True(a.Contains(put.Hash));
        Assert.False(b.Contains(put.Hash));
        Assert.Empty(b.FindByPrefix(put.Hash[..6]));
        // The root is a store too (so the module recognises it), and holds none of the tenants' objects.
        var rootStore = CasStore.Open(root, Blake3, create: false);
        Assert.False(rootStore.Contains(put.Hash));
    }

    [Fact]
    public void QuotaStopsAPutAndLeavesNothing()
    {
        var root = Path.Combine(_dir, "cas");
        var config = new RequiemConfig
        {
            Tenants = new Dictionary<string, RequiemConfig.TenantSection> { ["q"] = new() { QuotaBytes = 100 } },
        };
        var store = TenantStores.Open(root, "q", Blake3, create: true, config);
        store.PutBytes(new byte[60]);
        store.PutBytes(new byte[60]); // the same object again: already stored, costs nothing
        var ex = Assert.Throws<RequiemException>(() => store.PutBytes(Enumerable.Repeat((byte)1, 60).ToArray()));
        Assert.Equal("TenantQuotaExceeded", ex.ErrorId);
        Assert.Single(store.EnumerateHashes());
        Assert.Empty(Directory.EnumerateFiles(store.TempDirectory));
        // Streaming puts are held to it too.
        var file = Path.Combine(_dir, "big.bin");
        File.WriteAllBytes(file, new byte[CasStore.SmallObjectLimit + 10]);
        Assert.Equal("TenantQuotaExceeded", Assert.Throws<RequiemException>(() => store.PutFile(file)).ErrorId);
        Assert.Single(store.EnumerateHashes());
        Assert.Empty(Directory.EnumerateFiles(store.TempDirectory));
    }
}
