using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Set-RequiemCasRef: points a named ref (a GC root) at an object.</summary>
[Cmdlet(VerbsCommon.Set, "RequiemCasRef", SupportsShouldProcess = true)]
[OutputType(typeof(CasRefInfo))]
public sealed class SetRequiemCasRefCommand : RequiemStoreCmdlet
{
    private CasStore? _store;

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(CasRefCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CasHashCompleter))]
    [ValidateNotNullOrEmpty]
    public string Hash { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void BeginProcessing() => _store = OpenStore(Cas);

    protected override void ProcessRecord()
    {
        var store = _store!;
        var hash = TryRun(() => { store.RefPath(Name); return store.ResolveHash(Hash); });
        if (hash is null) return;
        if (!ShouldProcess($"refs/{Name}", $"Point at CAS object {hash}")) return;
        var ok = TryRun(() => { store.SetRef(Name, hash); return (object)true; });
        if (ok is not null) Audit(store, Requiem.Engine.Audit.AuditActions.RefSet, new[] { hash }, new Dictionary<string, object?> { ["ref"] = Name });
        if (ok is not null && PassThru)
            WriteObject(new CasRefInfo { Name = Name, Hash = hash, Exists = true, LastWriteTimeUtc = File.GetLastWriteTimeUtc(store.RefPath(Name)) });
    }
}
