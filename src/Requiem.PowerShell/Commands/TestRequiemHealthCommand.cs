using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Config;
using Requiem.Engine.Health;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemHealth: the Requiem CLI's <c>doctor</c> — every check with a status; Fail is a blocker.</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemHealth")]
[OutputType(typeof(HealthCheck), typeof(bool), typeof(string))]
public sealed class TestRequiemHealthCommand : RequiemStoreCmdlet
{
    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Return only $true (no blockers) or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>Emit the doctor document as JSON (ok, blockers, warnings, checks) instead of the checks.</summary>
    [Parameter]
    public SwitchParameter AsJson { get; set; }

    /// <summary>Gate: after writing the result, a terminating HealthBlocker error when any check failed.</summary>
    [Parameter]
    public SwitchParameter FailOnBlocker { get; set; }

    protected override void EndProcessingCore()
    {
        WarnIfLauncherUnusable();
        var (config, configError, root) = ReadDiagnosticContext(Cas);
        var checks = Doctor.Run(root, config, configError);
        var report = DoctorReport.From(checks);
        if (Quiet) WriteObject(report.Ok);
        else if (AsJson) WriteObject(report.ToJson(indented: true));
        else WriteObject(checks, enumerateCollection: true);
        if (FailOnBlocker && !report.Ok)
        {
            ThrowTerminatingError(ToErrorRecord(new RequiemException("HealthBlocker", ErrorKind.InvalidOperation,
                "Unhealthy: " + string.Join("; ", report.Blockers), report)));
        }
    }
}
