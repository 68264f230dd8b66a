using System.Text.Json.Nodes;
using Requiem.Engine.Execution;

namespace Requiem.Engine.Engines;

/// <summary>One contract field on which the Requiem engine and the external engine disagree.</summary>
public sealed class DualRunDifference
{
    /// <summary>The contract field (snake_case, e.g. <c>exit_code</c>, <c>stdout_digest</c>, <c>output_files[out.txt]</c>).</summary>
    public required string Field { get; init; }
    /// <summary>The Requiem engine's value (null when absent).</summary>
    public string? Requiem { get; init; }
    /// <summary>The external engine's value (null when absent).</summary>
    public string? External { get; init; }
    /// <summary>For stdout/stderr/output files whose bytes are both in the store: where they first differ.</summary>
    public string? Detail { get; init; }

    public override string ToString() => $"{Field}: requiem {Requiem ?? "null"}, external {External ?? "null"}" + (Detail is null ? "" : " — " + Detail);

    public JsonObject ToJsonNode() => new()
    {
        ["field"] = Field, ["requiem"] = Requiem, ["external"] = External, ["detail"] = Detail,
    };

    public static DualRunDifference FromJsonNode(JsonNode node) => new()
    {
        Field = node["field"]?.GetValue<string>() ?? "",
        Requiem = node["requiem"]?.GetValue<string>(),
        External = node["external"]?.GetValue<string>(),
        Detail = node["detail"]?.GetValue<string>(),
    };
}

/// <summary>What happened to the second engine of a dual run (the <c>status</c> of <c>dual_run</c>).</summary>
public static class DualRunStatus
{
    /// <summary>Both engines ran and every compared field is equal.</summary>
    public const string Match = "match";
    /// <summary>Both engines ran and at least one compared field differs.</summary>
    public const string Mismatch = "mismatch";
    /// <summary>The request fell outside <c>-DualSampleRate</c>: only the Requiem engine ran.</summary>
    public const string NotSampled = "not_sampled";
    /// <summary>No external engine is configured: only the Requiem engine ran, nothing was compared.</summary>
    public const string NoExternalEngine = "no_external_engine";
    /// <summary>The external engine failed (did not start, exited with an error, or wrote no valid result).</summary>
    public const string ExternalFailed = "external_failed";
}

/// <summary>
/// The comparison attached to a result by <c>-Engine dual</c> (property <c>DualRun</c>, JSON <c>dual_run</c>). A dual run
/// never fails on a mismatch: <see cref="Match"/> is true only when both engines ran and agreed on every compared field.
/// </summary>
public sealed class DualRunReport
{
    public required string Status { get; init; }
    /// <summary>True only when both engines ran and no compared field differs (false when nothing was compared).</summary>
    public bool Match => Status == DualRunStatus.Match;
    /// <summary>True when the external engine ran and its result was compared (Status match or mismatch).</summary>
    public bool Compared => Status is DualRunStatus.Match or DualRunStatus.Mismatch;
    public DualRunDifference[] Differences { get; init; } = Array.Empty<DualRunDifference>();
    /// <summary>The request fell inside the sample (always true at rate 1).</summary>
    public required bool Sampled { get; init; }
    public required double SampleRate { get; init; }
    public required string RequestDigest { get; init; }
    /// <summary>The external engine's path (null when none is configured).</summary>
    public string? ExternalEngine { get; init; }
    /// <summary>Where the engine path came from: <c>-EnginePath</c>, <c>$env:REQUIEM_EXTERNAL_ENGINE</c> or <c>engine.external_path</c>.</summary>
    public string? ExternalEngineSource { get; init; }
    /// <summary>The external engine process's exit code.</summary>
    public int? ExternalExitCode { get; init; }
    public string? RequiemResultDigest { get; init; }
    public string? ExternalResultDigest { get; init; }
    /// <summary>Whether the external result's own result_digest matches its content (computed the way this module computes it).</summary>
    public bool? ExternalResultDigestValid { get; init; }
    /// <summary>Status external_failed: the error id (ExternalEngineFailed, ExternalEngineOutputInvalid, ExternalEngineNotFound).</summary>
    public string? ErrorId { get; init; }
    /// <summary>Status external_failed or no_external_engine: what went wrong, in words.</summary>
    public string? Message { get; init; }
    /// <summary>The external engine's result as read back (not part of the JSON).</summary>
    public ExecResult? External { get; init; }

    public override string ToString() => Status + (Differences.Length > 0 ? ": " + string.Join(", ", Differences.Select(d => d.Field)) : "");

    /// <summary>The <c>dual_run</c> object of the -OutFile document (docs/CONTRACT.md).</summary>
    public JsonObject ToJsonNode() => new()
    {
        ["status"] = Status,
        ["match"] = Match,
        ["compared"] = Compared,
        ["sampled"] = Sampled,
        ["sample_rate"] = SampleRate,
        ["external_engine"] = ExternalEngine,
        ["external_engine_source"] = ExternalEngineSource,
        ["external_exit_code"] = ExternalExitCode,
        ["requiem_result_digest"] = RequiemResultDigest,
        ["external_result_digest"] = ExternalResultDigest,
        ["external_result_digest_valid"] = ExternalResultDigestValid,
        ["error_id"] = ErrorId,
        ["message"] = Message,
        ["differences"] = new JsonArray(Differences.Select(d => (JsonNode?)d.ToJsonNode()).ToArray()),
    };
}
