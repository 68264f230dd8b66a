using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Config;
using Requiem.Engine.Health;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemHealth: the Requiem CLI's <c>doctor</c> — every check with a status; Fail is a blocker.</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemHealth")]
[OutputType(typeof(HealthCheck), typeof(bool))]
public sealed class TestRequiemHealthCommand : RequiemStoreCmdlet
{
    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Return only $true (no blockers) or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void EndProcessingCore()
    {
        WarnIfLauncherUnusable();
        var (config, configError, root) = ReadDiagnosticContext(Cas);
        var checks = Doctor.Run(root, config, configError);
        if (Quiet) WriteObject(checks.All(c => c.Status != "Fail"));
        else WriteObject(checks, enumerateCollection: true);
    }
}
