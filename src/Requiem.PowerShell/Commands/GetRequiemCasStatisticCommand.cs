using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemCasStatistic: object count, logical and stored bytes, by encoding, largest objects, dedup hits (the Requiem CLI's <c>cas stats</c>).</summary>
[Cmdlet(VerbsCommon.Get, "RequiemCasStatistic")]
[OutputType(typeof(CasStatistics))]
public sealed class GetRequiemCasStatisticCommand : RequiemStoreCmdlet
{
    private const int ProgressId = 1;

    [Parameter(Position = 0)]
    [ValidateRange(0, 100000)]
    public int Top { get; set; } = 10;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void EndProcessingCore()
    {
        var store = OpenStore(Cas, create: false);
        var output = CreateEngineOutput(ProgressId);
        var stats = Run(() => store.GetStatistics(Top, output, CancellationToken));
        CompleteProgress(ProgressId, "Get-RequiemCasStatistic");
        WriteObject(stats);
    }
}
