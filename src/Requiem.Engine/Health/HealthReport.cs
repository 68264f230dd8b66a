using System.Text.Json.Nodes;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.Health;

/// <summary>The Requiem CLI's <c>sandbox_capabilities</c>: names of controls by probed status.</summary>
public sealed class SandboxCapabilities
{
    public string[] Enforced { get; init; } = Array.Empty<string>();
    public string[] Partial { get; init; } = Array.Empty<string>();
    public string[] Unsupported { get; init; } = Array.Empty<string>();
}

/// <summary>The Requiem CLI's <c>health</c> document, built by probing this machine.</summary>
public sealed class HealthReport
{
    public required string HashPrimitive { get; init; }
    /// <summary>The Requiem CLI's value: <c>vendored</c> (the module's own BLAKE3), or <c>unavailable</c>.</summary>
    public required string HashBackend { get; init; }
    /// <summary>Which implementation that is: <c>managed-simd</c> (the finer name), or <c>unavailable</c>.</summary>
    public string HashImplementation { get; init; } = "unavailable";
    public required bool HashSelfTestPassed { get; init; }
    public required string CasVersion { get; init; }
    public required string EngineName { get; init; }
    public required string EngineVersion { get; init; }
    public required string ContractVersion { get; init; }
    public required string Platform { get; init; }
    public required string? Isolator { get; init; }
    public required SandboxCapabilities SandboxCapabilities { get; init; }
    /// <summary>Every probed control with its mechanism and detail.</summary>
    public required IReadOnlyList<SandboxCapability> Capabilities { get; init; }
    public required IReadOnlyDictionary<string, string?> Tools { get; init; }
    public required IReadOnlyList<string> ProbeNotes { get; init; }
    public required double ProbeMilliseconds { get; init; }
    /// <summary>The remote store: configured, reachable (null when not checked).</summary>
    public RemoteHealth? Remote { get; init; }

    /// <summary><c>hash_backend</c> in the Requiem CLI's words: the BLAKE3 implementation ships with the engine.</summary>
    public const string CliHashBackend = "vendored";
    /// <summary>The finer name of that implementation (<c>hash_implementation</c>).</summary>
    public const string HashImplementationName = "managed-simd";

    public static HealthReport Create(SandboxProbe? probe = null, RequiemConfig? config = null)
    {
        probe ??= SandboxProbe.Current;
        var test = HashSelfTest.Result;
        // The probed controls plus the Requiem CLI's names derived from them (rlimits, process_groups, …).
        var capabilities = probe.Capabilities.Concat(CliCapabilityNames.Derive(probe.Capabilities, probe.Platform)).ToList();
        string[] Names(CapabilityStatus status) => capabilities.Where(c => c.State == status).Select(c => c.Name).ToArray();
        return new HealthReport
        {
            HashPrimitive = "blake3",
            HashBackend = test.Passed ? CliHashBackend : "unavailable",
            HashImplementation = test.Passed ? HashImplementationName : "unavailable",
            HashSelfTestPassed = test.Passed,
            CasVersion = EngineInfo.CasFormatVersion,
            EngineName = EngineInfo.EngineName,
            EngineVersion = EngineInfo.EngineVersion,
            ContractVersion = EngineInfo.ContractVersion,
            Platform = probe.Platform,
            Isolator = probe.Isolator,
            SandboxCapabilities = new SandboxCapabilities
            {
                Enforced = Names(CapabilityStatus.Enforced),
                Partial = Names(CapabilityStatus.Partial),
                Unsupported = Names(CapabilityStatus.Unsupported),
            },
            Capabilities = capabilities,
            Tools = new Dictionary<string, string?> { ["requiem_launch"] = probe.Launcher, ["bwrap"] = probe.Bwrap, ["unshare"] = probe.Unshare, ["prlimit"] = probe.Prlimit, ["sh"] = probe.Sh, ["setpriv"] = probe.Setpriv, ["pids_cgroup"] = probe.PidsCgroupBase },
            ProbeNotes = probe.Notes,
            ProbeMilliseconds = Math.Round(probe.ProbeDuration.TotalMilliseconds, 1),
            Remote = config is null ? null : RemoteHealth.Check(config),
        };
    }

    /// <summary>The snake_case JSON document (the Requiem CLI's field names first).</summary>
    public string ToJson()
    {
        static JsonArray Arr(IEnumerable<string> s) => new(s.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        var tools = new JsonObject();
        foreach (var (k, v) in Tools) tools[k] = v;
        var o = new JsonObject
        {
            ["hash_primitive"] = HashPrimitive,
            ["hash_backend"] = HashBackend,
            ["hash_implementation"] = HashImplementation,
            ["hash_self_test_passed"] = HashSelfTestPassed,
            ["cas_version"] = CasVersion,
            ["engine"] = EngineName,
            ["engine_version"] = EngineVersion,
            ["contract_version"] = ContractVersion,
            ["platform"] = Platform,
            ["isolator"] = Isolator,
            ["sandbox_capabilities"] = new JsonObject
            {
                ["enforced"] = Arr(SandboxCapabilities.Enforced),
                ["partial"] = Arr(SandboxCapabilities.Partial),
                ["unsupported"] = Arr(SandboxCapabilities.Unsupported),
            },
            ["capabilities"] = new JsonArray(Capabilities.Select(c => (JsonNode?)new JsonObject
            {
                ["name"] = c.Name, ["status"] = c.Status, ["mechanism"] = c.Mechanism, ["detail"] = c.Detail,
            }).ToArray()),
            ["tools"] = tools,
            ["probe_notes"] = Arr(ProbeNotes),
            ["probe_ms"] = ProbeMilliseconds,
        };
        if (Remote is { } r)
        {
            o["remote"] = new JsonObject
            {
                ["configured"] = r.Configured, ["reachable"] = r.Reachable, ["kind"] = r.Kind, ["container"] = r.Container,
                ["remote"] = r.Remote, ["detail"] = r.Detail,
            };
        }
        return o.ToJsonString(JsonContract.Indented);
    }
}

/// <summary>One doctor check: Pass, Warn or Fail (Fail = a blocker).</summary>
public sealed class HealthCheck
{
    public required string Check { get; init; }
    public required string Status { get; init; }
    public required string Detail { get; init; }
}

/// <summary>The Requiem CLI's <c>doctor</c>: checks with a status; any Fail is a blocker.</summary>
public static class Doctor
{
    public static IReadOnlyList<HealthCheck> Run(string? casRoot, RequiemConfig? config, Exception? configError, SandboxProbe? probe = null)
    {
        probe ??= SandboxProbe.Current;
        var checks = new List<HealthCheck>();
        void Add(string c, string s, string d) => checks.Add(new HealthCheck { Check = c, Status = s, Detail = d });

        var test = HashSelfTest.Result;
        Add("hash_primitive", test.Passed ? "Pass" : "Fail", test.Passed ? "BLAKE3 passed its known-answer self-test" : "BLAKE3 self-test failed: " + test.Detail);

        if (configError is not null) Add("config", "Fail", configError.Message);
        else Add("config", "Pass", config?.SourcePath is { } p ? $"config '{p}' is valid" : "no config file: defaults in effect");

        if (casRoot is null) Add("cas", "Fail", "no CAS location could be determined");
        else
        {
            try
            {
                var store = CasStore.Open(casRoot, Hashing.HashPrimitive.Select(allowFallback: true));
                var probeBytes = System.Text.Encoding.UTF8.GetBytes("requiem doctor probe");
                var put = store.PutBytes(probeBytes);
                var back = store.ReadAllBytes(put.Hash);
                Add("cas", back.AsSpan().SequenceEqual(probeBytes) ? "Pass" : "Fail", $"store '{store.Root}' (format {EngineInfo.CasFormatVersion}) is writable and reads back verified");
            }
            catch (RequiemException ex)
            {
                Add("cas", "Fail", $"store '{casRoot}': {ex.Message}");
            }
        }

        if (RemoteHealth.Check(config ?? new RequiemConfig()) is { Configured: true } remote)
            Add("remote", remote.Reachable == true ? "Pass" : "Warn", remote.Remote is { } where ? $"{where}: {remote.Detail}" : remote.Detail);

        Add("sandbox_isolator", probe.Isolator is not null ? "Pass" : "Warn",
            probe.Isolator is not null ? $"runs are isolated with {probe.Isolator} (PID namespace)" :
            probe.Platform == "windows" ? (probe.JobObjectsWork ? "Job Objects" : "Job Objects unavailable") :
            "neither bwrap nor unshare can create a PID namespace: process-tree kill is partial (" + string.Join("; ", probe.Notes) + ")");
        foreach (var c in probe.Capabilities.Where(c => c.Name is Controls.NetworkIsolation or Controls.MemoryLimit or Controls.CpuLimit or Controls.OpenFilesLimit or Controls.ProcessLimit))
        {
            Add(c.Name, c.State == CapabilityStatus.Enforced ? "Pass" : "Warn", $"{c.Status}: {c.Mechanism} — {c.Detail}");
        }
        return checks;
    }
}
