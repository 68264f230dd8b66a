using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Audit;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Test-RequiemAuditLog: verifies a store's audit log — every entry's own hash, the sequence numbers, the links to the
/// previous entry, and the last entry against the head anchor. A broken log is a result with Valid = $false, not an
/// error — unless -FailOnInvalid asks for a gate: then the result is written, and an AuditLogInvalid terminating error follows.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemAuditLog")]
[OutputType(typeof(AuditVerification), typeof(bool))]
public sealed class TestRequiemAuditLogCommand : RequiemStoreCmdlet
{
    /// <summary>Only $true or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>Gate: after writing the result, an invalid log is a terminating error (AuditLogInvalid).</summary>
    [Parameter]
    public SwitchParameter FailOnInvalid { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void EndProcessingCore()
    {
        var store = OpenStore(Cas, create: false);
        var result = Run(() => AuditLog.For(store).Verify());
        foreach (var p in result.Problems) WriteVerbose(p.ToString());
        if (Quiet) WriteObject(result.Valid);
        else WriteObject(result);
        if (!FailOnInvalid || result.Valid) return;
        var ex = new RequiemException("AuditLogInvalid", ErrorKind.InvalidData,
            $"The audit log '{result.Path}' is invalid: {result.Problems.Count} problem(s) in {result.Entries} entries; first: {result.Problems[0]}.", result.Path);
        ThrowTerminatingError(ToErrorRecord(ex));
    }
}
