using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Test-RequiemCas: re-hashes objects (the Requiem CLI's <c>cas verify</c>). A corrupt store is a report with Valid = $false,
/// not an error — unless -FailOnInvalid asks for a gate: then the report is written, and a CasInvalid terminating error follows.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemCas", DefaultParameterSetName = AllSet)]
[OutputType(typeof(CasVerifyReport), typeof(bool))]
public sealed class TestRequiemCasCommand : RequiemStoreCmdlet
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

    /// <summary>Gate: after writing the report, an invalid store is a terminating error (CasInvalid); the outcome goes to $env:GITHUB_OUTPUT.</summary>
    [Parameter]
    public SwitchParameter FailOnInvalid { get; set; }

    /// <summary>Verifies the remote store instead of the local one: every blob (or -Sample N) is downloaded and re-hashed.</summary>
    [Parameter]
    public SwitchParameter Remote { get; set; }

    /// <summary>At most this many threads re-hash objects at once (default: every core, or hash.max_threads from the config).</summary>
    [Parameter]
    [ValidateRange(1, 4096)]
    public int ThrottleLimit { get; set; }

    protected override void EndProcessingCore()
    {
        var store = OpenStore(Cas, create: Remote.IsPresent);
        var output = CreateEngineOutput(ProgressId);
        var report = Remote
            ? Run(() => RequireRemote(store).Verify(ParameterSetName == SampleSet ? Sample : 0, CancellationToken))
            : Run(() => store.Verify(new CasVerifyOptions
            {
                All = ParameterSetName == AllSet,
                Sample = ParameterSetName == SampleSet ? Sample : 0,
                Output = output,
                Cancel = CancellationToken,
                MaxThreads = ThrottleLimit,
            }));
        CompleteProgress(ProgressId, "Test-RequiemCas");
        foreach (var c in report.Corrupt) WriteVerbose($"corrupt: {c.Hash} ({c.Reason})");
        foreach (var f in Remote ? report.ForeignFiles : Array.Empty<string>()) WriteVerbose($"not an object name in the remote store: {f}");
        foreach (var m in report.Missing) WriteVerbose($"missing: {m.Hash} (referenced by {m.ReferencedBy})");
        foreach (var m in report.InvalidManifests) WriteVerbose($"invalid manifest: {m.Hash} (referenced by {m.ReferencedBy}): {m.Reason}");
        if (report.TempFiles.Count > 0)
            WriteVerbose($"{report.TempFiles.Count} leftover temp file(s) in {store.TempDirectory}; Optimize-RequiemCas removes those older than its grace period.");
        if (Quiet) WriteObject(report.Valid);
        else WriteObject(report);
        if (!FailOnInvalid) return;
        Run(() => { CiWriter.WriteStepOutputs(this, new object[] { report }); return true; });
        if (report.Valid) return;
        var first = report.Corrupt.Count > 0 ? $"first corrupt: {report.Corrupt[0].Hash} ({report.Corrupt[0].Reason})"
            : report.Missing.Count > 0 ? $"first missing: {report.Missing[0].Hash} (referenced by {report.Missing[0].ReferencedBy})"
            : $"first invalid manifest: {report.InvalidManifests[0].Hash} (referenced by {report.InvalidManifests[0].ReferencedBy}): {report.InvalidManifests[0].Reason}";
        var ex = new Requiem.Engine.RequiemException("CasInvalid", Requiem.Engine.ErrorKind.InvalidData,
            $"The CAS at '{report.Root}' is invalid: {report.Corrupt.Count} corrupt and {report.Missing.Count} missing object(s)" +
            (report.InvalidManifests.Count > 0 ? $" and {report.InvalidManifests.Count} invalid manifest(s)" : "") +
            $" of {report.Checked} checked; {first}.", report.Root);
        ThrowTerminatingError(ToErrorRecord(ex));
    }
}
