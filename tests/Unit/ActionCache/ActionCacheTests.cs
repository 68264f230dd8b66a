using System.Text;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.ActionCache;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;
using Xunit;

namespace Requiem.Tests.ActionCache;

public sealed class ActionCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-xunit-ac-" + Guid.NewGuid().ToString("n"));
    private readonly string _ws;
    private readonly CasStore _store;
    private readonly HashPrimitive _hash = HashPrimitive.Select(false);

    public ActionCacheTests()
    {
        _ws = Path.Combine(_dir, "ws");
        Directory.CreateDirectory(_ws);
        _store = CasStore.Open(Path.Combine(_dir, "cas"), _hash);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static string D(char c) => new(c, 64);

    private static ActionCacheKeyComponents Components(
        string request = "", string command = "", IReadOnlyList<InputFileDigest>? inputs = null, ActionCachePlatform? platform = null, string algorithm = "BLAKE3") => new()
    {
        HashAlgorithm = algorithm,
        RequestDigest = request.Length == 0 ? D('a') : request,
        CommandDigest = command.Length == 0 ? D('c') : command,
        Inputs = inputs ?? new[] { new InputFileDigest { Path = "a.txt", Digest = D('1') }, new InputFileDigest { Path = "b.txt", Digest = D('2') } },
        Platform = platform ?? new ActionCachePlatform("linux", "x64", "1.1"),
    };

    [Fact]
    public void KeyIsBlake3OfTheAcPrefixAndTheCanonicalComponents()
    {
        var c = Components();
        var canonical = CanonicalJson.Canonicalize(c.ToJsonNode().ToJsonString());
        var expected = _hash.HashBytes(Encoding.ASCII.GetBytes("ac:").Concat(canonical).ToArray(), HashDomain.None);
        Assert.Equal(expected, c.ComputeKey(_hash));
        Assert.Matches("^[0-9a-f]{64}$", c.ComputeKey(_hash));
        Assert.Equal("ac:", HashDomains.PrefixText(HashDomain.ActionCache));
        // The canonical form names every component.
        var text = Encoding.UTF8.GetString(canonical);
        Assert.Equal(
            "{\"command_digest\":\"" + D('c') + "\",\"hash_algorithm\":\"BLAKE3\",\"input_digests\":[{\"digest\":\"" + D('1') + "\",\"path\":\"a.txt\"},{\"digest\":\"" + D('2')
            + "\",\"path\":\"b.txt\"}],\"platform\":{\"architecture\":\"x64\",\"contract_version\":\"1.1\",\"os\":\"linux\"},\"request_digest\":\"" + D('a') + "\"}",
            text);
    }

    [Fact]
    public void EveryComponentChangesTheKeyAndInputOrderDoesNot()
    {
        var baseKey = Components().ComputeKey(_hash);
        var variants = new[]
        {
            Components(request: D('b')),
            Components(command: D('d')),
            Components(inputs: new[] { new InputFileDigest { Path = "a.txt", Digest = D('1') }, new InputFileDigest { Path = "b.txt", Digest = D('3') } }),
            Components(inputs: new[] { new InputFileDigest { Path = "a.txt", Digest = D('1') }, new InputFileDigest { Path = "c.txt", Digest = D('2') } }),
            Components(inputs: new[] { new InputFileDigest { Path = "a.txt", Digest = D('1') } }),
            Components(platform: new ActionCachePlatform("windows", "x64", "1.1")),
            Components(platform: new ActionCachePlatform("linux", "arm64", "1.1")),
            Components(platform: new ActionCachePlatform("linux", "x64", "1.2")),
            Components(algorithm: "SHA256"),
        };
        var keys = variants.Select(v => v.ComputeKey(_hash)).ToList();
        Assert.DoesNotContain(baseKey, keys);
        Assert.Equal(keys.Count, keys.Distinct().Count());
        var reordered = Components(inputs: new[] { new InputFileDigest { Path = "b.txt", Digest = D('2') }, new InputFileDigest { Path = "a.txt", Digest = D('1') } });
        Assert.Equal(baseKey, reordered.ComputeKey(_hash));
    }

    [Fact]
    public void DistanceCountsEachDifferingComponentAndToleratesAnInputDeclaredTwice()
    {
        var a = Components();
        Assert.Equal(0, ActionCacheExplainer.Distance(a, Components()));
        Assert.Equal(1, ActionCacheExplainer.Distance(a, Components(command: D('d'))));
        Assert.Equal(2, ActionCacheExplainer.Distance(a, Components(request: D('b'), platform: new ActionCachePlatform("linux", "arm64", "1.1"))));
        var twice = Components(inputs: new[]
        {
            new InputFileDigest { Path = "a.txt", Digest = D('1') }, new InputFileDigest { Path = "a.txt", Digest = D('1') },
            new InputFileDigest { Path = "b.txt", Digest = D('9') },
        });
        Assert.Equal(1, ActionCacheExplainer.Distance(a, twice));
    }

    [Fact]
    public void ThePlatformIsThisMachine()
    {
        var p = ActionCachePlatform.Current;
        Assert.Equal(EngineInfo.ContractVersion, p.ContractVersion);
        Assert.Equal(OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macos" : "other", p.Os);
        Assert.Equal(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(), p.Architecture);
    }

    /// <summary>An entry over real CAS objects: stdout, stderr and one output file.</summary>
    private ActionCacheEntry NewEntry(string outputText = "OUT", bool executable = false)
    {
        var stdout = _store.PutBytes("hello\n"u8);
        var stderr = _store.PutBytes(""u8);
        var output = _store.PutBytes(Encoding.UTF8.GetBytes(outputText));
        var request = _store.PutBytes("{\"command\":\"/bin/true\"}"u8);
        var result = new ExecResult
        {
            RequestDigest = D('a'), ExitCode = 0, StdoutDigest = stdout.Hash, StdoutBytes = stdout.Size, StderrDigest = stderr.Hash,
            OutputFiles = new[] { new OutputFileDigest { Path = "dir/out.txt", Digest = output.Hash, Bytes = output.Size } },
            RequestBlobDigest = request.Hash, PolicyDigest = D('e'), CommandDigest = D('c'),
        };
        result.ResultDigest = result.ComputeDigest(_hash);
        var components = Components();
        return new ActionCacheEntry
        {
            Key = components.ComputeKey(_hash), CreatedAt = DateTime.UtcNow, Command = "/bin/sh", CommandPath = "/usr/bin/dash", Components = components,
            RequestBlobDigest = request.Hash, StdoutDigest = stdout.Hash, StderrDigest = stderr.Hash,
            OutputFiles = new[] { new ActionCacheOutputFile { Path = "dir/out.txt", Digest = output.Hash, Bytes = output.Size, Executable = executable } },
            ResultDocument = result.ToJsonNode(),
        };
    }

    [Fact]
    public void AnEntryRoundTripsThroughItsFile()
    {
        var entry = NewEntry();
        var cache = new ActionCacheStore(_store);
        cache.Put(entry);
        var path = Path.Combine(_store.Root, "ac", entry.Key[..2], entry.Key + ".json");
        Assert.True(File.Exists(path));
        var back = cache.TryGet(entry.Key)!;
        Assert.Equal(entry.Key, back.Key);
        Assert.Equal(path, back.Path);
        Assert.False(back.Expired);
        Assert.Equal(entry.CreatedAt.AddDays(ActionCacheStore.DefaultMaxAgeDays), back.ExpiresAt, TimeSpan.FromMilliseconds(1));
        Assert.Equal(entry.ResultDigest, back.ToResult().ResultDigest);
        Assert.Equal("dir/out.txt", Assert.Single(back.OutputFiles).Path);
        Assert.Equal(new[] { "a.txt", "b.txt" }, back.Inputs.Select(i => i.Path));
        Assert.Null(cache.TryGet(D('9')));
        Assert.Equal(new[] { entry.Key }, cache.Entries.Enumerate());
    }

    public static IEnumerable<object[]> Tamperings() => new[]
    {
        new object[] { "its result's exit code", (Func<JsonObject, JsonObject>)(o => { o["result"]!["exit_code"] = 1; return o; }), "hashes to" },
        new object[] { "an input digest in its components", (Func<JsonObject, JsonObject>)(o => { o["key_components"]!["input_digests"]![0]!["digest"] = D('7'); return o; }), "hash to" },
        new object[] { "its stdout digest", (Func<JsonObject, JsonObject>)(o => { o["stdout_digest"] = D('8'); return o; }), "not those of its result" },
        new object[] { "an output path leaving the workspace", (Func<JsonObject, JsonObject>)(o => { o["output_files"]![0]!["path"] = "../x"; return o; }), "not a relative path" },
        new object[] { "its version", (Func<JsonObject, JsonObject>)(o => { o["action_cache_entry_version"] = 2; return o; }), "version" },
        new object[] { "a missing field", (Func<JsonObject, JsonObject>)(o => { o.Remove("stderr_digest"); return o; }), "'stderr_digest' is missing" },
    };

    [Theory]
    [MemberData(nameof(Tamperings))]
    public void AnEditedEntryIsRefused(string what, Func<JsonObject, JsonObject> edit, string reason)
    {
        var entry = NewEntry();
        var doc = edit(entry.ToJsonNode());
        var ex = Assert.Throws<RequiemException>(() => ActionCacheEntry.Parse(Encoding.UTF8.GetBytes(doc.ToJsonString()), entry.Key, _hash));
        Assert.Equal("InvalidCacheEntry", ex.ErrorId);
        Assert.Equal(entry.Key, ex.Target);
        Assert.Contains(reason, ex.Message);
        Assert.False(string.IsNullOrEmpty(what));
    }

    [Fact]
    public void AnEntryStoredUnderAnotherKeyOrNotJsonIsRefused()
    {
        var entry = NewEntry();
        var ex = Assert.Throws<RequiemException>(() => ActionCacheEntry.Parse(entry.ToJsonBytes(), D('f'), _hash));
        Assert.Equal("InvalidCacheEntry", ex.ErrorId);
        ex = Assert.Throws<RequiemException>(() => ActionCacheEntry.Parse("not json"u8, entry.Key, _hash));
        Assert.Equal("InvalidCacheEntry", ex.ErrorId);
    }

    [Fact]
    public void ConcurrentWritersOfOneKeyAllSucceedAndLeaveOneWholeEntry()
    {
        var entries = new ActionCacheEntries(_store);
        var key = D('4');
        var payloads = Enumerable.Range(0, 16).Select(i => Encoding.UTF8.GetBytes($"{{\"writer\":{i},\"pad\":\"{new string('x', 4096)}\"}}")).ToArray();
        Parallel.For(0, payloads.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => entries.Write(key, payloads[i]));
        var read = entries.TryRead(key)!;
        Assert.Contains(payloads, p => p.AsSpan().SequenceEqual(read));
        Assert.Equal(new[] { key + ".json" }, Directory.GetFiles(Path.Combine(entries.Root, "44")).Select(Path.GetFileName));
    }

    [Fact]
    public void EnumerationSkipsFilesThatAreNotEntries()
    {
        var entries = new ActionCacheEntries(_store);
        entries.Write(D('5'), "{}"u8);
        Directory.CreateDirectory(Path.Combine(entries.Root, "55"));
        File.WriteAllText(Path.Combine(entries.Root, "55", "notes.json"), "{}");
        Directory.CreateDirectory(Path.Combine(entries.Root, "66"));
        File.WriteAllText(Path.Combine(entries.Root, "66", D('5') + ".json"), "{}"); // wrong shard
        Assert.Equal(new[] { D('5') }, entries.Enumerate());
        Assert.Throws<RequiemException>(() => entries.PathOf("../../etc/passwd"));
    }

    [Fact]
    public void RestoreWritesNothingWhenOneObjectIsCorrupt()
    {
        var good = _store.PutBytes("good bytes"u8);
        var bad = _store.PutBytes("bad bytes!"u8);
        File.WriteAllText(_store.Locate(bad.Hash)!.Value.Path, "BAD BYTES!"); // same length, other content
        var files = new[]
        {
            new ActionCacheOutputFile { Path = "first.txt", Digest = good.Hash, Bytes = good.Size },
            new ActionCacheOutputFile { Path = "sub/second.txt", Digest = bad.Hash, Bytes = bad.Size },
        };
        var ex = Assert.Throws<RequiemException>(() => ActionCacheRestore.Restore(_store, _ws, new[] { "first.txt", "sub" }, files, default));
        Assert.Equal("CasObjectCorrupt", ex.ErrorId);
        Assert.False(File.Exists(Path.Combine(_ws, "first.txt")), "a file verified before the failure must not be renamed into place");
        Assert.False(File.Exists(Path.Combine(_ws, "sub", "second.txt")));
        Assert.Empty(Directory.EnumerateFiles(_ws, "*", SearchOption.AllDirectories));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws)); // nor a folder it created for them
    }

    [Fact]
    public void RestoreReplacesOutputsAndKeepsTheExecutableBit()
    {
        var entry = NewEntry("#!/bin/sh\necho restored\n", executable: true);
        Directory.CreateDirectory(Path.Combine(_ws, "dir"));
        File.WriteAllText(Path.Combine(_ws, "dir", "out.txt"), "stale");
        ActionCacheRestore.Restore(_store, _ws, new[] { "dir/out.txt" }, entry.OutputFiles, default);
        Assert.Equal("#!/bin/sh\necho restored\n", File.ReadAllText(Path.Combine(_ws, "dir", "out.txt")));
        if (!OperatingSystem.IsWindows())
            Assert.NotEqual(UnixFileMode.None, File.GetUnixFileMode(Path.Combine(_ws, "dir", "out.txt")) & UnixFileMode.UserExecute);
        Assert.Single(Directory.EnumerateFiles(_ws, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void RestoreRefusesAPathThatLeavesTheWorkspaceThroughASymlink()
    {
        if (OperatingSystem.IsWindows()) return;
        var outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(outside);
        File.CreateSymbolicLink(Path.Combine(_ws, "dir"), outside);
        var entry = NewEntry();
        var ex = Assert.Throws<RequiemException>(() => ActionCacheRestore.Restore(_store, _ws, new[] { "dir" }, entry.OutputFiles, default));
        Assert.Equal("SymlinkEscapesWorkspace", ex.ErrorId);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }

    [Fact]
    public void RestoreRefusesTheWholeEntryWhenItNamesAFileTheRequestDoesNotDeclare()
    {
        // An entry is found by a key over the request, not over its outputs: a forged entry in a shared store must not
        // be able to plant a file (a git hook, a profile) the request never declared.
        var good = _store.PutBytes("declared"u8);
        var hook = _store.PutBytes("#!/bin/sh\necho pwned\n"u8);
        var files = new[]
        {
            new ActionCacheOutputFile { Path = "out/a.txt", Digest = good.Hash, Bytes = good.Size },
            new ActionCacheOutputFile { Path = ".git/hooks/pre-commit", Digest = hook.Hash, Bytes = hook.Size, Executable = true },
        };
        var ex = Assert.Throws<RequiemException>(() => ActionCacheRestore.Restore(_store, _ws, new[] { "out" }, files, default));
        Assert.Equal("UndeclaredCacheOutput", ex.ErrorId);
        Assert.Equal(".git/hooks/pre-commit", ex.Target);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_ws));

        // A declared folder covers the files below it, by whole segments only ("out" does not cover "outside.txt").
        files = new[] { new ActionCacheOutputFile { Path = "outside.txt", Digest = good.Hash, Bytes = good.Size } };
        Assert.Equal("UndeclaredCacheOutput", Assert.Throws<RequiemException>(() => ActionCacheRestore.Restore(_store, _ws, new[] { "out" }, files, default)).ErrorId);
        files = new[] { new ActionCacheOutputFile { Path = "out/deep/a.txt", Digest = good.Hash, Bytes = good.Size } };
        ActionCacheRestore.Restore(_store, _ws, new[] { "./out/" }, files, default);
        Assert.Equal("declared", File.ReadAllText(Path.Combine(_ws, "out", "deep", "a.txt")));
    }

    [Theory]
    [InlineData("a\0b")]
    [InlineData("dir/out.txt", "dir/out.txt")]
    [InlineData("dir/out.txt", "dir/./out.txt")]
    [InlineData("dir/out.txt", "dir/out.txt/below")]
    public void AnEntryWithANulPathOrOverlappingOutputsIsRefused(params string[] paths)
    {
        var entry = NewEntry();
        var doc = entry.ToJsonNode();
        var file = doc["output_files"]![0]!.AsObject();
        var list = new JsonArray(paths.Select(p => (JsonNode?)new JsonObject { ["path"] = p, ["digest"] = file["digest"]!.GetValue<string>(), ["bytes"] = file["bytes"]!.GetValue<long>() }).ToArray());
        doc["output_files"] = list;
        doc["result"]!["output_files"] = list.DeepClone();
        doc["result"]!["result_digest"] = ExecResult.ComputeDigest(doc["result"]!.AsObject(), _hash);
        var ex = Assert.Throws<RequiemException>(() => ActionCacheEntry.Parse(Encoding.UTF8.GetBytes(doc.ToJsonString()), entry.Key, _hash));
        Assert.Equal("InvalidCacheEntry", ex.ErrorId);
        Assert.Matches("not a relative path|named twice|lies below", ex.Message);
    }

    [Fact]
    public void AHitNeverReadsAnOutputLargerThanTheRequestCouldHaveCapturedIntoMemory()
    {
        var big = _store.PutBytes(new byte[4096]);
        var ex = Assert.Throws<RequiemException>(() => ActionCacheRunner.ReadVerified(_store, big.Hash, keep: true, maxOutputBytes: 1024, key: D('k'), default));
        Assert.Equal("InvalidCacheEntry", ex.ErrorId);
        Assert.Equal(D('k'), ex.Target);
        Assert.Equal(4096, ActionCacheRunner.ReadVerified(_store, big.Hash, keep: true, maxOutputBytes: 4096, key: D('k'), default)!.Length);
        Assert.Null(ActionCacheRunner.ReadVerified(_store, big.Hash, keep: false, maxOutputBytes: 1024, key: D('k'), default));
    }

    [Fact]
    public void GarbageCollectionKeepsWhatAnUnexpiredEntryNamesOnly()
    {
        var entry = NewEntry();
        var cache = new ActionCacheStore(_store);
        cache.Put(entry);
        var output = entry.OutputFiles[0].Digest;
        var report = _store.CollectGarbage(new CasGcOptions { GracePeriod = TimeSpan.Zero });
        Assert.True(_store.Contains(output));
        Assert.True(_store.Contains(entry.StdoutDigest));
        Assert.DoesNotContain(report.Candidates, c => c.Hash == output);

        // The same entry, created long ago: expired, so it keeps nothing.
        var old = ActionCacheEntry.Parse(entry.ToJsonBytes(), entry.Key, _hash);
        var aged = new ActionCacheEntry
        {
            Key = old.Key, CreatedAt = DateTime.UtcNow.AddDays(-30), Command = old.Command, CommandPath = old.CommandPath, Components = old.Components,
            RequestBlobDigest = old.RequestBlobDigest, StdoutDigest = old.StdoutDigest, StderrDigest = old.StderrDigest, OutputFiles = old.OutputFiles,
            ResultDocument = old.ResultDocument,
        };
        cache.Put(aged);
        Assert.True(cache.TryGet(entry.Key)!.Expired);
        _store.CollectGarbage(new CasGcOptions { GracePeriod = TimeSpan.Zero });
        Assert.False(_store.Contains(output));
    }

    [Fact]
    public void OnlyExitZeroHighConfidenceResultsAreCacheable()
    {
        ExecResult R(Action<ExecResult> change)
        {
            var r = new ExecResult { ExitCode = 0, CommandDigest = D('c'), DeterminismConfidence = new DeterminismConfidence { Level = "high", Score = 1 } };
            change(r);
            return r;
        }
        Assert.Null(ActionCacheRunner.WhyNotCacheable(R(_ => { })));
        Assert.Contains("exited with code 2", ActionCacheRunner.WhyNotCacheable(R(r => r.ExitCode = 2)));
        Assert.Contains("timed out", ActionCacheRunner.WhyNotCacheable(R(r => { r.TimedOut = true; r.ExitCode = null; r.Signal = "SIGKILL"; })));
        Assert.Contains("medium, not high", ActionCacheRunner.WhyNotCacheable(R(r => r.DeterminismConfidence = new DeterminismConfidence { Level = "medium", Score = 0.8, Reasons = new[] { "why" } })));
        Assert.Contains("could not be read", ActionCacheRunner.WhyNotCacheable(R(r => r.CommandDigest = null)));
    }

    [Fact]
    public void CacheFieldsAreWrittenOnlyWhenTheCacheWasUsedAndAreOutsideTheResultDigest()
    {
        var r = new ExecResult { RequestDigest = D('a'), StdoutDigest = D('b'), ExitCode = 0 };
        var digest = r.ComputeDigest(_hash);
        Assert.False(r.ToJsonNode().ContainsKey("cache_hit"));
        r.CacheKey = D('c');
        r.CacheHit = true;
        Assert.Equal(digest, r.ComputeDigest(_hash));
        var doc = r.ToJsonNode();
        Assert.True(doc["cache_hit"]!.GetValue<bool>());
        Assert.Equal(D('c'), doc["cache_key"]!.GetValue<string>());
        var back = ExecResult.FromJson(r.ToJson());
        Assert.True(back.CacheHit);
        Assert.Equal(D('c'), back.CacheKey);
    }

    [Fact]
    public void ConfigReadsTheCacheSection()
    {
        var ok = Requiem.Engine.Config.ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"cache\":{\"mode\":\"ReadWrite\",\"max_age_days\":2}}", "c.json");
        Assert.True(ok.Valid);
        var bad = Requiem.Engine.Config.ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"cache\":{\"mode\":\"always\",\"max_age_days\":0,\"extra\":1}}", "c.json");
        Assert.Equal(new[] { "$.cache.extra", "$.cache.max_age_days", "$.cache.mode" }, bad.Errors.Select(e => e.Field).Order(StringComparer.Ordinal));
        Assert.Equal(ActionCacheMode.Off, new Requiem.Engine.Config.RequiemConfig().Cache.Mode);
        Assert.Equal(7, new Requiem.Engine.Config.RequiemConfig().Cache.MaxAgeDays);
    }
}
