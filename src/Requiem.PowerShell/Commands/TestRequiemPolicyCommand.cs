using System.Management.Automation;
using Requiem.Engine.Policy;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemPolicy: the Requiem CLI's <c>policy check</c> — a request checked against its policy and this machine, nothing run.</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemPolicy")]
[OutputType(typeof(PolicyCheckResult), typeof(bool))]
public sealed class TestRequiemPolicyCommand : RequiemCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object? Request { get; set; }

    /// <summary>Return only $true (no violations) or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    protected override void ProcessRecord()
    {
        var hash = SelectHash(AllowHashFallback);
        var request = TryRun(() => Internal.ExecInput.ToRequest(Request, Config, ResolveNewPath));
        if (request is null)
        {
            if (Quiet) WriteObject(false);
            return;
        }
        var result = PolicyEngine.Check(request, hash);
        WriteObject(Quiet ? result.Valid : result);
    }
}
