using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Remove-RequiemCasRef: deletes refs; the objects they named become collectable once older than the GC grace period.</summary>
[Cmdlet(VerbsCommon.Remove, "RequiemCasRef", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
public sealed class RemoveRequiemCasRefCommand : RequiemStoreCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(CasRefCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    private CasStore? _store;

    protected override void BeginProcessing() => _store = OpenStore(Cas, create: false);

    protected override void ProcessRecord()
    {
        var store = _store!;
        foreach (var n in Name)
        {
            var hash = TryRun(() =>
            {
                store.RefPath(n);
                try { return store.GetRef(n) ?? ""; }
                catch (RequiemException ex) when (ex.ErrorId == "InvalidRefFile") { return ""; } // a damaged ref (e.g. a FIFO) can still be removed
            });
            if (hash is null) continue;
            if (!File.Exists(store.RefPath(n)))
            {
                WriteError(ToErrorRecord(new RequiemException("RefNotFound", ErrorKind.ObjectNotFound, $"There is no ref named '{n}' in the store at '{store.Root}'.", n)));
                continue;
            }
            if (!ShouldProcess($"refs/{n}" + (hash.Length > 0 ? $" -> {hash}" : ""), "Remove CAS ref")) continue;
            if (TryRun(() => (object)store.RemoveRef(n)) is true)
                Audit(store, Requiem.Engine.Audit.AuditActions.RefRemoved, hash.Length > 0 ? new[] { hash } : Array.Empty<string>(), new Dictionary<string, object?> { ["ref"] = n });
        }
    }
}
