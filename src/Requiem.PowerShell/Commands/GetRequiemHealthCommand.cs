using System.Management.Automation;
using Requiem.Engine.Health;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemHealth: the Requiem CLI's <c>health</c> — versions, hash primitive and probed sandbox capabilities.</summary>
[Cmdlet(VerbsCommon.Get, "RequiemHealth")]
[OutputType(typeof(HealthReport), typeof(string))]
public sealed class GetRequiemHealthCommand : RequiemCmdlet
{
    /// <summary>Emit the Requiem CLI's snake_case JSON document instead of an object.</summary>
    [Parameter]
    public SwitchParameter AsJson { get; set; }

    protected override void EndProcessingCore()
    {
        WarnIfLauncherUnusable();
        var report = HealthReport.Create();
        WriteObject(AsJson ? report.ToJson() : report);
    }
}
