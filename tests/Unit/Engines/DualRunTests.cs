using System.Text;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Engines;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Engines;

public sealed class DualRunComparerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-xunit-" + Guid.NewGuid().ToString("n"));
    private readonly CasStore _store;

    public DualRunComparerTests() => _store = CasStore.Open(Path.Combine(_dir, "cas"), HashPrimitive.Select(false));

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static string D(char c) => new(c, 64);

    private static ExecResult Sample() => new()
    {
        RequestDigest = D('a'), ExitCode = 0, StdoutDigest = D('b'), StdoutBytes = 3, StderrDigest = D('c'),
        OutputFiles = new[] { new OutputFileDigest { Path = "out.txt", Digest = D('d'), Bytes = 5 } },
        InputDigests = new[] { new InputFileDigest { Path = "in.txt", Digest = D('e') } },
        PolicyDigest = D('f'), RequestBlobDigest = D('1'), CommandDigest = D('2'),
        Sandbox = new SandboxReport { Enforced = new[] { "timeout", "rlimits" }, Filesystem = "workspace", Seccomp = true },
        DeterminismConfidence = new DeterminismConfidence { Level = "high", Score = 1.0 },
        DurationMs = 12, StartedAt = "2026-12-01T00:00:00.000Z", ResultDigest = D('3'),
    };

    [Fact]
    public void EqualResultsHaveNoDifferencesAndEngineIdentityAndWallClockAreNotCompared()
    {
        var external = Sample();
        external.Engine = "requiem-cpp";
        external.EngineVersion = "1.3";
        external.DurationMs = 999;
        external.StartedAt = "1999-01-01T00:00:00.000Z";
        Assert.Empty(DualRunComparer.Compare(Sample(), external));
    }

    public static TheoryData<string, Action<ExecResult>, string?, string?> Changes => new()
    {
        { "exit_code", r => r.ExitCode = 7, "0", "7" },
        { "exit_code", r => r.ExitCode = null, "0", null },
        { "signal", r => r.Signal = "SIGKILL", null, "SIGKILL" },
        { "timed_out", r => r.TimedOut = true, "false", "true" },
        { "stdout_digest", r => r.StdoutDigest = D('9'), D('b'), D('9') },
        { "stdout_bytes", r => r.StdoutBytes = 4, "3", "4" },
        { "stderr_digest", r => r.StderrDigest = D('9'), D('c'), D('9') },
        { "stderr_truncated", r => r.StderrTruncated = true, "false", "true" },
        { "output_files[out.txt]", r => r.OutputFiles[0].Digest = D('9'), D('d'), D('9') },
        { "output_files[out.txt]", r => r.OutputFiles = Array.Empty<OutputFileDigest>(), D('d'), null },
        { "output_files[out.txt].bytes", r => r.OutputFiles[0].Bytes = 6, "5", "6" },
        { "missing_outputs", r => r.MissingOutputs = new[] { "gone.txt" }, "[]", "[\"gone.txt\"]" },
        { "input_digests[in.txt]", r => r.InputDigests[0].Digest = D('9'), D('e'), D('9') },
        { "request_digest", r => r.RequestDigest = D('9'), D('a'), D('9') },
        { "policy_digest", r => r.PolicyDigest = D('9'), D('f'), D('9') },
        { "request_blob_digest", r => r.RequestBlobDigest = D('9'), D('1'), D('9') },
        { "command_digest", r => r.CommandDigest = null, D('2'), null },
        { "sandbox.enforced", r => r.Sandbox.Enforced = new[] { "timeout" }, "[\"timeout\",\"rlimits\"]", "[\"timeout\"]" },
        { "sandbox.filesystem", r => r.Sandbox.Filesystem = "host", "workspace", "host" },
        { "sandbox.seccomp", r => r.Sandbox.Seccomp = false, "true", "false" },
        { "determinism_confidence.level", r => r.DeterminismConfidence.Level = "medium", "high", "medium" },
        { "determinism_confidence.score", r => r.DeterminismConfidence.Score = 0.75, "1", "0.75" },
        { "determinism_confidence.reasons", r => r.DeterminismConfidence.Reasons = new[] { "HostFilesystem" }, "[]", "[\"HostFilesystem\"]" },
        { "result_digest", r => r.ResultDigest = D('9'), D('3'), D('9') },
        { "contract_version", r => r.ContractVersion = "1.0", EngineInfo.ContractVersion, "1.0" },
        { "hash_algorithm", r => r.HashAlgorithm = "SHA256", HashPrimitive.Blake3Name, "SHA256" },
    };

    [Theory]
    [MemberData(nameof(Changes))]
    public void EachChangedFieldIsReportedOnceWithBothValues(string field, Action<ExecResult> change, string? requiem, string? external)
    {
        var other = Sample();
        change(other);
        var diff = Assert.Single(DualRunComparer.Compare(Sample(), other));
        Assert.Equal(field, diff.Field);
        Assert.Equal(requiem, diff.Requiem);
        Assert.Equal(external, diff.External);
    }

    [Fact]
    public void AnOutputFileOnlyTheExternalEngineCapturedIsNamed()
    {
        var other = Sample();
        other.OutputFiles = other.OutputFiles.Append(new OutputFileDigest { Path = "extra.txt", Digest = D('8'), Bytes = 1 }).ToArray();
        var diff = Assert.Single(DualRunComparer.Compare(Sample(), other));
        Assert.Equal("output_files[extra.txt]", diff.Field);
        Assert.Null(diff.Requiem);
        Assert.Equal("captured only by the external engine", diff.Detail);
    }

    [Fact]
    public void StdoutBytesInTheStoreGetWhereTheyFirstDiffer()
    {
        var a = _store.PutBytes(Encoding.UTF8.GetBytes("hello world\n")).Hash;
        var b = _store.PutBytes(Encoding.UTF8.GetBytes("hello there\n")).Hash;
        var r = Sample();
        r.StdoutDigest = a;
        var e = Sample();
        e.StdoutDigest = b;
        var diff = Assert.Single(DualRunComparer.Compare(r, e, _store));
        Assert.Equal("first difference at byte 6 (line 1; 12 vs 12 bytes): requiem \"hello world\\n\", external \"hello there\\n\"", diff.Detail);
        // Without the bytes (an engine with its own store) the digests alone are reported.
        e.StdoutDigest = D('7');
        Assert.Null(Assert.Single(DualRunComparer.Compare(r, e, _store)).Detail);
    }
}

public sealed class DualSamplingTests
{
    [Fact]
    public void TheFractionIsTheFirstEightBytesOverTwoToThe64()
    {
        Assert.Equal(0.0, DualSampling.Fraction(new string('0', 64)));
        Assert.Equal(0.25, DualSampling.Fraction("4" + new string('0', 63)));
        Assert.Equal(0.5, DualSampling.Fraction("8000000000000000" + new string('f', 48)));
        Assert.True(DualSampling.Fraction(new string('f', 64)) < 1.0);
    }

    [Fact]
    public void ARequestIsInWhenItsFractionIsBelowTheRate()
    {
        var quarter = "4" + new string('0', 63);
        Assert.False(DualSampling.IsSampled(quarter, 0.25));
        Assert.True(DualSampling.IsSampled(quarter, 0.2500001));
        Assert.True(DualSampling.IsSampled(new string('f', 64), 1.0));
        Assert.False(DualSampling.IsSampled(new string('0', 64), 0.0));
    }

    [Fact]
    public void RatesSampleTheirShareOfRequestDigestsAndTheSameOnesEveryTime()
    {
        var hash = HashPrimitive.Select(false);
        var digests = Enumerable.Range(0, 20000).Select(i => hash.HashBytes(Encoding.UTF8.GetBytes($"{{\"request\":{i}}}"), HashDomain.Request)).ToArray();
        foreach (var rate in new[] { 0.01, 0.25, 0.5, 0.9 })
        {
            var first = digests.Where(d => DualSampling.IsSampled(d, rate)).ToArray();
            var share = first.Length / (double)digests.Length;
            Assert.InRange(share, rate - 0.015, rate + 0.015);
            Assert.Equal(first, digests.Where(d => DualSampling.IsSampled(d, rate)).ToArray());
            // A larger rate keeps every request a smaller one sampled (rolling out never drops a sampled request).
            Assert.All(first, d => Assert.True(DualSampling.IsSampled(d, Math.Min(1, rate + 0.05))));
        }
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void ARateOutsideZeroToOneIsRefused(double rate)
    {
        var ex = Assert.Throws<RequiemException>(() => DualSampling.IsSampled(new string('a', 64), rate));
        Assert.Equal("InvalidSampleRate", ex.ErrorId);
    }

    [Fact]
    public void ADigestThatIsNotHexIsRefused()
    {
        Assert.Equal("InvalidDigest", Assert.Throws<RequiemException>(() => DualSampling.Fraction("not-a-digest-at-all")).ErrorId);
    }
}

public sealed class DualDiffLogTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-xunit-" + Guid.NewGuid().ToString("n"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static DualDiffEntry Entry(int i) => new()
    {
        Time = DateTimeOffset.UtcNow, Status = DualRunStatus.Mismatch, RequestDigest = i.ToString("x64"), Command = "/bin/sh",
        // Long lines (beyond PIPE_BUF) so interleaving would show.
        Differences = new[] { new DualRunDifference { Field = "stdout_digest", Requiem = new string('r', 3000), External = i.ToString(), Detail = "d" } },
    };

    [Fact]
    public void ConcurrentAppendsLoseNoLineAndInterleaveNone()
    {
        const int writers = 8, each = 100;
        Parallel.For(0, writers, new ParallelOptions { MaxDegreeOfParallelism = writers }, w =>
        {
            for (var i = 0; i < each; i++) DualDiffLog.Append(_dir, Entry(w * each + i));
        });
        var invalid = new List<long>();
        var entries = DualDiffLog.Read(DualDiffLog.PathFor(_dir), (line, _) => invalid.Add(line)).ToList();
        Assert.Empty(invalid);
        Assert.Equal(writers * each, entries.Count);
        Assert.Equal(Enumerable.Range(0, writers * each).Select(i => i.ToString()).Order(), entries.Select(e => e.Differences[0].External!).Order());
    }

    [Fact]
    public void AnEntryRoundTripsAndABrokenLineIsReportedNotFatal()
    {
        DualDiffLog.Append(_dir, Entry(1));
        File.AppendAllText(DualDiffLog.PathFor(_dir), "{\"time\":\"cut short\n");
        DualDiffLog.Append(_dir, Entry(2));
        var invalid = new List<long>();
        var entries = DualDiffLog.Read(DualDiffLog.PathFor(_dir), (line, _) => invalid.Add(line)).ToList();
        Assert.Equal(new long[] { 2 }, invalid);
        Assert.Equal(2, entries.Count);
        Assert.Equal(1.ToString("x64"), entries[0].RequestDigest);
        Assert.Equal("stdout_digest", entries[0].Differences[0].Field);
        Assert.Equal(3, entries[1].Line);
        var line = JsonNode.Parse(File.ReadLines(DualDiffLog.PathFor(_dir)).First())!.AsObject();
        Assert.Equal("mismatch", line["status"]!.GetValue<string>());
    }
}

public sealed class EngineConfigTests
{
    [Fact]
    public void EngineSectionIsReadAndValidated()
    {
        var ok = ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"engine\":{\"external_path\":\"requiem\",\"dual_sample_rate\":0.1}}", "t");
        Assert.True(ok.Valid);
        Assert.Equal("requiem", ok.Config!.Engine.ExternalPath);
        Assert.Equal(0.1, ok.Config.Engine.DualSampleRate);

        var bad = ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"engine\":{\"external_path\":\"bin/engine\",\"dual_sample_rate\":2,\"x\":1}}", "t");
        Assert.False(bad.Valid);
        Assert.Contains(bad.Errors, e => e.Field == "$.engine.external_path");
        Assert.Contains(bad.Errors, e => e.Field == "$.engine.dual_sample_rate");
        Assert.Contains(bad.Errors, e => e.Field == "$.engine.x");

        var missing = ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"engine\":{\"external_path\":\"/nonexistent/engine\"}}", "t");
        Assert.True(missing.Valid);
        Assert.Contains(missing.Warnings, w => w.Field == "$.engine.external_path");
    }

    [Fact]
    public void TheEnginePathComesFromTheParameterThenTheVariableThenTheConfig()
    {
        var config = ConfigValidator.ValidateText("{\"config_version\":\"1.1\",\"engine\":{\"external_path\":\"/opt/from-config\"}}", "t").Config!;
        var saved = Environment.GetEnvironmentVariable(ExternalEngine.PathVariable);
        try
        {
            Environment.SetEnvironmentVariable(ExternalEngine.PathVariable, null);
            Assert.Null(ExternalEngine.Resolve(null, new RequiemConfig()));
            Assert.Equal("/opt/from-config", ExternalEngine.Resolve(null, config)!.Path);
            Environment.SetEnvironmentVariable(ExternalEngine.PathVariable, "/opt/from-env");
            Assert.Equal(ExternalEngine.SourceVariable, ExternalEngine.Resolve(null, config)!.Source);
            var given = ExternalEngine.Resolve("/opt/given", config)!;
            Assert.Equal(("/opt/given", ExternalEngine.SourceParameter), (given.Path, given.Source));
        }
        finally
        {
            Environment.SetEnvironmentVariable(ExternalEngine.PathVariable, saved);
        }
    }
}
