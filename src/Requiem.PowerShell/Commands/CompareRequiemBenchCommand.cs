using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Bench;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Compare-RequiemBench: baseline vs current, per case and metric, with a Mann-Whitney U test; -FailOnRegression
/// turns a regression into a terminating error (PerformanceRegression) for CI gates.
/// </summary>
[Cmdlet(VerbsData.Compare, "RequiemBench", DefaultParameterSetName = BaselineSet, SupportsShouldProcess = true)]
[OutputType(typeof(BenchComparison))]
public sealed class CompareRequiemBenchCommand : RequiemStoreCmdlet
{
    private const string BaselineSet = "Baseline";
    private const string BaselineRefSet = "BaselineRef";

    /// <summary>The baseline report: a BenchReport, a path to its JSON, or the object ConvertFrom-Json made of it.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = BaselineSet)]
    [ValidateNotNull]
    public object? Baseline { get; set; }

    /// <summary>A baseline saved with Invoke-RequiemBench -SaveRef (ref bench/&lt;name&gt; in the CAS).</summary>
    [Parameter(Mandatory = true, ParameterSetName = BaselineRefSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(CasRefCompleter))]
    public string? BaselineRef { get; set; }

    /// <summary>The current report (or path); Invoke-RequiemBench output can be piped here.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object? Current { get; set; }

    [Parameter]
    [ValidateRange(0.0, 100000.0)]
    public double Threshold { get; set; } = 10;

    [Parameter]
    [ValidateRange(0.5, 0.9999)]
    public double Confidence { get; set; } = 0.95;

    /// <summary>Metrics that can fail the comparison (default Wall); all metrics are always reported.</summary>
    [Parameter]
    public BenchMetric[] Metric { get; set; } = { BenchMetric.Wall };

    [Parameter]
    public SwitchParameter FailOnRegression { get; set; }

    [Parameter]
    public SwitchParameter AllowSpecChange { get; set; }

    /// <summary>Re-measure regressed cases (from the current report's spec) up to this many times; a regression must reproduce each time.</summary>
    [Parameter]
    [ValidateRange(0, 10)]
    public int Recheck { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? OutFile { get; set; }

    /// <summary>Also write GitHub Actions / Azure DevOps annotations and a step summary when running there.</summary>
    [Parameter]
    public SwitchParameter CiSummary { get; set; }

    [Parameter]
    public string? Cas { get; set; }

    private BenchReport? _baseline;
    private readonly StepOutputs _stepOutputs = new();

    protected override void BeginProcessing()
    {
        _baseline = ParameterSetName == BaselineRefSet
            ? Run(() => BenchReportIo.LoadFromCas(OpenStore(Cas, create: false), BaselineRef!))
            : Run(() => BenchInput.Report(Baseline, ResolveNewPath, "Baseline"));
    }

    protected override void ProcessRecord()
    {
        // A bad current report is this item's error (the next piped report is still compared); a regression under
        // -FailOnRegression is the gate and stops the pipeline.
        var current = TryRun(() => BenchInput.Report(Current, ResolveNewPath, "Current"));
        if (current is null) return;
        var gated = Metric.Aggregate((BenchMetric)0, (a, m) => a | m);
        var comparison = TryRun(() => BenchComparer.Compare(_baseline!, current, Threshold, Confidence, gated, AllowSpecChange));
        if (comparison is null) return;
        if (Recheck > 0 && comparison.Regressed)
        {
            WriteVerbose($"Regression suspected in {string.Join(", ", comparison.RegressedCases)}: re-measuring up to {Recheck} time(s) to confirm.");
            var store = OpenStore(Cas);
            var runner = new BenchRunner(store, SessionState.Path.CurrentFileSystemLocation.ProviderPath, CreateEngineOutput(2));
            var first = comparison;
            comparison = Run(() => BenchComparer.Recheck(first, _baseline!, current, Recheck, spec => runner.Run(spec, CancellationToken), gated, AllowSpecChange));
            CompleteProgress(2, "Invoke-RequiemBench");
        }
        foreach (var c in comparison.Cases)
        {
            foreach (var m in c.Metrics.Where(m => m.Gated))
                WriteVerbose($"{c.Name} {m.Metric}: {m.Statement}");
        }
        if (OutFile is not null && ResolveNewPath(OutFile) is var path && ShouldProcess(path, "Write the comparison JSON"))
        {
            Run(() => { Requiem.Engine.IO.AtomicFile.WriteAllText(path, comparison.ToJson() + "\n"); return path; });
        }
        if (CiSummary) Run(() => CiWriter.Write(this, comparison, CiProvider.Auto, null));
        if (FailOnRegression)
        {
            _stepOutputs.Add(comparison);
        }
        if (FailOnRegression && comparison.Regressed)
        {
            Run(() => { _stepOutputs.Flush(this); return true; });
            var details = comparison.Cases.Where(c => c.Regressed)
                .Select(c => $"'{c.Name}' ({string.Join("; ", c.Metrics.Where(m => m.Gated && m.Regressed).Select(m => $"{m.Metric} {m.Statement}"))})");
            var ex = new RequiemException("PerformanceRegression", ErrorKind.LimitsExceeded,
                $"Performance regression in {comparison.RegressedCases.Count} case(s): {string.Join("; ", details)}", comparison);
            ThrowTerminatingError(new ErrorRecord(ex, "PerformanceRegression", ErrorCategory.LimitsExceeded, comparison));
        }
        WriteObject(comparison);
    }

    protected override void EndProcessingCore() => Run(() => { _stepOutputs.Flush(this); return true; });

    protected override void OnDispose() => _stepOutputs.FlushAtDispose();
}
