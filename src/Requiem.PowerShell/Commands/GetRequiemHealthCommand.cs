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
        Requiem.Engine.Config.RequiemConfig config;
        try { config = Requiem.Engine.Config.RequiemConfig.LoadDefault(); }
        catch (Requiem.Engine.RequiemException) { config = new Requiem.Engine.Config.RequiemConfig(); } // Test-RequiemConfig reports a broken config
        var report = HealthReport.Create(config: config);
        WriteObject(AsJson ? report.ToJson() : report);
    }
}
