using System.Text;
using System.Text.Json.Nodes;
using Requiem.Engine.Cas;

namespace Requiem.Engine.Execution;

/// <summary>One field that differs between a recorded and a replayed result.</summary>
public sealed class ReplayDifference
{
    public required string Field { get; init; }
    public string? Expected { get; init; }
    public string? Actual { get; init; }
    /// <summary>For stdout/stderr/output files: where the bytes first differ, with both sides shown (text) from the CAS.</summary>
    public string? Detail { get; init; }

    public override string ToString() => $"{Field}: expected {Expected ?? "null"}, actual {Actual ?? "null"}" + (Detail is null ? "" : " — " + Detail);
}

/// <summary>The outcome of <c>exec replay</c> (and of <c>-Engine dual</c>).</summary>
public sealed class ReplayReport
{
    public required bool Match { get; init; }
    public required ReplayDifference[] Differences { get; init; }
    public required string RecordedResultDigest { get; init; }
    public required string ReplayedResultDigest { get; init; }
    /// <summary>True when the whole result digest is identical (behaviour and sandbox/confidence).</summary>
    public bool ResultDigestMatch => RecordedResultDigest == ReplayedResultDigest;
    public required string RequestDigest { get; init; }
    public ExecResult? Recorded { get; init; }
    public ExecResult? Replayed { get; init; }
}

public static class Replay
{
    /// <summary>Compares behaviour field by field: request, exit code, signal, timeout, stdout, stderr, each output file.</summary>
    public static ReplayReport Compare(ExecResult recorded, ExecResult replayed, CasStore store)
    {
        var diffs = new List<ReplayDifference>();
        void Field(string name, string? e, string? a)
        {
            if (!string.Equals(e, a, StringComparison.Ordinal)) diffs.Add(new ReplayDifference { Field = name, Expected = e, Actual = a });
        }
        Field("request_digest", recorded.RequestDigest, replayed.RequestDigest);
        if (recorded.CommandDigest is not null && replayed.CommandDigest is not null && recorded.CommandDigest != replayed.CommandDigest)
            diffs.Add(new ReplayDifference
            {
                Field = "command_digest", Expected = recorded.CommandDigest, Actual = replayed.CommandDigest,
                Detail = $"the command binary changed: {replayed.Request?.Command ?? recorded.Request?.Command} has other bytes than when the result was recorded",
            });
        Field("exit_code", recorded.ExitCode?.ToString(), replayed.ExitCode?.ToString());
        Field("signal", recorded.Signal, replayed.Signal);
        Field("timed_out", recorded.TimedOut.ToString().ToLowerInvariant(), replayed.TimedOut.ToString().ToLowerInvariant());
        Blob("stdout", recorded.StdoutDigest, replayed.StdoutDigest, store, diffs);
        Field("stdout_truncated", recorded.StdoutTruncated.ToString().ToLowerInvariant(), replayed.StdoutTruncated.ToString().ToLowerInvariant());
        Blob("stderr", recorded.StderrDigest, replayed.StderrDigest, store, diffs);
        Field("stderr_truncated", recorded.StderrTruncated.ToString().ToLowerInvariant(), replayed.StderrTruncated.ToString().ToLowerInvariant());
        var rec = recorded.OutputFiles.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var rep = replayed.OutputFiles.ToDictionary(f => f.Path, StringComparer.Ordinal);
        foreach (var path in rec.Keys.Union(rep.Keys).Order(StringComparer.Ordinal))
        {
            rec.TryGetValue(path, out var e);
            rep.TryGetValue(path, out var a);
            if (e is null || a is null)
                diffs.Add(new ReplayDifference { Field = $"output_files[{path}]", Expected = e?.Digest, Actual = a?.Digest, Detail = e is null ? "produced only by the replay" : "not produced by the replay" });
            else Blob($"output_files[{path}]", e.Digest, a.Digest, store, diffs);
        }
        Metrics.MetricsRegistry.Add(Metrics.Counter.ReplayTotal);
        if (diffs.Count > 0) Metrics.MetricsRegistry.Add(Metrics.Counter.ReplayMismatch);
        return new ReplayReport
        {
            Match = diffs.Count == 0,
            Differences = diffs.ToArray(),
            RecordedResultDigest = recorded.ResultDigest,
            ReplayedResultDigest = replayed.ResultDigest,
            RequestDigest = replayed.RequestDigest,
            Recorded = recorded,
            Replayed = replayed,
        };
    }

    private static void Blob(string field, string expected, string actual, CasStore store, List<ReplayDifference> diffs)
    {
        if (string.Equals(expected, actual, StringComparison.Ordinal)) return;
        diffs.Add(new ReplayDifference { Field = field, Expected = expected, Actual = actual, Detail = DescribeDifference(expected, actual, store) });
    }

    /// <summary>Reads both blobs back from the CAS and shows where they first differ.</summary>
    public static string DescribeDifference(string expectedHash, string actualHash, CasStore store) =>
        DescribeDifference(expectedHash, actualHash, store, "expected", "actual");

    /// <summary><see cref="DescribeDifference(string, string, CasStore)"/> with the two sides named (e.g. the engines of a dual run).</summary>
    public static string DescribeDifference(string expectedHash, string actualHash, CasStore store, string expectedLabel, string actualLabel)
    {
        byte[] e, a;
        try
        {
            e = store.ReadAllBytes(expectedHash);
        }
        catch (RequiemException ex)
        {
            return $"the recorded bytes are not readable from the CAS ({ex.ErrorId})";
        }
        try
        {
            a = store.ReadAllBytes(actualHash);
        }
        catch (RequiemException ex)
        {
            return $"the replayed bytes are not readable from the CAS ({ex.ErrorId})";
        }
        var n = Math.Min(e.Length, a.Length);
        var i = 0;
        while (i < n && e[i] == a[i]) i++;
        var sizes = $"{e.Length} vs {a.Length} bytes";
        if (!IsText(e) || !IsText(a)) return $"first difference at byte {i} ({sizes}, binary)";
        var line = 1;
        for (var k = 0; k < i; k++) if (e[k] == (byte)'\n') line++;
        var start = Math.Max(0, i - 16);
        return $"first difference at byte {i} (line {line}; {sizes}): {expectedLabel} \"{Snippet(e, start)}\", {actualLabel} \"{Snippet(a, start)}\"";
    }

    private static bool IsText(byte[] b)
    {
        var span = b.AsSpan(0, Math.Min(b.Length, 8192));
        if (span.Contains((byte)0)) return false;
        try
        {
            new UTF8Encoding(false, true).GetString(span.Length < b.Length ? TrimPartial(span) : span);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    private static ReadOnlySpan<byte> TrimPartial(ReadOnlySpan<byte> s)
    {
        var end = s.Length;
        while (end > 0 && end > s.Length - 4 && (s[end - 1] & 0xC0) == 0x80) end--;
        if (end > 0 && s[end - 1] >= 0xC0) end--;
        return s[..end];
    }

    private static string Snippet(byte[] b, int start)
    {
        var len = Math.Min(48, b.Length - start);
        if (len <= 0) return "";
        var text = Encoding.UTF8.GetString(b, start, len);
        var sb = new StringBuilder();
        foreach (var c in text)
        {
            sb.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '"' => "\\\"",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return sb.ToString();
    }

    /// <summary>Loads a recorded result: a JSON file path, JSON text, or a result digest (looked up through the ref results/&lt;digest&gt;).</summary>
    public static ExecResult LoadRecorded(string pathOrDigest, CasStore store)
    {
        if (Hashing.Hex.IsDigest(pathOrDigest) && !File.Exists(pathOrDigest))
        {
            var digest = pathOrDigest.ToLowerInvariant();
            var manifestHash = store.GetRef("results/" + digest)
                ?? throw new RequiemException("ResultNotFound", ErrorKind.ObjectNotFound, $"No result {digest} is recorded in the CAS at '{store.Root}' (no ref results/{digest}).", digest);
            var manifest = store.ReadManifest(manifestHash);
            if (manifest.Kind != "exec_result" || manifest.Body is null)
                throw new RequiemException("InvalidResult", ErrorKind.InvalidData, $"Ref results/{digest} does not point at an exec_result manifest.", digest);
            return ExecResult.FromJson(manifest.Body.Value.GetRawText(), digest);
        }
        string text;
        try
        {
            text = Json.StrictText.ReadFile(pathOrDigest, "result file");
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"Result file '{pathOrDigest}' does not exist.", pathOrDigest, ex);
        }
        return ExecResult.FromJson(text, pathOrDigest);
    }

    /// <summary>Checks a result document's own result_digest (and, when given, its request_digest against a request).</summary>
    public static (bool ResultValid, string Actual) VerifyResultDigest(JsonObject document, Hashing.HashPrimitive hash)
    {
        var recorded = document["result_digest"]?.GetValue<string>() ?? "";
        var actual = ExecResult.ComputeDigest(document, hash);
        return (string.Equals(recorded, actual, StringComparison.OrdinalIgnoreCase), actual);
    }
}

/// <summary>The Requiem CLI's <c>digest verify --result</c>: does a stored result still match its own digests?</summary>
public sealed class ResultDigestVerification
{
    public required bool Valid { get; init; }
    public required string Expected { get; init; }
    public required string Actual { get; init; }
    /// <summary>null when no request was given to check request_digest against.</summary>
    public bool? RequestDigestValid { get; init; }
    public string? ExpectedRequestDigest { get; init; }
    public string? ActualRequestDigest { get; init; }
    public string? Path { get; init; }
}
