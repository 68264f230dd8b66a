using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemCasObject: verified information about objects (the Requiem CLI's <c>cas info</c>), or a listing of all objects.</summary>
[Cmdlet(VerbsCommon.Get, "RequiemCasObject", DefaultParameterSetName = ListSet)]
[OutputType(typeof(CasObjectInfo))]
public sealed class GetRequiemCasObjectCommand : RequiemStoreCmdlet
{
    private const string ListSet = "List";
    private const string HashSet = "Hash";

    private CasStore? _store;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = HashSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CasHashCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Hash { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void BeginProcessing() => _store = OpenStore(Cas, create: false);

    protected override void ProcessRecord()
    {
        var store = _store!;
        if (ParameterSetName == ListSet)
        {
            foreach (var (path, hash, encoding) in store.EnumerateObjectFiles(sorted: true))
            {
                if (CancellationToken.IsCancellationRequested) throw new PipelineStoppedException();
                CasObjectInfo info;
                try { info = store.Describe(path, hash, encoding); }
                catch (FileNotFoundException) { continue; } // removed by a concurrent GC
                WriteObject(info);
            }
            return;
        }
        // Several full hashes at once (-Hash array): objects only the remote store holds come down concurrently first.
        if (Hash.Length > 1) store.Prefetch(Hash, CancellationToken);
        foreach (var h in Hash)
        {
            var info = TryRun(() => store.GetInfo(store.ResolveHash(h), verify: true, CancellationToken));
            if (info is not null) WriteObject(info);
        }
    }
}
