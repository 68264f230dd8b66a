using System.Text;
using System.Text.Json;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Bench;

/// <summary>Reading, checking and saving bench reports (files and CAS refs), with typed errors.</summary>
public static class BenchReportIo
{
    /// <summary>Kind of the CAS manifest that holds a report (its references keep every captured output alive).</summary>
    public const string ManifestKind = "bench_report";
    /// <summary>Refs made by <see cref="SaveToCas"/> live under this prefix.</summary>
    public const string RefPrefix = "bench/";

    public static BenchReport Parse(string json, object? target = null)
    {
        if (string.IsNullOrWhiteSpace(json))
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "The bench report is empty.", target);
        // A comparison or a spec handed where a report belongs gets a precise error instead of "unknown member".
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && !doc.RootElement.TryGetProperty("bench_report_version", out _))
            {
                throw new RequiemException("NotABenchReport", ErrorKind.InvalidData,
                    $"This document is {DescribeDocument(doc.RootElement)}, not a bench report: it has no bench_report_version field.", target);
            }
        }
        catch (JsonException ex)
        {
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"The bench report is not valid JSON: {ex.Message}", target, ex);
        }
        var report = JsonContract.Deserialize<BenchReport>(json, "bench report", target);
        return Validate(report, target);
    }

    /// <summary>
    /// What kind of Requiem document a JSON value is, by the members that mark each format (for errors that name what
    /// was given instead of what was expected): "a drift report (drift_report_version)", "a bench spec", ….
    /// </summary>
    public static string DescribeDocument(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
            return root.ValueKind switch { JsonValueKind.Array => "a JSON array", JsonValueKind.String => "a JSON string", JsonValueKind.Number => "a JSON number", _ => "a JSON " + root.ValueKind.ToString().ToLowerInvariant() };
        bool Has(string name) => root.TryGetProperty(name, out _);
        if (Has("bench_report_version")) return "a bench report (bench_report_version)";
        if (Has("drift_report_version")) return "a drift report (drift_report_version)";
        if (Has("bench_comparison_version")) return "a bench comparison (bench_comparison_version)";
        if (Has("bench_spec_version")) return "a bench spec (bench_spec_version)";
        if (Has("merkle_root") && Has("proof_version")) return "a proof bundle (merkle_root, proof_version)";
        if (Has("payloadType") && Has("signatures")) return "a signed proof (DSSE envelope: payloadType, signatures)";
        if (Has("archive_version")) return "a proof archive manifest (archive_version)";
        if (Has("result_digest") && Has("request_digest")) return "an execution result (result_digest)";
        if (Has("command") && Has("workspace_root")) return "an execution request (command, workspace_root)";
        if (Has("config_version")) return "a Requiem config (config_version)";
        if (Has("cas_version")) return "a CAS store config (cas_version)";
        if (Has("requiem_manifest")) return "a CAS manifest (requiem_manifest)";
        if (Has("cases")) return "a bench spec (cases without spec)";
        var names = root.EnumerateObject().Select(p => p.Name).Take(5).ToList();
        return names.Count == 0 ? "an empty JSON object" : "a JSON object with members " + string.Join(", ", names);
    }

    public static BenchReport Load(string path) => Parse(ReadText(path), path);

    /// <summary>A report file's text (strict UTF-8), with typed errors for a missing or unreadable file.</summary>
    public static string ReadText(string path)
    {
        try
        {
            return Json.StrictText.ReadFile(path, "bench report");
        }
        catch (FileNotFoundException ex) { throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"Bench report '{path}' does not exist.", path, ex); }
        catch (DirectoryNotFoundException ex) { throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"Bench report '{path}' does not exist.", path, ex); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot read '{path}': {ex.Message}", path, ex);
        }
    }

    /// <summary>Checks what the schema cannot: version, per-case consistency of runs and statistics, digests.</summary>
    public static BenchReport Validate(BenchReport r, object? target)
    {
        RequiemException Bad(string why) => new("InvalidBenchReport", ErrorKind.InvalidData, "Invalid bench report: " + why, target);
        if (Json.NullGuard.FindNull(r) is { } nullAt) throw Bad($"{nullAt} is null, which the format does not allow.");
        if (r.BenchReportVersion != BenchReport.CurrentVersion) throw Bad($"bench_report_version \"{r.BenchReportVersion}\" is not supported (expected \"{BenchReport.CurrentVersion}\").");
        if (!Hex.IsDigest(r.SpecDigest)) throw Bad("spec_digest is not a 64-character hex digest.");
        if (r.Cases is null || r.Cases.Count == 0) throw Bad("it has no cases.");
        if (r.Spec is null) throw Bad("spec is missing.");
        r.Spec.Validate();
        foreach (var c in r.Cases)
        {
            if (c?.Runs is null || c.Statistics?.WallMs is null) throw Bad($"case '{c?.Name}' lacks runs or statistics.");
            var measured = c.Runs.Count(x => !x.Warmup);
            if (measured == 0) throw Bad($"case '{c.Name}' has no measured runs.");
            if (c.Statistics.WallMs.Count != measured) throw Bad($"case '{c.Name}': statistics count {c.Statistics.WallMs.Count} does not match its {measured} measured runs.");
            foreach (var run in c.Runs)
            {
                if (!Hex.IsDigest(run.ResultDigest) || !Hex.IsDigest(run.StdoutDigest) || !Hex.IsDigest(run.StderrDigest))
                    throw Bad($"case '{c.Name}' run {run.Index} has a malformed digest.");
                if (double.IsNaN(run.WallMs) || run.WallMs < 0) throw Bad($"case '{c.Name}' run {run.Index} has a negative or missing wall time.");
            }
        }
        if (r.Cases.Select(c => c.Name).Distinct(StringComparer.Ordinal).Count() != r.Cases.Count) throw Bad("two cases have the same name.");
        return r;
    }

    public static void Save(BenchReport report, string path)
    {
        IO.AtomicFile.WriteAllText(path, report.ToJson(indented: true) + "\n");
    }

    /// <summary>
    /// Stores the report in the CAS as a <c>bench_report</c> manifest (referencing every captured output, so garbage
    /// collection keeps them) and points the ref <c>bench/&lt;name&gt;</c> at it. Returns the manifest's digest.
    /// </summary>
    public static string SaveToCas(CasStore cas, BenchReport report, string name)
    {
        var refs = report.Cases.SelectMany(c => c.Runs).SelectMany(r => new[] { r.StdoutDigest, r.StderrDigest }.Concat(r.OutputFiles.Values.Where(v => v is not null)!))
            .Select(d => d!).Distinct(StringComparer.Ordinal).Where(cas.Contains).OrderBy(d => d, StringComparer.Ordinal).ToList();
        using var body = JsonDocument.Parse(report.ToJson(indented: false));
        var put = cas.PutManifest(new CasManifest { Kind = ManifestKind, References = refs, Body = body.RootElement.Clone() });
        cas.SetRef(RefName(cas, name), put.Hash);
        Audit.AuditLog.Append(cas, Audit.AuditActions.RefSet, new[] { put.Hash }, // [audit]
            new Dictionary<string, object?> { ["ref"] = RefName(cas, name), ["kind"] = ManifestKind });
        return put.Hash;
    }

    public static BenchReport LoadFromCas(CasStore cas, string name)
    {
        var refName = RefName(cas, name);
        var hash = cas.GetRef(refName)
                   ?? throw new RequiemException("BaselineNotFound", ErrorKind.ObjectNotFound, $"There is no saved bench baseline '{name}' (ref '{refName}') in the CAS at '{cas.Root}'.", name);
        var manifest = cas.ReadManifest(hash);
        if (manifest.Kind != ManifestKind || manifest.Body is not { } body)
            throw new RequiemException("NotABenchReport", ErrorKind.InvalidData, $"Ref '{refName}' points at a '{manifest.Kind}' object, not a bench report.", name);
        return Parse(body.GetRawText(), name);
    }

    private static string RefName(CasStore cas, string name)
    {
        var full = name.StartsWith(RefPrefix, StringComparison.Ordinal) ? name : RefPrefix + name;
        cas.RefPath(full); // validates (InvalidRefName)
        return full;
    }
}
