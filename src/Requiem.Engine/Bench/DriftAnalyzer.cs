using System.Globalization;
using System.Text;
using System.Text.Json;
using Requiem.Engine.Cas;
using Requiem.Engine.Json;

namespace Requiem.Engine.Bench;

/// <summary>The drift report (docs/CONTRACT.md "Drift report"): runs grouped by result digest, per case.</summary>
public sealed class DriftReport
{
    public const string CurrentVersion = "1";

    public required string DriftReportVersion { get; init; }
    public required string SpecDigest { get; init; }
    /// <summary>True when every case produced one result digest over all its runs.</summary>
    public required bool Deterministic { get; init; }
    /// <summary>Union of the fields that varied: exit_code, stdout, stderr, output_file:&lt;path&gt;.</summary>
    public required List<string> VaryingFields { get; init; }
    public required List<string> DriftingCases { get; init; }
    public required List<DriftCase> Cases { get; init; }

    public string ToJson(bool indented = true) => JsonSerializer.Serialize(this, indented ? JsonContract.Indented : JsonContract.Options);

    public static DriftReport Parse(string json, object? target = null)
    {
        var r = JsonContract.Deserialize<DriftReport>(json, "drift report", target);
        if (r.DriftReportVersion != CurrentVersion)
            throw new RequiemException("InvalidDriftReport", ErrorKind.InvalidData, $"drift_report_version \"{r.DriftReportVersion}\" is not supported.", target);
        return r;
    }

    /// <summary>The readable form (the Requiem CLI's <c>drift pretty</c>).</summary>
    public string ToPrettyString()
    {
        var sb = new StringBuilder();
        sb.Append(Deterministic
            ? $"Deterministic: all {Cases.Count} case(s) gave one result over every run."
            : $"DRIFT in {DriftingCases.Count} of {Cases.Count} case(s); varying: {string.Join(", ", VaryingFields)}").Append('\n');
        foreach (var c in Cases)
        {
            sb.Append('\n');
            if (c.Deterministic)
            {
                sb.Append($"  ok     {c.Name}  ({c.Runs} runs, 1 result {Short(c.Groups[0].ResultDigest)}, exit {c.Groups[0].ExitCode})\n");
                continue;
            }
            sb.Append($"  DRIFT  {c.Name}  ({c.Runs} runs, {c.DistinctResults} distinct results); varying: {string.Join(", ", c.VaryingFields)}\n");
            foreach (var g in c.Groups.Take(8))
                sb.Append($"         {g.Count,4} run(s) {Short(g.ResultDigest)}  exit {g.ExitCode}  stdout {Short(g.StdoutDigest)}  runs {Runs(g.Runs)}\n");
            if (c.Groups.Count > 8) sb.Append($"           … {c.Groups.Count - 8} more groups\n");
            foreach (var d in c.Differences)
            {
                sb.Append($"         first difference in {d.Field}, run {d.RunA} vs {d.RunB}");
                if (d.Offset is { } off) sb.Append($", byte {off} (line {d.Line}, col {d.Column})");
                sb.Append(":\n");
                sb.Append($"           run {d.RunA,-4}: {d.TextA}\n");
                sb.Append($"           run {d.RunB,-4}: {d.TextB}\n");
            }
        }
        return sb.ToString();
    }

    public override string ToString() => Deterministic ? "Deterministic" : $"Drift: {string.Join(", ", DriftingCases)} ({string.Join(", ", VaryingFields)})";

    private static string Short(string? d) => d is null ? "(none)" : d[..Math.Min(12, d.Length)];
    private static string Runs(List<int> runs) => runs.Count <= 10 ? string.Join(",", runs) : string.Join(",", runs.Take(10)) + ",…";
}

public sealed class DriftCase
{
    public required string Name { get; init; }
    public required string Command { get; init; }
    public required bool Deterministic { get; init; }
    /// <summary>Number of runs looked at (warm-up runs included: they are real executions too).</summary>
    public required int Runs { get; init; }
    public required int DistinctResults { get; init; }
    public required List<string> VaryingFields { get; init; }
    /// <summary>Runs grouped by result digest, largest group first.</summary>
    public required List<DriftGroup> Groups { get; init; }
    /// <summary>For each varying field, the first difference between the largest group and each other group.</summary>
    public required List<DriftDifference> Differences { get; init; }

    public override string ToString() => Deterministic ? $"{Name}: deterministic" : $"{Name}: drift in {string.Join(", ", VaryingFields)}";
}

public sealed class DriftGroup
{
    public required string ResultDigest { get; init; }
    public required int Count { get; init; }
    public required List<int> Runs { get; init; }
    public required int ExitCode { get; init; }
    public required string StdoutDigest { get; init; }
    public required string StderrDigest { get; init; }
    public required SortedDictionary<string, string?> OutputFiles { get; init; }
}

public sealed class DriftDifference
{
    /// <summary>exit_code, stdout, stderr or output_file:&lt;path&gt;.</summary>
    public required string Field { get; init; }
    public required int RunA { get; init; }
    public required int RunB { get; init; }
    public string? DigestA { get; init; }
    public string? DigestB { get; init; }
    /// <summary>Byte offset of the first differing byte (null for exit codes or when content is not in the CAS).</summary>
    public long? Offset { get; init; }
    /// <summary>1-based line and column (in bytes) of that offset.</summary>
    public int? Line { get; init; }
    public int? Column { get; init; }
    /// <summary>The differing line (or value) of run A and run B, escaped and shortened for display.</summary>
    public required string TextA { get; init; }
    public required string TextB { get; init; }
    /// <summary>False when the content could not be read back from the CAS (report from another machine).</summary>
    public required bool ContentAvailable { get; init; }
}

/// <summary>Groups runs by result digest and explains the variation (reads captured outputs back from the CAS).</summary>
public static class DriftAnalyzer
{
    public const int MaxExcerpt = 160;

    public static DriftReport Analyze(BenchReport report, CasStore? cas, CancellationToken cancel = default)
    {
        var cases = new List<DriftCase>();
        foreach (var c in report.Cases)
        {
            cancel.ThrowIfCancellationRequested();
            var groups = c.Runs.GroupBy(r => r.ResultDigest, StringComparer.Ordinal)
                .Select(g => g.OrderBy(r => r.Index).ToList())
                .OrderByDescending(g => g.Count).ThenBy(g => g[0].Index)
                .ToList();
            var varying = new List<string>();
            var diffs = new List<DriftDifference>();
            var reference = groups[0][0];
            foreach (var other in groups.Skip(1).Select(g => g[0]))
            {
                cancel.ThrowIfCancellationRequested();
                foreach (var d in Differences(reference, other, cas))
                {
                    if (!varying.Contains(d.Field)) varying.Add(d.Field);
                    if (diffs.Count < 12) diffs.Add(d);
                }
            }
            varying.Sort(FieldOrder);
            cases.Add(new DriftCase
            {
                Name = c.Name,
                Command = c.Command,
                Deterministic = groups.Count == 1,
                Runs = c.Runs.Count,
                DistinctResults = groups.Count,
                VaryingFields = varying,
                Groups = groups.Select(g => new DriftGroup
                {
                    ResultDigest = g[0].ResultDigest, Count = g.Count, Runs = g.Select(r => r.Index).ToList(),
                    ExitCode = g[0].ExitCode, StdoutDigest = g[0].StdoutDigest, StderrDigest = g[0].StderrDigest, OutputFiles = g[0].OutputFiles,
                }).ToList(),
                Differences = diffs,
            });
        }
        var all = cases.SelectMany(c => c.VaryingFields).Distinct().ToList();
        all.Sort(FieldOrder);
        return new DriftReport
        {
            DriftReportVersion = DriftReport.CurrentVersion,
            SpecDigest = report.SpecDigest,
            Deterministic = cases.All(c => c.Deterministic),
            VaryingFields = all,
            DriftingCases = cases.Where(c => !c.Deterministic).Select(c => c.Name).ToList(),
            Cases = cases,
        };
    }

    private static int FieldOrder(string a, string b)
    {
        static int Rank(string f) => f switch { "exit_code" => 0, "stdout" => 1, "stderr" => 2, _ => 3 };
        var r = Rank(a).CompareTo(Rank(b));
        return r != 0 ? r : string.CompareOrdinal(a, b);
    }

    private static IEnumerable<DriftDifference> Differences(BenchRun a, BenchRun b, CasStore? cas)
    {
        if (a.ExitCode != b.ExitCode)
        {
            yield return new DriftDifference
            {
                Field = "exit_code", RunA = a.Index, RunB = b.Index,
                TextA = a.ExitCode.ToString(CultureInfo.InvariantCulture), TextB = b.ExitCode.ToString(CultureInfo.InvariantCulture), ContentAvailable = true,
            };
        }
        if (a.StdoutDigest != b.StdoutDigest) yield return BlobDifference("stdout", a, b, a.StdoutDigest, b.StdoutDigest, cas);
        if (a.StderrDigest != b.StderrDigest) yield return BlobDifference("stderr", a, b, a.StderrDigest, b.StderrDigest, cas);
        foreach (var key in a.OutputFiles.Keys.Union(b.OutputFiles.Keys).OrderBy(k => k, StringComparer.Ordinal))
        {
            a.OutputFiles.TryGetValue(key, out var da);
            b.OutputFiles.TryGetValue(key, out var db);
            if (da != db) yield return BlobDifference("output_file:" + key, a, b, da, db, cas);
        }
    }

    private static DriftDifference BlobDifference(string field, BenchRun a, BenchRun b, string? da, string? db, CasStore? cas)
    {
        var bytesA = Read(cas, da);
        var bytesB = Read(cas, db);
        if ((da is not null && bytesA is null) || (db is not null && bytesB is null))
        {
            return new DriftDifference
            {
                Field = field, RunA = a.Index, RunB = b.Index, DigestA = da, DigestB = db, ContentAvailable = false,
                TextA = da is null ? "(absent)" : $"(content {da[..12]}… not in the CAS)",
                TextB = db is null ? "(absent)" : $"(content {db[..12]}… not in the CAS)",
            };
        }
        if (bytesA is null || bytesB is null)
        {
            return new DriftDifference
            {
                Field = field, RunA = a.Index, RunB = b.Index, DigestA = da, DigestB = db, ContentAvailable = true,
                TextA = bytesA is null ? "(file absent)" : Excerpt(bytesA, 0), TextB = bytesB is null ? "(file absent)" : Excerpt(bytesB, 0),
            };
        }
        var n = Math.Min(bytesA.Length, bytesB.Length);
        var off = 0;
        while (off < n && bytesA[off] == bytesB[off]) off++;
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i < off; i++) if (bytesA[i] == (byte)'\n') { line++; lineStart = i + 1; }
        return new DriftDifference
        {
            Field = field, RunA = a.Index, RunB = b.Index, DigestA = da, DigestB = db, ContentAvailable = true,
            Offset = off, Line = line, Column = off - lineStart + 1,
            TextA = Excerpt(bytesA, lineStart), TextB = Excerpt(bytesB, lineStart),
        };
    }

    private static byte[]? Read(CasStore? cas, string? digest)
    {
        if (cas is null || digest is null) return null;
        try { return cas.Contains(digest) ? cas.ReadAllBytes(digest) : null; }
        catch (RequiemException) { return null; }
    }

    /// <summary>The line starting at <paramref name="start"/>, control characters escaped, shortened.</summary>
    internal static string Excerpt(byte[] bytes, int start)
    {
        if (start >= bytes.Length) return "(end of output)";
        var end = Array.IndexOf(bytes, (byte)'\n', start);
        if (end < 0) end = bytes.Length;
        var text = Encoding.UTF8.GetString(bytes, start, Math.Min(end - start, MaxExcerpt * 4));
        var sb = new StringBuilder();
        foreach (var ch in text)
        {
            if (sb.Length >= MaxExcerpt) { sb.Append('…'); break; }
            sb.Append(ch switch { '\r' => "\\r", '\t' => "\\t", < ' ' => $"\\x{(int)ch:x2}", _ => ch.ToString() });
        }
        return sb.ToString();
    }
}
