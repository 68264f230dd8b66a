using System.Text.Json;
using Requiem.Engine.Hashing;

namespace Requiem.Engine.Health;

/// <summary>The Requiem CLI's <c>doctor</c> as one document: healthy when no check failed.</summary>
public sealed class DoctorReport
{
    public required bool Ok { get; init; }
    /// <summary>Each failed check as <c>check: detail</c>.</summary>
    public required IReadOnlyList<string> Blockers { get; init; }
    /// <summary>Each warning check as <c>check: detail</c>.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
    public required IReadOnlyList<HealthCheck> Checks { get; init; }

    public static DoctorReport From(IReadOnlyList<HealthCheck> checks) => new()
    {
        Ok = checks.All(c => c.Status != "Fail"),
        Blockers = checks.Where(c => c.Status == "Fail").Select(c => $"{c.Check}: {c.Detail}").ToArray(),
        Warnings = checks.Where(c => c.Status == "Warn").Select(c => $"{c.Check}: {c.Detail}").ToArray(),
        Checks = checks,
    };

    /// <summary><c>{"ok":…,"blockers":[…],"warnings":[…],"checks":[{"check","status","detail"}],"hash_primitive",…}</c>.</summary>
    public string ToJson(bool indented = false)
    {
        var passed = HashSelfTest.Result.Passed;
        return JsonSerializer.Serialize(new
        {
            ok = Ok,
            blockers = Blockers,
            warnings = Warnings,
            checks = Checks.Select(c => new { check = c.Check, status = c.Status.ToLowerInvariant(), detail = c.Detail }),
            hash_primitive = passed ? "blake3" : "unavailable",
            hash_backend = passed ? HealthReport.CliHashBackend : "unavailable",
            engine_version = EngineInfo.EngineVersion,
            contract_version = EngineInfo.ContractVersion,
        }, indented ? Json.JsonContract.Indented : Json.JsonContract.Options);
    }
}
