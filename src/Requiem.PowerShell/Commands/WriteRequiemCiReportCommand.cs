using System.Management.Automation;
using Requiem.Engine.Bench;
using Requiem.Engine.Cas;
using Requiem.Engine.Proof;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Write-RequiemCiReport: GitHub Actions annotations + step summary, or Azure DevOps logging commands, for a bench
/// comparison, drift report, bench report, proof verification or CAS verification — through the host, never the
/// output stream — and the outcome as step outputs in $env:GITHUB_OUTPUT when it is set.
/// </summary>
[Cmdlet(VerbsCommunications.Write, "RequiemCiReport")]
[OutputType(typeof(BenchComparison), typeof(DriftReport), typeof(BenchReport), typeof(ProofVerification), typeof(CasVerifyReport))]
public sealed class WriteRequiemCiReportCommand : RequiemCmdlet
{
    /// <summary>A comparison, drift report or bench report (the object, or a path to its JSON), or a proof or CAS verification result.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object? InputObject { get; set; }

    /// <summary>Auto (detect GITHUB_ACTIONS / TF_BUILD), GitHub, AzureDevOps, or None.</summary>
    [Parameter]
    public CiProvider Provider { get; set; } = CiProvider.Auto;

    /// <summary>Markdown summary file (default: $env:GITHUB_STEP_SUMMARY on GitHub, a temp file uploaded on Azure DevOps).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SummaryPath { get; set; }

    /// <summary>Pass the input object on down the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private readonly StepOutputs _stepOutputs = new();

    protected override void ProcessRecord()
    {
        var input = Run(() => BenchInput.AnyDocument(InputObject, ResolveNewPath));
        var summary = SummaryPath is null ? null : ResolveNewPath(SummaryPath);
        Run(() => CiWriter.Write(this, input, Provider, summary));
        _stepOutputs.Add(input);
        if (PassThru) WriteObject(InputObject);
    }

    protected override void EndProcessingCore() => Run(() => { _stepOutputs.Flush(this); return true; });

    protected override void OnDispose() => _stepOutputs.FlushAtDispose();
}
