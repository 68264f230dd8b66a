using System.Text.Json;
using Requiem.Engine.Json;

namespace Requiem.Engine.Bench;

/// <summary>A bench report (docs/CONTRACT.md "Bench report"): every run, per-case statistics, machine facts.</summary>
public sealed class BenchReport
{
    public const string CurrentVersion = "1";

    public required string BenchReportVersion { get; init; }
    public required BenchTool Tool { get; init; }
    public required string SpecDigest { get; init; }
    public required BenchSpec Spec { get; init; }
    public required BenchMachine Machine { get; init; }
    /// <summary>How runs were measured: <c>linux-wait4</c>, <c>windows-job</c> or <c>process-api</c>.</summary>
    public required string Measurement { get; init; }
    /// <summary>The hash algorithm of every digest in the report (BLAKE3, or SHA256 when the fallback was allowed).</summary>
    public required string HashAlgorithm { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public required DateTimeOffset FinishedAt { get; init; }
    public required List<BenchCaseReport> Cases { get; init; }
    /// <summary>
    /// The machine-speed probe: a fixed small workload run after every measured run, interleaved with the cases, so
    /// that a comparison can tell a slower machine from slower code. Null when calibration was turned off.
    /// </summary>
    public BenchCalibration? Calibration { get; init; }

    public BenchCaseReport? FindCase(string name) => Cases.FirstOrDefault(c => c.Name == name);

    public string ToJson(bool indented = true) => JsonSerializer.Serialize(this, indented ? JsonContract.Indented : JsonContract.Options);

    public override string ToString() => $"Bench {Spec.Name ?? SpecDigest[..12]}: {Cases.Count} case(s)";

    /// <summary>The readable default view: one line per case with the wall-time statistics.</summary>
    public string ToSummaryString()
    {
        static string F(double v) => v.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture);
        var sb = new System.Text.StringBuilder();
        sb.Append($"Bench {(Spec.Name is { } n ? n + " " : "")}(spec {SpecDigest[..12]}, {Machine.Cores} cores, {Machine.OsPlatform}, {Measurement}, requiem {Tool.Version})\n");
        // At most 80 columns (CI logs): min and max are in Cases[i].Statistics and the per-case table.
        const int maxName = 30;
        var width = Math.Max(4, Cases.Max(c => Math.Min(maxName, c.Name.Length)));
        sb.Append($"  {"Case".PadRight(width)} {"Runs",4} {"Median ms",10} {"Mean ± sd ms",18} {"Outl",4} {"Fail",4}\n");
        foreach (var c in Cases)
        {
            var w = c.Statistics.WallMs;
            var name = c.Name.Length > maxName ? c.Name[..(maxName - 1)] + "…" : c.Name;
            sb.Append($"  {name.PadRight(width)} {w.Count,4} {F(w.Median),10} {F(w.Mean) + " ± " + F(w.Stddev),18} {w.OutliersLow + w.OutliersHigh,4} {c.Statistics.FailedRuns,4}\n");
        }
        return sb.ToString();
    }
}

public sealed class BenchCalibration
{
    /// <summary>The probe as a person reads it (a fixed shell loop).</summary>
    public required string Command { get; init; }
    /// <summary>Wall times of every probe run, in milliseconds, in the order they ran.</summary>
    public required List<double> WallMs { get; init; }
    public required MetricStatistics Statistics { get; init; }
}

public sealed class BenchTool
{
    public required string Name { get; init; }
    public required string Version { get; init; }
}

public sealed class BenchMachine
{
    public required string Os { get; init; }
    public required string OsPlatform { get; init; }
    public required string Architecture { get; init; }
    public required int Cores { get; init; }
    public string? CpuModel { get; init; }
    public required string Runtime { get; init; }
    public string? Hostname { get; init; }
    /// <summary>1-minute load average when the bench started (Linux), a hint of how noisy the machine was.</summary>
    public double? LoadAverage { get; init; }
}

public sealed class BenchCaseReport
{
    public required string Name { get; init; }
    /// <summary>The case as a person reads it (command line or joined argv).</summary>
    public required string Command { get; init; }
    public required List<BenchRun> Runs { get; init; }
    public required BenchCaseStatistics Statistics { get; init; }

    [System.Text.Json.Serialization.JsonIgnore]
    public IEnumerable<BenchRun> MeasuredRuns => Runs.Where(r => !r.Warmup);

    public override string ToString() => $"{Name}: median {Statistics.WallMs.Median:0.###} ms over {Statistics.WallMs.Count} runs";
}

/// <summary>One run of one case. Warm-up runs are kept (<see cref="Warmup"/>) but not in the statistics.</summary>
public sealed class BenchRun
{
    public required int Index { get; init; }
    public required bool Warmup { get; init; }
    public required double WallMs { get; init; }
    public double? UserMs { get; init; }
    public double? SystemMs { get; init; }
    /// <summary>Peak RSS of the largest process in the tree, in KiB; null when not measurable (see max_rss_floor_kb).</summary>
    public long? MaxRssKb { get; init; }
    /// <summary>Linux: the host's own peak RSS when the run ended; the kernel cannot report a child's peak below it.</summary>
    public long? MaxRssFloorKb { get; init; }
    public required int ExitCode { get; init; }
    public int? Signal { get; init; }
    public required bool TimedOut { get; init; }
    public required string StdoutDigest { get; init; }
    public required long StdoutBytes { get; init; }
    public required string StderrDigest { get; init; }
    public required long StderrBytes { get; init; }
    /// <summary>Declared output file (path as written in the spec) → its <c>cas:</c> digest, or null when absent after the run.</summary>
    public required SortedDictionary<string, string?> OutputFiles { get; init; }
    /// <summary><c>res:</c> BLAKE3 over the canonical JSON {exit_code, output_files, stderr_digest, stdout_digest}.</summary>
    public required string ResultDigest { get; init; }
}

public sealed class BenchCaseStatistics
{
    public required MetricStatistics WallMs { get; init; }
    public MetricStatistics? UserMs { get; init; }
    public MetricStatistics? SystemMs { get; init; }
    public MetricStatistics? MaxRssKb { get; init; }
    /// <summary>Measured runs whose exit code was not 0 (or that timed out).</summary>
    public required int FailedRuns { get; init; }
}

/// <summary>Summary of one metric over the measured runs.</summary>
public sealed class MetricStatistics
{
    public required int Count { get; init; }
    public required double Min { get; init; }
    public required double Median { get; init; }
    public required double Mean { get; init; }
    public required double Stddev { get; init; }
    /// <summary>Median absolute deviation (raw, not scaled by 1.4826).</summary>
    public required double Mad { get; init; }
    public required double P95 { get; init; }
    public required double Max { get; init; }
    /// <summary>Runs with modified z-score 0.6745·(x−median)/MAD below −3.5.</summary>
    public required int OutliersLow { get; init; }
    /// <summary>Runs with modified z-score above 3.5.</summary>
    public required int OutliersHigh { get; init; }

    public override string ToString() => $"median {Median:0.###} (min {Min:0.###}, p95 {P95:0.###}, n={Count})";
}
