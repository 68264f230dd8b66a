using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Execution;

/// <summary>A captured output file: path relative to the workspace root, CAS digest, size.</summary>
public sealed class OutputFileDigest
{
    public string Path { get; set; } = "";
    public string Digest { get; set; } = "";
    public long Bytes { get; set; }

    public override string ToString() => $"{Path} ({Bytes} bytes, {Digest})";
}

/// <summary>An input file's digest (<c>cas:</c> domain, i.e. the name it would have in the CAS).</summary>
public sealed class InputFileDigest
{
    public string Path { get; set; } = "";
    public string Digest { get; set; } = "";
}

/// <summary>Controls applied to one run (<c>enforced</c>) and requested-or-default controls that were not.</summary>
public sealed class SandboxReport
{
    public string[] Enforced { get; set; } = Array.Empty<string>();
    public string[] NotEnforced { get; set; } = Array.Empty<string>();
    /// <summary>The file-system view in force: <c>host</c>, <c>workspace</c> or <c>hermetic</c> (null in results of older engines).</summary>
    public string? Filesystem { get; set; }
    /// <summary>The seccomp-bpf filter was installed (null in results of older engines).</summary>
    public bool? Seccomp { get; set; }

    public override string ToString() =>
        "enforced: " + string.Join(", ", Enforced) + (NotEnforced.Length > 0 ? "; not enforced: " + string.Join(", ", NotEnforced) : "");
}

/// <summary>The result's <c>determinism_confidence</c>: how far a replay can be trusted to match, and why.</summary>
public sealed class DeterminismConfidence
{
    public string Level { get; set; } = "high";
    public double Score { get; set; } = 1.0;
    public string[] Reasons { get; set; } = Array.Empty<string>();

    public override string ToString() => $"{Level} ({Score:0.00})";
}

/// <summary>
/// The result of one execution (docs/CONTRACT.md "Execution result"). Pipeline objects carry the same fields as
/// PascalCase properties; <see cref="ToJson"/> writes the snake_case contract document.
/// </summary>
public sealed class ExecResult
{
    public string ContractVersion { get; set; } = EngineInfo.ContractVersion;
    public string Engine { get; set; } = EngineInfo.EngineName;
    public string EngineVersion { get; set; } = EngineInfo.EngineVersion;
    public string HashAlgorithm { get; set; } = HashPrimitive.Blake3Name;
    public string RequestDigest { get; set; } = "";
    public int? ExitCode { get; set; }
    public string? Signal { get; set; }
    public bool TimedOut { get; set; }
    public string StdoutDigest { get; set; } = "";
    public long StdoutBytes { get; set; }
    public bool StdoutTruncated { get; set; }
    public string StderrDigest { get; set; } = "";
    public long StderrBytes { get; set; }
    public bool StderrTruncated { get; set; }
    public OutputFileDigest[] OutputFiles { get; set; } = Array.Empty<OutputFileDigest>();
    public string[] MissingOutputs { get; set; } = Array.Empty<string>();
    /// <summary>Declared outputs that exist but were not captured (special files, hard links, too large), with the reason.</summary>
    public SkippedOutput[] SkippedOutputs { get; set; } = Array.Empty<SkippedOutput>();
    public InputFileDigest[] InputDigests { get; set; } = Array.Empty<InputFileDigest>();
    public string PolicyDigest { get; set; } = "";
    public string RequestBlobDigest { get; set; } = "";
    /// <summary><c>cas:</c> digest of the resolved command binary, so a toolchain change shows on replay (null in older results).</summary>
    public string? CommandDigest { get; set; }
    public SandboxReport Sandbox { get; set; } = new();
    public DeterminismConfidence DeterminismConfidence { get; set; } = new();
    public long DurationMs { get; set; }
    public string StartedAt { get; set; } = "";
    public string ResultDigest { get; set; } = "";

    // ---- pipeline conveniences (not part of the JSON document) ----

    /// <summary>The CAS manifest (kind <c>exec_result</c>) that stores this result; ref <c>results/&lt;ResultDigest&gt;</c> names it.</summary>
    public string? ManifestDigest { get; set; }
    /// <summary>The CAS root the blobs were stored in.</summary>
    public string? CasRoot { get; set; }
    /// <summary>Captured stdout as UTF-8 text (only with -IncludeOutput; bounded by max_output_bytes).</summary>
    public string? StdoutText { get; set; }
    /// <summary>Captured stderr as UTF-8 text (only with -IncludeOutput).</summary>
    public string? StderrText { get; set; }
    /// <summary>Set by <c>-Engine dual</c>: the comparison with the external engine (JSON <c>dual_run</c> in -OutFile only).</summary>
    public Engines.DualRunReport? DualRun { get; set; }
    /// <summary>The request this result answers (normalized).</summary>
    public ExecRequest? Request { get; set; }
    /// <summary>True when this result came from the action cache (<c>-Cache Read|ReadWrite</c>): nothing ran, outputs were restored.</summary>
    public bool CacheHit { get; set; }
    /// <summary>The action-cache key (lowercase hex) looked up or written; null when the cache was off. JSON: <c>cache_key</c>.</summary>
    public string? CacheKey { get; set; }

    /// <summary>The fields that are excluded from <c>result_digest</c> (wall-clock, the digest itself, a dual run's comparison, and the action cache's hit and key).</summary>
    public static readonly string[] DigestExcludedFields = { "result_digest", "duration_ms", "started_at", "dual_run", "cache_hit", "cache_key" };

    public JsonObject ToJsonNode(bool includeDigest = true)
    {
        var o = new JsonObject
        {
            ["contract_version"] = ContractVersion,
            ["engine"] = Engine,
            ["engine_version"] = EngineVersion,
            ["hash_algorithm"] = HashAlgorithm,
            ["request_digest"] = RequestDigest,
            ["exit_code"] = ExitCode,
            ["signal"] = Signal,
            ["timed_out"] = TimedOut,
            ["stdout_digest"] = StdoutDigest,
            ["stdout_bytes"] = StdoutBytes,
            ["stdout_truncated"] = StdoutTruncated,
            ["stderr_digest"] = StderrDigest,
            ["stderr_bytes"] = StderrBytes,
            ["stderr_truncated"] = StderrTruncated,
            ["output_files"] = new JsonArray(OutputFiles.Select(f => (JsonNode?)new JsonObject
            {
                ["path"] = f.Path, ["digest"] = f.Digest, ["bytes"] = f.Bytes,
            }).ToArray()),
            ["missing_outputs"] = StrArray(MissingOutputs),
            ["input_digests"] = new JsonArray(InputDigests.Select(f => (JsonNode?)new JsonObject
            {
                ["path"] = f.Path, ["digest"] = f.Digest,
            }).ToArray()),
            ["policy_digest"] = PolicyDigest,
            ["request_blob_digest"] = RequestBlobDigest,
            ["sandbox"] = SandboxNode(),
            ["determinism_confidence"] = new JsonObject
            {
                ["level"] = DeterminismConfidence.Level,
                ["score"] = DeterminismConfidence.Score,
                ["reasons"] = StrArray(DeterminismConfidence.Reasons),
            },
            ["duration_ms"] = DurationMs,
            ["started_at"] = StartedAt,
        };
        // Written only when something was skipped, so results recorded before this field existed keep their digests.
        if (SkippedOutputs.Length > 0)
        {
            o["skipped_outputs"] = new JsonArray(SkippedOutputs.Select(f => (JsonNode?)new JsonObject
            {
                ["path"] = f.Path, ["reason"] = f.Reason, ["detail"] = f.Detail,
            }).ToArray());
        }
        if (CommandDigest is not null) o["command_digest"] = CommandDigest;
        // Written only when the action cache was consulted; not covered by result_digest (a hit and a run agree).
        if (CacheKey is not null)
        {
            o["cache_hit"] = CacheHit;
            o["cache_key"] = CacheKey;
        }
        if (includeDigest) o["result_digest"] = ResultDigest;
        return o;
    }

    private JsonObject SandboxNode()
    {
        var s = new JsonObject { ["enforced"] = StrArray(Sandbox.Enforced), ["not_enforced"] = StrArray(Sandbox.NotEnforced) };
        if (Sandbox.Filesystem is not null) s["filesystem"] = Sandbox.Filesystem;
        if (Sandbox.Seccomp is not null) s["seccomp"] = Sandbox.Seccomp;
        return s;
    }

    public string ToJson(bool indented = true) => ToJsonNode().ToJsonString(indented ? JsonContract.Indented : JsonContract.Options);

    /// <summary><c>result_digest</c> over this object's fields (wall-clock fields excluded).</summary>
    public string ComputeDigest(HashPrimitive hash)
    {
        // The node is built here and owned by nobody else, so the excluded fields are dropped from it without a copy.
        var document = ToJsonNode(includeDigest: false);
        foreach (var f in DigestExcludedFields) document.Remove(f);
        return hash.HashBytes(CanonicalJson.CanonicalizeShared(document.ToJsonString()), HashDomain.Result);
    }

    /// <summary>
    /// <c>res:</c> ‖ RFC 8785 canonical JSON of a result document without <c>result_digest</c>, <c>duration_ms</c>
    /// and <c>started_at</c>; every other field present (including fields added by newer engines) is covered.
    /// </summary>
    public static string ComputeDigest(JsonObject document, HashPrimitive hash)
    {
        var copy = (JsonObject)document.DeepClone();
        foreach (var f in DigestExcludedFields) copy.Remove(f);
        return hash.HashBytes(CanonicalJson.Canonicalize(copy.ToJsonString()), HashDomain.Result);
    }

    private static JsonArray StrArray(IEnumerable<string> items) => new(items.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());

    /// <summary>Reads a result document (as written by -OutFile or stored in the CAS). Unknown extra fields are kept for digesting but ignored here.</summary>
    public static ExecResult FromJson(string json, object? target = null)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "The result is not valid JSON: " + ex.Message, target, ex);
        }
        if (node is not JsonObject o)
            throw new RequiemException("InvalidResult", ErrorKind.InvalidData, "A result must be a JSON object.", target);
        return FromJsonNode(o, target);
    }

    public static ExecResult FromJsonNode(JsonObject o, object? target = null)
    {
        // Re-parse so every value is JSON-backed (a node built in code may hold a long where we read an int).
        o = JsonNode.Parse(o.ToJsonString())!.AsObject();
        try
        {
            string S(string n) => o[n]?.GetValue<string>() ?? "";
            long L(string n) => o[n]?.GetValue<long>() ?? 0;
            bool B(string n) => o[n]?.GetValue<bool>() ?? false;
            string[] A(JsonNode? n) => n is JsonArray a ? a.Select(x => x?.GetValue<string>() ?? "").ToArray() : Array.Empty<string>();
            if (o["request_digest"] is null || o["stdout_digest"] is null)
                throw new RequiemException("InvalidResult", ErrorKind.InvalidData, "The document is not an execution result (no request_digest / stdout_digest).", target);
            var conf = o["determinism_confidence"] as JsonObject;
            var sandbox = o["sandbox"] as JsonObject;
            return new ExecResult
            {
                ContractVersion = S("contract_version"),
                Engine = S("engine"),
                EngineVersion = S("engine_version"),
                HashAlgorithm = o["hash_algorithm"] is null ? HashPrimitive.Blake3Name : S("hash_algorithm"),
                RequestDigest = S("request_digest"),
                ExitCode = o["exit_code"]?.GetValue<int>(),
                Signal = o["signal"]?.GetValue<string>(),
                TimedOut = B("timed_out"),
                StdoutDigest = S("stdout_digest"),
                StdoutBytes = L("stdout_bytes"),
                StdoutTruncated = B("stdout_truncated"),
                StderrDigest = S("stderr_digest"),
                StderrBytes = L("stderr_bytes"),
                StderrTruncated = B("stderr_truncated"),
                OutputFiles = (o["output_files"] as JsonArray ?? new JsonArray()).Select(x => new OutputFileDigest
                {
                    Path = x!["path"]!.GetValue<string>(),
                    Digest = x["digest"]!.GetValue<string>(),
                    Bytes = x["bytes"]?.GetValue<long>() ?? 0,
                }).ToArray(),
                MissingOutputs = A(o["missing_outputs"]),
                SkippedOutputs = (o["skipped_outputs"] as JsonArray ?? new JsonArray()).Select(x => new SkippedOutput
                {
                    Path = x!["path"]!.GetValue<string>(),
                    Reason = x["reason"]!.GetValue<string>(),
                    Detail = x["detail"]?.GetValue<string>() ?? "",
                }).ToArray(),
                InputDigests = (o["input_digests"] as JsonArray ?? new JsonArray()).Select(x => new InputFileDigest
                {
                    Path = x!["path"]!.GetValue<string>(),
                    Digest = x["digest"]!.GetValue<string>(),
                }).ToArray(),
                PolicyDigest = S("policy_digest"),
                RequestBlobDigest = S("request_blob_digest"),
                Sandbox = new SandboxReport
                {
                    Enforced = A(sandbox?["enforced"]), NotEnforced = A(sandbox?["not_enforced"]),
                    Filesystem = sandbox?["filesystem"]?.GetValue<string>(), Seccomp = sandbox?["seccomp"]?.GetValue<bool>(),
                },
                CommandDigest = o["command_digest"]?.GetValue<string>(),
                DeterminismConfidence = new DeterminismConfidence
                {
                    Level = conf?["level"]?.GetValue<string>() ?? "",
                    Score = conf?["score"]?.GetValue<double>() ?? 0,
                    Reasons = A(conf?["reasons"]),
                },
                DurationMs = L("duration_ms"),
                StartedAt = S("started_at"),
                ResultDigest = S("result_digest"),
                CacheHit = B("cache_hit"),
                CacheKey = o["cache_key"]?.GetValue<string>(),
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new RequiemException("InvalidResult", ErrorKind.InvalidData, "The result document has a field of the wrong type: " + ex.Message, target, ex);
        }
    }
}
