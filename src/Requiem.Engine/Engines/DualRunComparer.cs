using System.Globalization;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;

namespace Requiem.Engine.Engines;

/// <summary>
/// Compares two results of one request field by field over the whole result contract. Not compared: <c>engine</c> and
/// <c>engine_version</c> (they name the engine, so they differ by design) and the wall-clock fields <c>duration_ms</c>
/// and <c>started_at</c>. Everything else is, including <c>result_digest</c>.
/// </summary>
public static class DualRunComparer
{
    /// <summary>The fields compared, in the order differences are listed (output and input files expand per path).</summary>
    public static readonly string[] ComparedFields =
    {
        "contract_version", "hash_algorithm", "request_digest", "exit_code", "signal", "timed_out",
        "stdout_digest", "stdout_bytes", "stdout_truncated", "stderr_digest", "stderr_bytes", "stderr_truncated",
        "output_files", "missing_outputs", "skipped_outputs", "input_digests", "policy_digest", "request_blob_digest",
        "command_digest", "sandbox.enforced", "sandbox.not_enforced", "sandbox.filesystem", "sandbox.seccomp",
        "determinism_confidence.level", "determinism_confidence.score", "determinism_confidence.reasons", "result_digest",
    };

    /// <param name="store">When given, a differing stdout/stderr/output file whose two blobs are both in it gets a Detail
    /// saying where the bytes first differ.</param>
    public static DualRunDifference[] Compare(ExecResult requiem, ExecResult external, CasStore? store = null)
    {
        var diffs = new List<DualRunDifference>();
        void Field(string name, string? r, string? e, string? detail = null)
        {
            if (!string.Equals(r, e, StringComparison.Ordinal))
                diffs.Add(new DualRunDifference { Field = name, Requiem = r, External = e, Detail = detail });
        }
        void Blob(string name, string r, string e)
        {
            if (!string.Equals(r, e, StringComparison.Ordinal)) Field(name, r, e, DescribeBytes(r, e, store));
        }

        Field("contract_version", requiem.ContractVersion, external.ContractVersion);
        Field("hash_algorithm", requiem.HashAlgorithm, external.HashAlgorithm);
        Field("request_digest", requiem.RequestDigest, external.RequestDigest);
        Field("exit_code", Num(requiem.ExitCode), Num(external.ExitCode));
        Field("signal", requiem.Signal, external.Signal);
        Field("timed_out", Bool(requiem.TimedOut), Bool(external.TimedOut));
        Blob("stdout_digest", requiem.StdoutDigest, external.StdoutDigest);
        Field("stdout_bytes", Num(requiem.StdoutBytes), Num(external.StdoutBytes));
        Field("stdout_truncated", Bool(requiem.StdoutTruncated), Bool(external.StdoutTruncated));
        Blob("stderr_digest", requiem.StderrDigest, external.StderrDigest);
        Field("stderr_bytes", Num(requiem.StderrBytes), Num(external.StderrBytes));
        Field("stderr_truncated", Bool(requiem.StderrTruncated), Bool(external.StderrTruncated));

        var rOut = ByPath(requiem.OutputFiles, f => f.Path);
        var eOut = ByPath(external.OutputFiles, f => f.Path);
        foreach (var path in rOut.Keys.Union(eOut.Keys).Order(StringComparer.Ordinal))
        {
            rOut.TryGetValue(path, out var r);
            eOut.TryGetValue(path, out var e);
            var name = $"output_files[{path}]";
            if (r is null || e is null)
                Field(name, r?.Digest, e?.Digest, r is null ? "captured only by the external engine" : "captured only by the Requiem engine");
            else if (r.Digest != e.Digest) Blob(name, r.Digest, e.Digest);
            else Field(name + ".bytes", Num(r.Bytes), Num(e.Bytes));
        }
        Field("missing_outputs", List(requiem.MissingOutputs), List(external.MissingOutputs));
        Field("skipped_outputs", List(requiem.SkippedOutputs.Select(s => $"{s.Path}:{s.Reason}")), List(external.SkippedOutputs.Select(s => $"{s.Path}:{s.Reason}")));
        var rIn = ByPath(requiem.InputDigests, f => f.Path);
        var eIn = ByPath(external.InputDigests, f => f.Path);
        foreach (var path in rIn.Keys.Union(eIn.Keys).Order(StringComparer.Ordinal))
        {
            rIn.TryGetValue(path, out var r);
            eIn.TryGetValue(path, out var e);
            Field($"input_digests[{path}]", r?.Digest, e?.Digest);
        }
        Field("policy_digest", requiem.PolicyDigest, external.PolicyDigest);
        Field("request_blob_digest", requiem.RequestBlobDigest, external.RequestBlobDigest);
        Field("command_digest", requiem.CommandDigest, external.CommandDigest);
        Field("sandbox.enforced", List(requiem.Sandbox.Enforced), List(external.Sandbox.Enforced));
        Field("sandbox.not_enforced", List(requiem.Sandbox.NotEnforced), List(external.Sandbox.NotEnforced));
        Field("sandbox.filesystem", requiem.Sandbox.Filesystem, external.Sandbox.Filesystem);
        Field("sandbox.seccomp", Bool(requiem.Sandbox.Seccomp), Bool(external.Sandbox.Seccomp));
        Field("determinism_confidence.level", requiem.DeterminismConfidence.Level, external.DeterminismConfidence.Level);
        Field("determinism_confidence.score", requiem.DeterminismConfidence.Score.ToString("R", CultureInfo.InvariantCulture),
            external.DeterminismConfidence.Score.ToString("R", CultureInfo.InvariantCulture));
        Field("determinism_confidence.reasons", List(requiem.DeterminismConfidence.Reasons), List(external.DeterminismConfidence.Reasons));
        Field("result_digest", requiem.ResultDigest, external.ResultDigest);
        return diffs.ToArray();
    }

    private static Dictionary<string, T> ByPath<T>(IEnumerable<T> items, Func<T, string> path)
    {
        // A path listed twice keeps its first entry; the two lists then also differ as a whole through result_digest.
        var d = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var item in items) d.TryAdd(path(item), item);
        return d;
    }

    private static string? Num(long? v) => v?.ToString(CultureInfo.InvariantCulture);

    private static string? Bool(bool? v) => v is null ? null : v.Value ? "true" : "false";

    /// <summary>A list as its items in order, comma-separated (JSON text, so an item holding a comma stays unambiguous).</summary>
    private static string List(IEnumerable<string> items) =>
        new System.Text.Json.Nodes.JsonArray(items.Select(s => (System.Text.Json.Nodes.JsonNode?)System.Text.Json.Nodes.JsonValue.Create(s)).ToArray()).ToJsonString();

    private static string? DescribeBytes(string requiemDigest, string externalDigest, CasStore? store)
    {
        if (store is null || !Hashing.Hex.IsDigest(requiemDigest) || !Hashing.Hex.IsDigest(externalDigest)) return null;
        try
        {
            if (!store.Contains(requiemDigest) || !store.Contains(externalDigest)) return null;
        }
        catch (RequiemException)
        {
            return null;
        }
        return Replay.DescribeDifference(requiemDigest, externalDigest, store, "requiem", "external");
    }
}
