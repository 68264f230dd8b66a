using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Invoke-RequiemReplay: the Requiem CLI's <c>exec replay</c> — re-execute a request and compare with a recorded result.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "RequiemReplay", SupportsShouldProcess = true)]
[OutputType(typeof(ReplayReport))]
public sealed class InvokeRequiemReplayCommand : RequiemStoreCmdlet
{
    /// <summary>The request to re-execute (path, JSON text, hashtable or ExecRequest). Default: the request stored in the CAS with the result.</summary>
    [Parameter(Position = 0)]
    public object? Request { get; set; }

    /// <summary>The recorded result: a result object, a path to a result JSON file, or a result digest recorded in the CAS.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object? Result { get; set; }

    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Return only $true (match) or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    private CasStore? _store;

    protected override void BeginProcessing()
    {
        WarnIfLauncherUnusable();
        _store = OpenStore(Cas, AllowHashFallback);
    }

    protected override void ProcessRecord()
    {
        var store = _store!;
        // One bad record (unreadable result, missing request) is a per-item error: the other records still replay.
        var recorded = TryRun(() => ExecInput.ToResult(Result, store, ResolveNewPath));
        if (recorded is null) { if (Quiet) WriteObject(false); return; }
        var request = TryRun(() =>
        {
            if (Request is not null) return ExecInput.ToRequest(Request, Config, ResolveNewPath);
            if (recorded.Request is not null) return recorded.Request;
            if (recorded.RequestBlobDigest.Length == 0)
                throw new RequiemException("RequestNotFound", ErrorKind.ObjectNotFound, "The result names no stored request; pass -Request.", Result);
            var bytes = store.ReadAllBytes(recorded.RequestBlobDigest, CancellationToken);
            return ExecRequestParser.Parse(Requiem.Engine.Json.StrictText.Decode(bytes, "stored request", recorded.RequestBlobDigest), Config, recorded.RequestBlobDigest);
        });
        if (request is null) { if (Quiet) WriteObject(false); return; }
        if (!ShouldProcess($"{request.Command} (recorded result {recorded.ResultDigest})", "Re-run in the Requiem sandbox and compare")) return;
        // The runner raises warnings from worker threads: queue them and write them here, on the pipeline thread.
        var output = new QueuedEngineOutput();
        var replayed = TryRun(() => ExecRunner.Run(request, new ExecOptions { Store = store, Output = output }, CancellationToken));
        output.WriteTo(this);
        if (replayed is null) { if (Quiet) WriteObject(false); return; }
        var report = Replay.Compare(recorded, replayed, store);
        WriteObject(Quiet ? report.Match : report);
    }
}
