using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Bench;
using Requiem.Engine.Config;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Measure-RequiemDrift: groups a bench report's runs by result digest and explains any variation.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "RequiemDrift", SupportsShouldProcess = true)]
[OutputType(typeof(DriftReport))]
public sealed class MeasureRequiemDriftCommand : RequiemStoreCmdlet
{
    /// <summary>A bench report (or a saved drift report, to render it), a path to one, JSON text, or the object ConvertFrom-Json made of it.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [Alias("Report", "InputObject")]
    [ValidateNotNull]
    public object? Bench { get; set; }

    [Parameter]
    public string? Cas { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? OutFile { get; set; }

    [Parameter]
    public SwitchParameter CiSummary { get; set; }

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    private CasStore? _store;
    private bool _storeTried;

    protected override void ProcessRecord()
    {
        var input = TryRun(() => BenchInput.ReportOrDrift(Bench, ResolveNewPath, "Bench"));
        if (input is null) return;
        // A saved drift report (the Requiem CLI's `drift pretty --in`) is rendered as it is: nothing to analyse again.
        var drift = input as DriftReport ?? Analyze((BenchReport)input);
        if (drift is null) return;
        if (OutFile is not null && ResolveNewPath(OutFile) is var path && ShouldProcess(path, "Write the drift report JSON"))
        {
            Run(() => { Requiem.Engine.IO.AtomicFile.WriteAllText(path, drift.ToJson() + "\n"); return path; });
        }
        if (CiSummary) Run(() => CiWriter.Write(this, drift, CiProvider.Auto, null));
        WriteObject(drift);
    }

    private DriftReport? Analyze(BenchReport report)
    {
        if (!_storeTried)
        {
            _storeTried = true;
            var explicitRoot = string.IsNullOrEmpty(Cas) ? null : ResolveNewPath(Cas);
            var root = RequiemPaths.ResolveCasRoot(explicitRoot, Config);
            var hash = SelectHash(AllowHashFallback);
            try
            {
                _store = OpenStoreOrThrow(explicitRoot, hash, create: false);
            }
            catch (RequiemException ex)
            {
                // Grouping needs only the report; the first-difference excerpts need the captured outputs.
                WriteWarning($"The CAS at '{root}' cannot be opened ({ex.Message}); drift is reported without the content of the differences.");
            }
        }
        return TryRun(() => DriftAnalyzer.Analyze(report, _store, CancellationToken));
    }
}
