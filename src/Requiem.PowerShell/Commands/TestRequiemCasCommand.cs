using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemCas: re-hashes objects (the seed's <c>cas verify</c>). A corrupt store is a report with Valid = $false, not an error.</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemCas", DefaultParameterSetName = AllSet)]
[OutputType(typeof(CasVerifyReport), typeof(bool))]
public sealed class TestRequiemCasCommand : RequiemCmdlet
{
    private const string AllSet = "All";
    private const string SampleSet = "Sample";
    private const int ProgressId = 1;

    [Parameter(ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = SampleSet)]
    [ValidateRange(1, int.MaxValue)]
    public int Sample { get; set; }

    [Parameter]
    public SwitchParameter Quiet { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void EndProcessing()
    {
        var store = OpenStore(Cas, create: false);
        var output = CreateEngineOutput(ProgressId);
        var report = Run(() => store.Verify(new CasVerifyOptions
        {
            All = ParameterSetName == AllSet,
            Sample = ParameterSetName == SampleSet ? Sample : 0,
            Output = output,
            Cancel = CancellationToken,
        }));
        CompleteProgress(ProgressId, "Test-RequiemCas");
        foreach (var c in report.Corrupt) WriteVerbose($"corrupt: {c.Hash} ({c.Reason})");
        foreach (var m in report.Missing) WriteVerbose($"missing: {m.Hash} (referenced by {m.ReferencedBy})");
        foreach (var m in report.InvalidManifests) WriteVerbose($"invalid manifest: {m.Hash} (referenced by {m.ReferencedBy}): {m.Reason}");
        if (report.TempFiles.Count > 0)
            WriteVerbose($"{report.TempFiles.Count} leftover temp file(s) in {store.TempDirectory}; Optimize-RequiemCas removes those older than its grace period.");
        if (Quiet) WriteObject(report.Valid);
        else WriteObject(report);
    }
}
