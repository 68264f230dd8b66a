using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Config;
using Requiem.Engine.Health;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemReplacement: the Requiem CLI's <c>validate-replacement</c> — blockers to cutting over to this engine.</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemReplacement")]
[OutputType(typeof(ReplacementReport), typeof(bool), typeof(string))]
public sealed class TestRequiemReplacementCommand : RequiemStoreCmdlet
{
    /// <summary>The CAS store to check (default: $env:REQUIEM_CAS, the config, or the data directory).</summary>
    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Return only $true (ready) or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>Emit the Requiem CLI's JSON document instead of an object.</summary>
    [Parameter]
    public SwitchParameter AsJson { get; set; }

    /// <summary>Gate: a terminating ReplacementBlocked error when there is any blocker.</summary>
    [Parameter]
    public SwitchParameter FailOnBlocker { get; set; }

    protected override void EndProcessingCore()
    {
        WarnIfLauncherUnusable();
        var (config, configError, root) = ReadDiagnosticContext(Cas);
        var report = ReplacementReadiness.Evaluate(root, config, configError);
        if (FailOnBlocker && !report.Ok)
        {
            ThrowTerminatingError(ToErrorRecord(new RequiemException("ReplacementBlocked", ErrorKind.InvalidOperation,
                "Not ready to replace the previous engine: " + string.Join("; ", report.Blockers), report)));
        }
        if (Quiet) WriteObject(report.Ok);
        else if (AsJson) WriteObject(report.ToJson(indented: true));
        else WriteObject(report);
    }
}
