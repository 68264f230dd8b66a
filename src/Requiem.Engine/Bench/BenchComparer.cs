using System.Globalization;
using System.Text.Json;
using Requiem.Engine.Json;

namespace Requiem.Engine.Bench;

/// <summary>The metrics a comparison looks at; <see cref="Wall"/> is gated by default.</summary>
[Flags]
public enum BenchMetric
{
    Wall = 1,
    User = 2,
    System = 4,
    Cpu = 8,
    MaxRss = 16,
}

/// <summary>A comparison of two bench reports (docs/CONTRACT.md "Bench comparison").</summary>
public sealed class BenchComparison
{
    public const string CurrentVersion = "1";

    public required string BenchComparisonVersion { get; init; }
    /// <summary>Percent slowdown that counts as a regression (when also significant).</summary>
    public required double Threshold { get; init; }
    /// <summary>Confidence level of the tests and intervals (0.95 = 5 % false-positive rate per test).</summary>
    public required double Confidence { get; init; }
    /// <summary>Metrics (snake_case names) whose regression makes <see cref="Regressed"/> true.</summary>
    public required List<string> GatedMetrics { get; init; }
    public required string BaselineSpecDigest { get; init; }
    public required string CurrentSpecDigest { get; init; }
    public required bool SpecChanged { get; init; }
    /// <summary>
    /// How much slower the machine itself was during the current run, from the calibration probes of both reports
    /// (ratio of their lower quartiles − 1, in percent; null when a report has no calibration). When positive, a case must be slower
    /// than threshold × this factor to count as a regression.
    /// </summary>
    public double? MachineSlowdownPercent { get; init; }
    /// <summary>How many times regressed cases were re-measured to confirm (Compare-RequiemBench -Recheck); 0 = none.</summary>
    public int Rechecks { get; init; }
    public required bool Regressed { get; init; }
    public required List<string> RegressedCases { get; init; }
    public required List<string> ImprovedCases { get; init; }
    public required List<BenchCaseComparison> Cases { get; init; }

    public string ToJson(bool indented = true) => JsonSerializer.Serialize(this, indented ? JsonContract.Indented : JsonContract.Options);

    public static BenchComparison Parse(string json, object? target = null)
    {
        var c = JsonContract.Deserialize<BenchComparison>(json, "bench comparison", target);
        if (c.BenchComparisonVersion != CurrentVersion)
            throw new RequiemException("InvalidBenchComparison", ErrorKind.InvalidData, $"bench_comparison_version \"{c.BenchComparisonVersion}\" is not supported.", target);
        return c;
    }

    /// <summary>The readable default view: verdict, then one line per case and gated metric.</summary>
    public string ToSummaryString()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(Regressed
            ? $"REGRESSED: {string.Join(", ", RegressedCases)} (threshold {Threshold}%, confidence {Confidence * 100}%)\n"
            : $"No regression in {Cases.Count} case(s) (threshold {Threshold}%, confidence {Confidence * 100}%)\n");
        if (SpecChanged) sb.Append("  note: the bench spec changed between baseline and current\n");
        foreach (var c in Cases)
            foreach (var m in c.Metrics.Where(m => m.Gated))
                sb.Append($"  {(m.Regressed ? "REGRESSED" : m.Improved ? "improved " : "ok       ")}  {c.Name}  {m.Metric}: {m.Statement}\n");
        return sb.ToString();
    }

    public override string ToString() =>
        Regressed ? $"REGRESSED: {string.Join(", ", RegressedCases)} (threshold {Threshold}%)" : $"No regression in {Cases.Count} case(s) (threshold {Threshold}%)";
}

public sealed class BenchCaseComparison
{
    public required string Name { get; init; }
    public required bool Regressed { get; init; }
    /// <summary>Re-measurements of this case and whether each one regressed too (a regression must reproduce in all).</summary>
    public List<bool> RecheckRegressed { get; init; } = new();
    public required bool Improved { get; init; }
    public required List<BenchMetricComparison> Metrics { get; init; }

    public BenchMetricComparison? Metric(string name) => Metrics.FirstOrDefault(m => m.Metric == name);

    public override string ToString() => $"{Name}: {(Regressed ? "regressed" : Improved ? "improved" : "ok")}";
}

public sealed class BenchMetricComparison
{
    /// <summary>wall_ms, user_ms, system_ms, cpu_ms (user+system) or max_rss_kb.</summary>
    public required string Metric { get; init; }
    public required bool Gated { get; init; }
    public required int BaselineCount { get; init; }
    public required int CurrentCount { get; init; }
    public required double BaselineMedian { get; init; }
    public required double CurrentMedian { get; init; }
    /// <summary>(current median / baseline median − 1) × 100.</summary>
    public required double ChangePercent { get; init; }
    /// <summary>Change of the lower quartile (p25): the fast half of the runs must slow down too for a regression.</summary>
    public required double LowQuartileChangePercent { get; init; }
    public required double Ratio { get; init; }
    /// <summary>Bootstrap percentile confidence interval of the median ratio.</summary>
    public required double RatioCiLow { get; init; }
    public required double RatioCiHigh { get; init; }
    /// <summary>One-sided Mann-Whitney U p-value for "current is slower than baseline".</summary>
    public required double PValue { get; init; }
    /// <summary>One-sided Mann-Whitney U p-value for "current is slower than baseline × (1 + threshold)" — the regression test.</summary>
    public required double PValueOverThreshold { get; init; }
    /// <summary>PValue below 1 − confidence: current is really slower (by any amount).</summary>
    public required bool Significant { get; init; }
    public required bool Regressed { get; init; }
    public required bool Improved { get; init; }
    /// <summary>regressed, improved, slower, faster, or unchanged.</summary>
    public required string Verdict { get; init; }
    /// <summary>The confidence statement in words.</summary>
    public required string Statement { get; init; }
}

/// <summary>
/// Compares two reports case by case. A metric regresses only when its median slowed down by more than the
/// threshold AND a one-sided Mann-Whitney U test rejects "current ≤ baseline × (1 + threshold)" at the chosen
/// confidence: the slowdown beyond the threshold must itself be statistically real, so run-to-run noise on a
/// busy machine does not trip the gate.
/// </summary>
public static class BenchComparer
{
    public static BenchComparison Compare(BenchReport baseline, BenchReport current, double threshold = 10, double confidence = 0.95,
        BenchMetric gated = BenchMetric.Wall, bool allowSpecChange = false)
    {
        if (double.IsNaN(threshold) || threshold < 0)
            throw new RequiemException("InvalidThreshold", ErrorKind.InvalidArgument, "The threshold must be a percentage of 0 or more.", threshold);
        if (!(confidence > 0.5 && confidence < 1))
            throw new RequiemException("InvalidConfidence", ErrorKind.InvalidArgument, "The confidence must be between 0.5 and 1 (e.g. 0.95).", confidence);
        var specChanged = !string.Equals(baseline.SpecDigest, current.SpecDigest, StringComparison.Ordinal);
        if (specChanged && !allowSpecChange)
        {
            throw new RequiemException("BenchSpecMismatch", ErrorKind.InvalidData,
                $"The reports come from different bench specs (baseline {baseline.SpecDigest[..12]}…, current {current.SpecDigest[..12]}…); " +
                "their figures are not comparable. Re-run the baseline with the same spec, or pass -AllowSpecChange if the change is intended.",
                current.SpecDigest);
        }
        var missing = baseline.Cases.Select(c => c.Name).Where(n => current.FindCase(n) is null).ToList();
        if (missing.Count > 0)
        {
            throw new RequiemException("BenchCaseMissing", ErrorKind.ObjectNotFound,
                $"The current report has no case named {string.Join(", ", missing.Select(m => $"'{m}'"))} (present in the baseline).", missing[0]);
        }

        var alpha = 1 - confidence;
        double? machine = null;
        // The probes' lower quartiles: how fast the machine was when it was not hit by a burst (a burst that slows some
        // probes must not lower the bar for the case; sustained load slows them all and does).
        if (baseline.Calibration is { WallMs.Count: > 0 } bc && current.Calibration is { WallMs.Count: > 0 } cc)
        {
            var qb = BenchStatistics.Quantile(bc.WallMs.OrderBy(v => v).ToArray(), 0.25);
            var qc = BenchStatistics.Quantile(cc.WallMs.OrderBy(v => v).ToArray(), 0.25);
            if (qb > 0) machine = (qc / qb - 1) * 100;
        }
        // Only a slower machine relaxes the gate (a faster one never makes a regression easier to call).
        var machineFactor = machine is > 0 ? 1 + machine.Value / 100 : 1;
        var cases = new List<BenchCaseComparison>();
        foreach (var b in baseline.Cases)
        {
            var c = current.FindCase(b.Name)!;
            var metrics = new List<BenchMetricComparison>();
            foreach (var (flag, name, pick) in Metrics)
            {
                var x = b.MeasuredRuns.Select(pick).Where(v => v.HasValue).Select(v => v!.Value).ToList();
                var y = c.MeasuredRuns.Select(pick).Where(v => v.HasValue).Select(v => v!.Value).ToList();
                if (x.Count == 0 || y.Count == 0) continue;
                metrics.Add(CompareMetric(name, (gated & flag) != 0, x, y, threshold, confidence, alpha, flag is BenchMetric.MaxRss ? 1 : machineFactor));
            }
            cases.Add(new BenchCaseComparison
            {
                Name = b.Name,
                Regressed = metrics.Any(m => m.Gated && m.Regressed),
                Improved = metrics.Any(m => m.Gated && m.Improved) && !metrics.Any(m => m.Gated && m.Regressed),
                Metrics = metrics,
            });
        }
        return new BenchComparison
        {
            BenchComparisonVersion = BenchComparison.CurrentVersion,
            Threshold = threshold,
            Confidence = confidence,
            GatedMetrics = Metrics.Where(m => (gated & m.Flag) != 0).Select(m => m.Name).ToList(),
            BaselineSpecDigest = baseline.SpecDigest,
            CurrentSpecDigest = current.SpecDigest,
            SpecChanged = specChanged,
            MachineSlowdownPercent = machine,
            Regressed = cases.Any(c => c.Regressed),
            RegressedCases = cases.Where(c => c.Regressed).Select(c => c.Name).ToList(),
            ImprovedCases = cases.Where(c => c.Improved).Select(c => c.Name).ToList(),
            Cases = cases,
        };
    }

    private static readonly (BenchMetric Flag, string Name, Func<BenchRun, double?> Pick)[] Metrics =
    {
        (BenchMetric.Wall, "wall_ms", r => r.WallMs),
        (BenchMetric.User, "user_ms", r => r.UserMs),
        (BenchMetric.System, "system_ms", r => r.SystemMs),
        (BenchMetric.Cpu, "cpu_ms", r => r.UserMs + r.SystemMs),
        (BenchMetric.MaxRss, "max_rss_kb", r => r.MaxRssKb),
    };

    /// <summary>
    /// Confirms a regression by measuring again: each regressed case is re-run (<paramref name="rerun"/> gets a spec
    /// holding only those cases) up to <paramref name="rechecks"/> times and compared with the baseline again; it
    /// stays regressed only if every re-measurement regresses too. A burst of load that slowed one whole batch of runs
    /// does not survive this; a real slowdown does. Stops early once no case is left to confirm.
    /// </summary>
    public static BenchComparison Recheck(BenchComparison comparison, BenchReport baseline, BenchReport current, int rechecks,
        Func<BenchSpec, BenchReport> rerun, BenchMetric gated, bool allowSpecChange)
    {
        if (rechecks <= 0 || !comparison.Regressed) return comparison;
        var history = comparison.Cases.ToDictionary(c => c.Name, _ => new List<bool>());
        var suspects = comparison.RegressedCases.ToHashSet(StringComparer.Ordinal);
        var performed = 0;
        for (var i = 0; i < rechecks && suspects.Count > 0; i++)
        {
            performed++;
            var s = current.Spec;
            var subset = new BenchSpec
            {
                BenchSpecVersion = s.BenchSpecVersion, Name = s.Name, Warmup = s.Warmup, Runs = s.Runs, MinTimeSeconds = s.MinTimeSeconds,
                MaxRuns = s.MaxRuns, TimeoutMs = s.TimeoutMs, Prepare = s.Prepare, Cleanup = s.Cleanup,
                Cases = s.Cases.Where(c => suspects.Contains(c.Name)).ToList(),
            };
            var again = rerun(subset);
            var baseSubset = new BenchReport
            {
                BenchReportVersion = baseline.BenchReportVersion, Tool = baseline.Tool, SpecDigest = again.SpecDigest, Spec = subset,
                Machine = baseline.Machine, Measurement = baseline.Measurement, HashAlgorithm = baseline.HashAlgorithm,
                StartedAt = baseline.StartedAt, FinishedAt = baseline.FinishedAt,
                Cases = baseline.Cases.Where(c => suspects.Contains(c.Name)).ToList(),
                Calibration = baseline.Calibration,
            };
            var cmp = Compare(baseSubset, again, comparison.Threshold, comparison.Confidence, gated, allowSpecChange: true);
            foreach (var c in cmp.Cases)
            {
                history[c.Name].Add(c.Regressed);
                if (!c.Regressed) suspects.Remove(c.Name);
            }
        }
        var cases = comparison.Cases.Select(c =>
        {
            var confirmed = c.Regressed && history[c.Name].All(r => r);
            var metrics = c.Metrics;
            if (c.Regressed && !confirmed)
            {
                var n = history[c.Name].Count;
                metrics = c.Metrics.Select(m => !(m.Gated && m.Regressed) ? m : new BenchMetricComparison
                {
                    Metric = m.Metric, Gated = m.Gated, BaselineCount = m.BaselineCount, CurrentCount = m.CurrentCount,
                    BaselineMedian = m.BaselineMedian, CurrentMedian = m.CurrentMedian, ChangePercent = m.ChangePercent,
                    LowQuartileChangePercent = m.LowQuartileChangePercent, Ratio = m.Ratio, RatioCiLow = m.RatioCiLow, RatioCiHigh = m.RatioCiHigh,
                    PValue = m.PValue, PValueOverThreshold = m.PValueOverThreshold, Significant = m.Significant,
                    Regressed = false, Improved = false, Verdict = "not_reproduced",
                    Statement = m.Statement.Replace(": regressed", "") + $"; not reproduced when re-measured (recheck {n}): noise, not a regression",
                }).ToList();
            }
            else if (confirmed)
            {
                metrics = c.Metrics.Select(m => !(m.Gated && m.Regressed) ? m : new BenchMetricComparison
                {
                    Metric = m.Metric, Gated = m.Gated, BaselineCount = m.BaselineCount, CurrentCount = m.CurrentCount,
                    BaselineMedian = m.BaselineMedian, CurrentMedian = m.CurrentMedian, ChangePercent = m.ChangePercent,
                    LowQuartileChangePercent = m.LowQuartileChangePercent, Ratio = m.Ratio, RatioCiLow = m.RatioCiLow, RatioCiHigh = m.RatioCiHigh,
                    PValue = m.PValue, PValueOverThreshold = m.PValueOverThreshold, Significant = m.Significant,
                    Regressed = true, Improved = false, Verdict = m.Verdict,
                    Statement = m.Statement + $" (reproduced in {history[c.Name].Count} re-measurement(s))",
                }).ToList();
            }
            return new BenchCaseComparison { Name = c.Name, Regressed = confirmed, Improved = c.Improved, Metrics = metrics, RecheckRegressed = history[c.Name] };
        }).ToList();
        return new BenchComparison
        {
            BenchComparisonVersion = comparison.BenchComparisonVersion, Threshold = comparison.Threshold, Confidence = comparison.Confidence,
            GatedMetrics = comparison.GatedMetrics, BaselineSpecDigest = comparison.BaselineSpecDigest, CurrentSpecDigest = comparison.CurrentSpecDigest,
            SpecChanged = comparison.SpecChanged, Rechecks = performed, MachineSlowdownPercent = comparison.MachineSlowdownPercent,
            Regressed = cases.Any(c => c.Regressed),
            RegressedCases = cases.Where(c => c.Regressed).Select(c => c.Name).ToList(),
            ImprovedCases = comparison.ImprovedCases,
            Cases = cases,
        };
    }

    public static string MetricName(BenchMetric m) => Metrics.First(x => x.Flag == m).Name;

    private static BenchMetricComparison CompareMetric(string name, bool gated, List<double> x, List<double> y, double threshold, double confidence, double alpha, double machineFactor)
    {
        var mx = BenchStatistics.Median(x);
        var my = BenchStatistics.Median(y);
        var ratio = my == mx ? 1 : my / Math.Max(mx, BenchStatistics.Floor); // a zero median (e.g. 0 ms user time) is taken as 1 µs
        var change = (ratio - 1) * 100;
        // The bar a slowdown must clear: the threshold, times how much slower the machine itself was.
        var factor = (1 + threshold / 100) * machineFactor;
        var bar = (factor - 1) * 100;
        var (_, p) = BenchStatistics.MannWhitneyGreater(x, y);
        var (_, pOver) = BenchStatistics.MannWhitneyGreater(x.Select(v => v * factor).ToList(), y);
        var (_, pFaster) = BenchStatistics.MannWhitneyGreater(y.Select(v => v * factor).ToList(), x);
        var (lo, hi) = BenchStatistics.BootstrapMedianRatio(x, y, confidence);
        var qx = BenchStatistics.Quantile(x.OrderBy(v => v).ToArray(), 0.25);
        var qy = BenchStatistics.Quantile(y.OrderBy(v => v).ToArray(), 0.25);
        var lowChange = (qy == qx ? 0 : qy / Math.Max(qx, BenchStatistics.Floor) - 1) * 100;
        // Noise on a shared machine only ever slows runs down, and in bursts: a burst that hits some runs moves the
        // median but leaves the fast runs alone. A real slowdown moves them all, so the lower quartile must move too.
        var regressed = change > bar && lowChange > bar && pOver < alpha;
        var improved = ratio > 0 && (1 / ratio - 1) * 100 > threshold && BenchStatistics.MannWhitneyGreater(y.Select(v => v * (1 + threshold / 100)).ToList(), x).P < alpha;
        _ = pFaster;
        var significant = p < alpha;
        var verdict = regressed ? "regressed" : improved ? "improved" : significant && change > 0 ? "slower" :
            BenchStatistics.MannWhitneyGreater(y, x).P < alpha && change < 0 ? "faster" : "unchanged";
        var ci = $"{confidence * 100:0.#}% CI {Fmt(lo)}–{Fmt(hi)}";
        var machineNote = machineFactor > 1 ? $" (the machine itself was {Signed((machineFactor - 1) * 100)}% slower, so the bar is {bar:0.#}%)" : "";
        var head = $"{Fmt(ratio)}× baseline ({Signed(change)}%, {ci})";
        var statement = regressed
            ? $"{head}; slower by more than {bar:0.#}% with p = {P(pOver)} (Mann-Whitney U){machineNote}: regressed"
            : change > threshold && change <= bar
                ? $"{head}; within the bar{machineNote}: the machine, not the code, explains the slowdown"
            : change > bar && lowChange <= bar
                ? $"{head}; the median is over {bar:0.#}% but the fastest quarter of the runs moved only {Signed(lowChange)}%: bursty noise, not a regression"
            : change > bar
                ? $"{head}; over {bar:0.#}% but not significantly (p = {P(pOver)} ≥ {P(alpha)}){machineNote}: noise, not a regression"
                : $"{head}; within the {threshold}% threshold" + (significant ? $" (slower at p = {P(p)})" : "");
        return new BenchMetricComparison
        {
            Metric = name, Gated = gated, BaselineCount = x.Count, CurrentCount = y.Count,
            BaselineMedian = mx, CurrentMedian = my, ChangePercent = change, LowQuartileChangePercent = lowChange, Ratio = ratio, RatioCiLow = lo, RatioCiHigh = hi,
            PValue = p, PValueOverThreshold = pOver, Significant = significant, Regressed = regressed, Improved = improved,
            Verdict = verdict, Statement = statement,
        };
    }

    private static string Fmt(double v) => double.IsInfinity(v) ? "∞" : v.ToString("0.###", CultureInfo.InvariantCulture);
    private static string Signed(double v) => (v >= 0 ? "+" : "") + v.ToString("0.#", CultureInfo.InvariantCulture);
    private static string P(double v) => v < 0.0001 ? "<0.0001" : v.ToString("0.####", CultureInfo.InvariantCulture);
}
