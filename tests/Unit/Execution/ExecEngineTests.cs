using System.Text;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;
using Requiem.Engine.Sandbox;
using Xunit;

namespace Requiem.Tests.Execution;

public sealed class ExecEngineTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "requiem-xunit-" + Guid.NewGuid().ToString("n"));
    private readonly string _ws;
    private readonly CasStore _store;

    public ExecEngineTests()
    {
        _ws = Path.Combine(_dir, "ws");
        Directory.CreateDirectory(_ws);
        _store = CasStore.Open(Path.Combine(_dir, "cas"), HashPrimitive.Select(false));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Req(string extra = "") =>
        $"{{\"command\":\"/bin/sh\",\"argv\":[\"-c\",\"echo hi\"],\"workspace_root\":\"{_ws}\"{extra}}}";

    [Fact]
    public void NormalizesDefaultsSoThatSpelledOutDefaultsHaveTheSameDigest()
    {
        var hash = HashPrimitive.Select(false);
        var a = ExecRequestParser.Parse(Req());
        var b = ExecRequestParser.Parse(Req(",\"cwd\":\".\",\"env\":{},\"stdin\":null,\"timeout_ms\":30000,\"max_output_bytes\":1048576,\"policy\":{\"mode\":\"permissive\",\"scheduler_mode\":\"turbo\",\"deterministic\":true}"));
        Assert.Equal(a.ComputeDigest(hash), b.ComputeDigest(hash));
        var c = ExecRequestParser.Parse(Req(",\"timeout_ms\":5000"));
        Assert.NotEqual(a.ComputeDigest(hash), c.ComputeDigest(hash));
        // req: domain over the canonical bytes
        var expected = hash.HashBytes(Encoding.ASCII.GetBytes("req:").Concat(a.CanonicalBytes()).ToArray(), HashDomain.None);
        Assert.Equal(expected, a.ComputeDigest(hash));
        Assert.Equal(CanonicalJson.CanonicalizeToString(a.ToJson(true)), Encoding.UTF8.GetString(a.CanonicalBytes()));
    }

    [Theory]
    [InlineData("{", "InvalidJson")]
    [InlineData("\"x\"", "InvalidRequest")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"argv\":\"-c\"}", "InvalidRequestFieldType")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"extra\":1}", "UnknownRequestField")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"command\":\"/bin/ls\"}", "InvalidRequest")]
    [InlineData("{\"workspace_root\":\"/tmp\"}", "MissingRequestField")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"tmp\"}", "WorkspaceRootNotAbsolute")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"max_output_bytes\":-1}", "InvalidRequestLimit")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"policy\":{\"max_processes\":0}}", "InvalidRequestLimit")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"policy\":{\"max_cpu_seconds\":1e30}}", "InvalidRequestLimit")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"policy\":{\"deny_network\":\"yes\"}}", "InvalidRequestFieldType")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"policy\":{\"scheduler_mode\":\"fast\"}}", "InvalidRequestValue")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"env\":{\"A\":1}}", "InvalidRequestFieldType")]
    [InlineData("{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"argv\":[\"a\\u0000b\"]}", "InvalidRequestValue")]
    public void RefusesMalformedRequestsWithTypedErrors(string json, string errorId)
    {
        var ex = Assert.Throws<RequiemException>(() => ExecRequestParser.Parse(json));
        Assert.Equal(errorId, ex.ErrorId);
    }

    [Fact]
    public void RefusesHugeArgv()
    {
        var many = "[" + string.Join(",", Enumerable.Repeat("\"x\"", ExecRequest.MaxArgvCount + 1)) + "]";
        Assert.Equal("ArgvTooLarge", Assert.Throws<RequiemException>(() => ExecRequestParser.Parse(
            $"{{\"command\":\"/bin/sh\",\"workspace_root\":\"/tmp\",\"argv\":{many}}}")).ErrorId);
    }

    [Fact]
    public void ConfinesPathsToTheWorkspace()
    {
        Directory.CreateDirectory(Path.Combine(_ws, "sub"));
        var root = WorkspacePaths.ResolveRoot(_ws);
        Assert.Equal(Path.Combine(root, "sub"), WorkspacePaths.Confine(root, "sub/../sub/.", "cwd"));
        Assert.Equal("PathEscapesWorkspace", Assert.Throws<RequiemException>(() => WorkspacePaths.Confine(root, "sub/../../x", "cwd")).ErrorId);
        Assert.Equal("AbsolutePathNotAllowed", Assert.Throws<RequiemException>(() => WorkspacePaths.Confine(root, "/etc", "cwd")).ErrorId);
        if (!OperatingSystem.IsWindows())
        {
            File.CreateSymbolicLink(Path.Combine(_ws, "out"), "/tmp");
            File.CreateSymbolicLink(Path.Combine(_ws, "rel"), "../..");
            File.CreateSymbolicLink(Path.Combine(_ws, "inside"), "sub");
            Assert.Equal("SymlinkEscapesWorkspace", Assert.Throws<RequiemException>(() => WorkspacePaths.Confine(root, "out/x", "output")).ErrorId);
            Assert.Equal("SymlinkEscapesWorkspace", Assert.Throws<RequiemException>(() => WorkspacePaths.Confine(root, "rel", "cwd")).ErrorId);
            Assert.Equal(Path.Combine(root, "sub", "f"), WorkspacePaths.Confine(root, "inside/f", "input"));
        }
    }

    [Fact]
    public void BuildsACleanEnvironment()
    {
        var req = ExecRequestParser.Parse(Req(",\"env\":{\"EXPLICIT\":\"1\",\"BLOCKED\":\"2\"},\"policy\":{\"env_allowlist\":[\"KEEP_*\",\"HOME\"],\"env_denylist\":[\"KEEP_NOT\",\"BLOCKED\"]}"));
        var host = new System.Collections.Hashtable { ["KEEP_A"] = "a", ["KEEP_NOT"] = "x", ["SECRET"] = "s", ["HOME"] = "/root", ["TZ"] = "Europe/Paris" };
        var violations = new List<string>();
        var env = ExecPlan.BuildEnvironment(req, host, violations);
        Assert.Equal("a", env["KEEP_A"]);
        Assert.False(env.ContainsKey("KEEP_NOT"));
        Assert.False(env.ContainsKey("SECRET"));
        Assert.False(env.ContainsKey("BLOCKED"));
        Assert.Equal("1", env["EXPLICIT"]);
        Assert.Equal("UTC", env["TZ"]);
        Assert.Equal("C", env["LC_ALL"]);
        Assert.Equal(ExecPlan.DefaultPath, env["PATH"]);
        Assert.Single(violations);
    }

    [Fact]
    public void StrictRefusesAnUnenforceableControlAndPermissiveLowersConfidence()
    {
        if (!OperatingSystem.IsLinux()) return;
        var probe = SandboxProbe.Current.WithoutNetworkIsolation();
        var marker = Path.Combine(_ws, "ran");
        var strict = ExecRequestParser.Parse($"{{\"command\":\"/bin/sh\",\"argv\":[\"-c\",\"touch {marker}\"],\"workspace_root\":\"{_ws}\",\"policy\":{{\"mode\":\"strict\",\"deny_network\":true}}}}");
        var ex = Assert.Throws<RequiemException>(() => ExecRunner.Run(strict, new ExecOptions { Store = _store, Probe = probe }));
        Assert.Equal("PolicyNotEnforceable", ex.ErrorId);
        Assert.False(File.Exists(marker));

        var permissive = ExecRequestParser.Parse($"{{\"command\":\"/bin/sh\",\"argv\":[\"-c\",\"touch {marker}\"],\"workspace_root\":\"{_ws}\",\"policy\":{{\"deny_network\":true,\"filesystem\":\"hermetic\",\"seccomp\":false}}}}");
        var warnings = new List<string>();
        var result = ExecRunner.Run(permissive, new ExecOptions { Store = _store, Probe = probe, Output = new Collect(warnings) });
        Assert.True(File.Exists(marker));
        var treeKill = probe.StatusOf(Controls.ProcessTreeKill) == CapabilityStatus.Enforced;
        var hermetic = probe.StatusOf(Controls.FilesystemIsolation) == CapabilityStatus.Enforced && probe.StatusOf(Controls.WorkspaceConfinement) == CapabilityStatus.Enforced;
        // network missing -0.25; without the launcher also both file-system controls -0.25 each and no isolation -0.3
        Assert.Equal(Math.Round(1 - 0.25 - (treeKill ? 0 : 0.1) - (hermetic ? 0 : 0.8), 2), result.DeterminismConfidence.Score);
        Assert.Contains(result.DeterminismConfidence.Reasons, r => r.StartsWith("network_isolation requested but not enforced", StringComparison.Ordinal));
        Assert.Contains("network_isolation", result.Sandbox.NotEnforced);
        Assert.DoesNotContain("network_isolation", result.Sandbox.Enforced);
        Assert.Contains(warnings, w => w.Contains("network_isolation", StringComparison.Ordinal));
    }

    [Fact]
    public void PlanKeepsOneRecordPerControlOptOutsAreNotGapsAndMissingOnesCarryTheirReason()
    {
        if (!OperatingSystem.IsLinux()) return;
        var probe = SandboxProbe.Current.WithoutNetworkIsolation();
        var host = ExecPlan.Create(ExecRequestParser.Parse(Req(",\"policy\":{\"filesystem\":\"host\",\"deny_network\":true}")), probe);
        Assert.Equal(host.Planned.Select(c => c.Control).Distinct().Count(), host.Planned.Count);
        Assert.Contains(Controls.FilesystemIsolation, host.NotEnforced);
        Assert.Contains(Controls.WorkspaceConfinement, host.NotEnforced);
        Assert.DoesNotContain(host.Gaps, g => g.Control is Controls.FilesystemIsolation or Controls.WorkspaceConfinement);
        Assert.Equal(new[] { Controls.NetworkIsolation }, host.RequestedButMissing);
        Assert.Single(host.Reasons, r => r.StartsWith("network_isolation requested but not enforced", StringComparison.Ordinal));
        Assert.Empty(host.Enforced.Intersect(host.NotEnforced));
        Assert.False(host.Enforces(Controls.NetworkIsolation));
        Assert.True(host.Enforces(Controls.CleanEnvironment));
    }

    [Fact]
    public void ResultDigestExcludesWallClockFieldsAndCoversEverythingElse()
    {
        var hash = HashPrimitive.Select(false);
        var r = new ExecResult { RequestDigest = new string('a', 64), StdoutDigest = new string('b', 64), ExitCode = 0, DurationMs = 5, StartedAt = "2026-01-01T00:00:00.000Z" };
        var d1 = r.ComputeDigest(hash);
        r.DurationMs = 99;
        r.StartedAt = "1999-01-01T00:00:00.000Z";
        Assert.Equal(d1, r.ComputeDigest(hash));
        r.ExitCode = 1;
        Assert.NotEqual(d1, r.ComputeDigest(hash));
        var doc = r.ToJsonNode(includeDigest: false);
        foreach (var f in ExecResult.DigestExcludedFields) doc.Remove(f);
        var expected = hash.HashBytes(Encoding.ASCII.GetBytes("res:").Concat(CanonicalJson.Canonicalize(doc.ToJsonString())).ToArray(), HashDomain.None);
        Assert.Equal(expected, r.ComputeDigest(hash));
        var back = ExecResult.FromJson(r.ToJson());
        Assert.Equal(r.ComputeDigest(hash), back.ComputeDigest(hash));
    }

    [Fact]
    public void QuotesWindowsCommandLinesTheWayCommandLineToArgvWSplitsThem()
    {
        var line = WindowsCommandLine.Build(@"C:\Program Files\x.exe", new[] { "a b", "", "q\"uote", @"trail\", @"back\\""s", "plain" });
        Assert.Equal(@"""C:\Program Files\x.exe"" ""a b"" """" ""q\""uote"" trail\ ""back\\\\\""s"" plain", line);
    }

    [Fact]
    public void ReplayShowsTheFirstDifferingBytesFromTheCas()
    {
        var a = _store.PutBytes("line one\nvalue=123\n"u8).Hash;
        var b = _store.PutBytes("line one\nvalue=124\n"u8).Hash;
        var detail = Replay.DescribeDifference(a, b, _store);
        Assert.StartsWith("first difference at byte 17 (line 2; 19 vs 19 bytes)", detail);
        Assert.Contains("value=123", detail);
        Assert.Contains("value=124", detail);
        var bin1 = _store.PutBytes(new byte[] { 0, 1, 2 }).Hash;
        var bin2 = _store.PutBytes(new byte[] { 0, 1, 3 }).Hash;
        Assert.Equal("first difference at byte 2 (3 vs 3 bytes, binary)", Replay.DescribeDifference(bin1, bin2, _store));
    }

    private sealed class Collect : Requiem.Engine.Diagnostics.IEngineOutput
    {
        private readonly List<string> _w;
        public Collect(List<string> w) => _w = w;
        public void Progress(Requiem.Engine.Diagnostics.ProgressInfo progress) { }
        public void Verbose(string message) { }
        public void Warning(string message) => _w.Add(message);
    }
}
