using System.Globalization;
using System.Text;
using Requiem.Engine.Cas;
using Requiem.Engine.Proof;

namespace Requiem.Engine.Bench;

public enum CiProvider
{
    /// <summary>Detect from the environment: GITHUB_ACTIONS=true → GitHub, TF_BUILD=True → Azure DevOps, else none.</summary>
    Auto,
    GitHub,
    AzureDevOps,
    None,
}

/// <summary>What a CI writer should emit: logging-command lines for the log, and a markdown summary.</summary>
public sealed class CiOutput
{
    public required CiProvider Provider { get; init; }
    /// <summary>Lines for the build log (annotations / logging commands), written to the host, never to the pipeline.</summary>
    public required List<string> LogLines { get; init; }
    /// <summary>Markdown for the step summary (GitHub: appended to $GITHUB_STEP_SUMMARY; Azure: task.uploadsummary).</summary>
    public required string Markdown { get; init; }
}

/// <summary>
/// Formats comparisons, drift reports and bench reports for CI systems: GitHub Actions workflow commands
/// (<c>::error title=…::msg</c>, <c>::warning</c>, <c>::notice</c>) plus a step-summary markdown table, or Azure
/// DevOps logging commands (<c>##vso[task.logissue type=error]msg</c>, <c>##vso[task.uploadsummary]path</c>).
/// </summary>
public static class CiReporter
{
    public const string SupportedInputs =
        "pass a bench comparison, drift report, bench report, proof verification (Test-RequiemProof) or CAS verification (Test-RequiemCas)";

    /// <summary>Annotations beyond this many per report are summed up in one line, so a badly broken store does not flood the log.</summary>
    private const int MaxAnnotations = 20;
    public static CiProvider Detect(Func<string, string?> env)
    {
        if (string.Equals(env("GITHUB_ACTIONS"), "true", StringComparison.OrdinalIgnoreCase)) return CiProvider.GitHub;
        if (string.Equals(env("TF_BUILD"), "true", StringComparison.OrdinalIgnoreCase)) return CiProvider.AzureDevOps;
        return CiProvider.None;
    }

    public static CiOutput Format(object input, CiProvider provider)
    {
        var issues = new List<(string Level, string Title, string Message)>();
        string markdown = input switch
        {
            BenchComparison c => Comparison(c, issues),
            DriftReport d => Drift(d, issues),
            BenchReport r => Report(r, issues),
            ProofVerification p => Proof(p, issues),
            CasVerifyReport v => Cas(v, issues),
            _ => throw new RequiemException("UnsupportedInputType", ErrorKind.InvalidArgument,
                $"Cannot write a CI report for a {input.GetType().Name}; {SupportedInputs}.", input),
        };
        var lines = issues.Select(i => provider switch
        {
            CiProvider.GitHub => $"::{i.Level} title={EscapeGitHubProperty(i.Title)}::{EscapeGitHubData(i.Message)}",
            CiProvider.AzureDevOps => $"##vso[task.logissue type={(i.Level == "error" ? "error" : "warning")}]{EscapeAzure(i.Title + ": " + i.Message)}",
            _ => $"{i.Level}: {i.Title}: {i.Message}",
        }).ToList();
        return new CiOutput { Provider = provider, LogLines = lines, Markdown = markdown };
    }

    private static string Comparison(BenchComparison c, List<(string, string, string)> issues)
    {
        var sb = new StringBuilder();
        sb.Append(c.Regressed ? "### :x: Performance regression\n\n" : "### :white_check_mark: No performance regression\n\n");
        sb.Append($"Threshold {N(c.Threshold)}%, confidence {N(c.Confidence * 100)}%, gated: {string.Join(", ", c.GatedMetrics)}");
        if (c.SpecChanged) sb.Append(" — **the bench spec changed between baseline and current**");
        sb.Append("\n\n| Case | Metric | Baseline median | Current median | Change | 95% CI of ratio | p (> threshold) | Verdict |\n|---|---|---:|---:|---:|---|---:|---|\n");
        foreach (var cc in c.Cases)
        {
            foreach (var m in cc.Metrics.Where(m => m.Gated))
            {
                sb.Append($"| {Md(cc.Name)} | {m.Metric} | {N(m.BaselineMedian)} | {N(m.CurrentMedian)} | {(m.ChangePercent >= 0 ? "+" : "")}{N(m.ChangePercent)}% | {N(m.RatioCiLow)}–{N(m.RatioCiHigh)} | {P(m.PValueOverThreshold)} | {(m.Regressed ? ":x: regressed" : m.Improved ? ":rocket: improved" : m.Verdict)} |\n");
                if (m.Regressed) issues.Add(("error", $"Performance regression: {cc.Name}", $"{m.Metric} {m.Statement}"));
                else if (m.ChangePercent > c.Threshold) issues.Add(("warning", $"Possible slowdown: {cc.Name}", $"{m.Metric} {m.Statement}"));
            }
        }
        return sb.ToString();
    }

    private static string Drift(DriftReport d, List<(string, string, string)> issues)
    {
        var sb = new StringBuilder();
        sb.Append(d.Deterministic ? "### :white_check_mark: Deterministic\n\n" : "### :warning: Drift detected\n\n");
        sb.Append("| Case | Runs | Distinct results | Varying fields |\n|---|---:|---:|---|\n");
        foreach (var c in d.Cases)
        {
            sb.Append($"| {Md(c.Name)} | {c.Runs} | {c.DistinctResults} | {(c.Deterministic ? "—" : string.Join(", ", c.VaryingFields))} |\n");
            if (!c.Deterministic)
            {
                var first = c.Differences.FirstOrDefault();
                var detail = first is null ? "" : $"; first difference in {first.Field}: '{first.TextA}' vs '{first.TextB}'";
                issues.Add(("error", $"Non-deterministic: {c.Name}", $"{c.DistinctResults} distinct results over {c.Runs} runs; varying {string.Join(", ", c.VaryingFields)}{detail}"));
            }
        }
        return sb.ToString();
    }

    private static string Report(BenchReport r, List<(string, string, string)> issues)
    {
        var sb = new StringBuilder();
        sb.Append($"### Benchmark {(r.Spec.Name is { } n ? Md(n) : "")}\n\n{r.Machine.Cores} cores, {Md(r.Machine.Os)}, {Md(r.Machine.Runtime)}, measured with {r.Measurement}\n\n");
        sb.Append("| Case | Runs | Median (ms) | Mean ± sd (ms) | Min (ms) | p95 (ms) | Max (ms) | Outliers | Failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var c in r.Cases)
        {
            var w = c.Statistics.WallMs;
            sb.Append($"| {Md(c.Name)} | {w.Count} | {N(w.Median)} | {N(w.Mean)} ± {N(w.Stddev)} | {N(w.Min)} | {N(w.P95)} | {N(w.Max)} | {w.OutliersLow + w.OutliersHigh} | {c.Statistics.FailedRuns} |\n");
            if (c.Statistics.FailedRuns > 0) issues.Add(("warning", $"Failed runs: {c.Name}", $"{c.Statistics.FailedRuns} of {w.Count} measured runs exited non-zero or timed out"));
        }
        return sb.ToString();
    }

    private static string Proof(ProofVerification p, List<(string, string, string)> issues)
    {
        var name = p.Path ?? (p.MerkleRoot is { } root ? "proofs/" + root : "proof");
        var sb = new StringBuilder();
        sb.Append(p.Valid ? "### :white_check_mark: Proof verified\n\n" : "### :x: Proof invalid\n\n");
        sb.Append("| Proof | Merkle root | Signed | Objects checked | Verdict |\n|---|---|---|---:|---|\n");
        var signed = p.SignatureVerified ? "verified" : p.Signed ? "not verified" : "no";
        var verdict = p.Valid ? ":white_check_mark: valid" : ":x: " + Md(string.Join("; ", p.Reasons));
        sb.Append($"| {Md(name)} | {p.MerkleRoot ?? "—"} | {signed} | {p.ObjectsChecked} | {verdict} |\n");
        if (!p.Valid) issues.Add(("error", $"Proof invalid: {name}", string.Join("; ", p.Reasons)));
        return sb.ToString();
    }

    private static string Cas(CasVerifyReport v, List<(string, string, string)> issues)
    {
        var sb = new StringBuilder();
        sb.Append(v.Valid ? "### :white_check_mark: CAS verified\n\n" : "### :x: CAS store invalid\n\n");
        sb.Append($"{Md(v.Root)}: {v.Checked} of {v.Total} object(s) re-hashed ({v.Mode}), {v.BytesChecked} bytes\n\n");
        sb.Append("| Object | Problem |\n|---|---|\n");
        foreach (var c in v.Corrupt) sb.Append($"| {c.Hash} | :x: corrupt: {Md(c.Reason)} |\n");
        foreach (var m in v.Missing) sb.Append($"| {m.Hash} | :x: missing (referenced by {Md(m.ReferencedBy)}) |\n");
        foreach (var m in v.InvalidManifests) sb.Append($"| {m.Hash} | :x: invalid manifest (referenced by {Md(m.ReferencedBy)}): {Md(m.Reason)} |\n");
        if (v.Valid) sb.Append($"| all {v.Checked} checked | :white_check_mark: none |\n");
        var problems = v.Corrupt.Select(c => ($"Corrupt CAS object: {c.Hash}", $"{c.Reason} ({c.Path})"))
            .Concat(v.Missing.Select(m => ($"Missing CAS object: {m.Hash}", $"referenced by {m.ReferencedBy} but not in the store at {v.Root}")))
            .Concat(v.InvalidManifests.Select(m => ($"Invalid CAS manifest: {m.Hash}", $"referenced by {m.ReferencedBy}: {m.Reason}")))
            .ToList();
        foreach (var (title, message) in problems.Take(MaxAnnotations)) issues.Add(("error", title, message));
        if (problems.Count > MaxAnnotations)
            issues.Add(("error", "CAS store invalid", $"{problems.Count - MaxAnnotations} more problem(s) in {v.Root}; see the step summary or Test-RequiemCas"));
        return sb.ToString();
    }

    /// <summary>
    /// The outcome of one or more reports as step outputs (GitHub <c>GITHUB_OUTPUT</c>): regressed / regressed_cases for
    /// comparisons, deterministic / nondeterministic_cases for drift, proof_valid / invalid_proofs for proofs,
    /// cas_valid / cas_corrupt / cas_missing / cas_invalid_manifests for CAS verifications. Several reports of a kind are combined (valid only if all are).
    /// </summary>
    public static List<KeyValuePair<string, string>> Outcome(IEnumerable<object> inputs)
    {
        var list = inputs.ToList();
        var o = new List<KeyValuePair<string, string>>();
        void Add(string k, object v) => o.Add(new(k, v is bool b ? (b ? "true" : "false") : Convert.ToString(v, CultureInfo.InvariantCulture) ?? ""));
        var comparisons = list.OfType<BenchComparison>().ToList();
        if (comparisons.Count > 0)
        {
            Add("regressed", comparisons.Any(c => c.Regressed));
            Add("regressed_cases", string.Join(",", comparisons.SelectMany(c => c.RegressedCases).Distinct(StringComparer.Ordinal)));
        }
        var drifts = list.OfType<DriftReport>().ToList();
        if (drifts.Count > 0)
        {
            Add("deterministic", drifts.All(d => d.Deterministic));
            Add("nondeterministic_cases", string.Join(",", drifts.SelectMany(d => d.DriftingCases).Distinct(StringComparer.Ordinal)));
        }
        var reports = list.OfType<BenchReport>().ToList();
        if (reports.Count > 0) Add("bench_failed_runs", reports.Sum(r => r.Cases.Sum(c => c.Statistics.FailedRuns)));
        var proofs = list.OfType<ProofVerification>().ToList();
        if (proofs.Count > 0)
        {
            Add("proof_valid", proofs.All(p => p.Valid));
            Add("invalid_proofs", string.Join(",", proofs.Where(p => !p.Valid).Select(p => p.Path ?? p.MerkleRoot ?? "proof")));
        }
        var stores = list.OfType<CasVerifyReport>().ToList();
        if (stores.Count > 0)
        {
            Add("cas_valid", stores.All(s => s.Valid));
            Add("cas_checked", stores.Sum(s => s.Checked));
            Add("cas_corrupt", stores.Sum(s => s.Corrupt.Count));
            Add("cas_missing", stores.Sum(s => s.Missing.Count));
            Add("cas_invalid_manifests", stores.Sum(s => s.InvalidManifests.Count));
        }
        return o;
    }

    /// <summary>
    /// Step outputs in GitHub's multiline-safe file format (<c>name&lt;&lt;DELIMITER</c>, value, <c>DELIMITER</c>), as
    /// actions/toolkit writes them, so a value with a newline cannot inject another output.
    /// </summary>
    public static string FormatGitHubOutput(IEnumerable<KeyValuePair<string, string>> outputs)
    {
        var sb = new StringBuilder();
        foreach (var (name, value) in outputs)
        {
            string delimiter;
            do delimiter = "ghadelimiter_" + Guid.NewGuid().ToString("n");
            while (value.Contains(delimiter, StringComparison.Ordinal));
            sb.Append(name).Append("<<").Append(delimiter).Append('\n').Append(value).Append('\n').Append(delimiter).Append('\n');
        }
        return sb.ToString();
    }

    private static string N(double v) => double.IsFinite(v) ? v.ToString("0.###", CultureInfo.InvariantCulture) : "∞";
    private static string P(double v) => v < 0.0001 ? "<0.0001" : v.ToString("0.####", CultureInfo.InvariantCulture);
    private static string Md(string s) => s.Replace("|", "\\|").Replace("\n", " ");

    // https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts
    public static string EscapeGitHubData(string s) => s.Replace("%", "%25").Replace("\r", "%0D").Replace("\n", "%0A");
    public static string EscapeGitHubProperty(string s) => EscapeGitHubData(s).Replace(":", "%3A").Replace(",", "%2C");
    // Azure DevOps logging commands: %AZP25, ; → %3B, \r → %0D, \n → %0A, ] → %5D
    public static string EscapeAzure(string s) => s.Replace("%", "%AZP25").Replace(";", "%3B").Replace("\r", "%0D").Replace("\n", "%0A").Replace("]", "%5D");
}
