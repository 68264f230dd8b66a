using System.Text.Json;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.Health;

/// <summary>The Requiem CLI's <c>validate-replacement</c>: is this installation ready to replace the previous engine?</summary>
public sealed class ReplacementReport
{
    public required bool Ok { get; init; }
    /// <summary>What must be fixed before cutover (empty when <see cref="Ok"/>).</summary>
    public required IReadOnlyList<string> Blockers { get; init; }
    /// <summary>What weakens guarantees but does not block cutover.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
    public required string HashPrimitive { get; init; }
    /// <summary>The Requiem CLI's value (<c>vendored</c>), or <c>unavailable</c>.</summary>
    public required string HashBackend { get; init; }
    /// <summary>The finer name of the BLAKE3 implementation (<c>managed-simd</c>), or <c>unavailable</c>.</summary>
    public string HashImplementation { get; init; } = "unavailable";
    public required string EngineVersion { get; init; }
    public required string ContractVersion { get; init; }
    public required string CasVersion { get; init; }
    public required IReadOnlyList<HealthCheck> Checks { get; init; }

    /// <summary>The Requiem CLI's JSON: <c>{"ok":…,"blockers":[…],"hash_primitive":"blake3","hash_backend":"vendored",…}</c>.</summary>
    public string ToJson(bool indented = false) => JsonSerializer.Serialize(new
    {
        ok = Ok,
        blockers = Blockers,
        warnings = Warnings,
        hash_primitive = HashPrimitive,
        hash_backend = HashBackend,
        hash_implementation = HashImplementation,
        engine_version = EngineVersion,
        contract_version = ContractVersion,
        cas_version = CasVersion,
    }, indented ? Json.JsonContract.Indented : Json.JsonContract.Options);
}

public static class ReplacementReadiness
{
    /// <summary>
    /// Every doctor Fail is a blocker; so is a config that allows the hash fallback (the replacement must fail
    /// closed) and a machine that cannot kill a run's whole process tree. Doctor warnings are carried as warnings.
    /// </summary>
    public static ReplacementReport Evaluate(string? casRoot, RequiemConfig? config, Exception? configError, SandboxProbe? probe = null)
    {
        probe ??= SandboxProbe.Current;
        var checks = Doctor.Run(casRoot, config, configError, probe);
        var blockers = new List<string>();
        var warnings = new List<string>();
        foreach (var c in checks)
        {
            if (c.Status == "Fail") blockers.Add($"{c.Check}: {c.Detail}");
            else if (c.Status == "Warn") warnings.Add($"{c.Check}: {c.Detail}");
        }
        var selfTest = HashSelfTest.Result;
        if (!selfTest.Passed && blockers.All(b => !b.StartsWith("hash_primitive", StringComparison.Ordinal)))
            blockers.Add("hash_primitive: hash_unavailable_blake3 (" + selfTest.Detail + ")");
        if (config?.Hash.AllowFallback == true)
            blockers.Add("hash_fallback: the config allows a SHA-256 fallback (hash.allow_fallback); a replacement must fail closed");
        if (probe.Isolator is null && !probe.JobObjectsWork)
            blockers.Add("process_tree_kill: neither a PID namespace nor Job Objects are available, so timeouts cannot be enforced on a whole process tree");

        return new ReplacementReport
        {
            Ok = blockers.Count == 0,
            Blockers = blockers,
            Warnings = warnings,
            HashPrimitive = selfTest.Passed ? "blake3" : "unavailable",
            HashBackend = selfTest.Passed ? HealthReport.CliHashBackend : "unavailable",
            HashImplementation = selfTest.Passed ? HealthReport.HashImplementationName : "unavailable",
            EngineVersion = EngineInfo.EngineVersion,
            ContractVersion = EngineInfo.ContractVersion,
            CasVersion = EngineInfo.CasFormatVersion,
            Checks = checks,
        };
    }
}
