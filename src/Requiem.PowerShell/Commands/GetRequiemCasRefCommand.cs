using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemCasRef: lists refs (named GC roots), optionally filtered by name with wildcards.</summary>
[Cmdlet(VerbsCommon.Get, "RequiemCasRef")]
[OutputType(typeof(CasRefInfo))]
public sealed class GetRequiemCasRefCommand : RequiemCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    private CasStore? _store;

    protected override void BeginProcessing() => _store = OpenStore(Cas, create: false);

    protected override void ProcessRecord()
    {
        var store = _store!;
        var all = store.EnumerateRefs().ToList();
        if (Name is null)
        {
            foreach (var r in all) WriteObject(ToInfo(store, r.Name, r.Hash));
            return;
        }
        foreach (var n in Name)
        {
            var pattern = new WildcardPattern(n, WildcardOptions.None);
            var matches = all.Where(r => pattern.IsMatch(r.Name)).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(n))
            {
                WriteError(ToErrorRecord(new RequiemException("RefNotFound", ErrorKind.ObjectNotFound, $"There is no ref named '{n}'.", n)));
                continue;
            }
            foreach (var r in matches) WriteObject(ToInfo(store, r.Name, r.Hash));
        }
    }

    private static CasRefInfo ToInfo(CasStore store, string name, string hash) => new()
    {
        Name = name,
        Hash = hash,
        Exists = store.Contains(hash),
        LastWriteTimeUtc = File.GetLastWriteTimeUtc(store.RefPath(name)),
    };
}
