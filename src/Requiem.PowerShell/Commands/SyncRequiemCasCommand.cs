using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Sync-RequiemCas: uploads to the remote store every local object, ref and action-cache entry it lacks, including
/// what an offline or interrupted run left in the pending journal. Returns the counts; an unreachable remote is a
/// RemoteUnavailable terminating error (nothing is lost: the journal keeps what waits).
/// </summary>
[Cmdlet(VerbsData.Sync, "RequiemCas", SupportsShouldProcess = true)]
[OutputType(typeof(CasSyncResult))]
public sealed class SyncRequiemCasCommand : RequiemStoreCmdlet
{
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    /// <summary>How many uploads run at once.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = CasRemote.DefaultParallelism;

    protected override bool SkipPendingUpload => true;

    protected override void EndProcessingCore()
    {
        var store = OpenStore(Cas);
        var remote = RequireRemote(store);
        if (!ShouldProcess(remote.Backend.Description, "Upload what the remote store lacks")) return;
        var result = Run(() => remote.Sync(ThrottleLimit, CancellationToken));
        WriteRemoteWarnings();
        WriteVerbose($"Remote store {result.Remote}: {result.Uploaded} uploaded ({result.BytesUploaded} bytes), {result.AlreadyPresent} already there, {result.Failed} failed, {result.Pending} still waiting.");
        WriteObject(result);
    }
}
