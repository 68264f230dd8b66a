using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemCasRef: lists refs (named GC roots), optionally filtered by name with wildcards.</summary>
[Cmdlet(VerbsCommon.Get, "RequiemCasRef")]
[OutputType(typeof(CasRefInfo))]
public sealed class GetRequiemCasRefCommand : RequiemStoreCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(CasRefCompleter))]
    public string[]? Name { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    private CasStore? _store;

    protected override void BeginProcessing() => _store = OpenStore(Cas, create: false);

    /// <summary>Every ref, listed once per command and only when a wildcard (or no name) needs it.</summary>
    private List<(string Name, string Hash)>? _all;

    protected override void ProcessRecord()
    {
        var store = _store!;
        if (Name is null)
        {
            foreach (var r in store.EnumerateRefs()) WriteObject(ToInfo(store, r.Name, r.Hash));
            return;
        }
        foreach (var n in Name)
        {
            if (!WildcardPattern.ContainsWildcardCharacters(n))
            {
                // An exact name is one file read, however many refs the store holds (results/ grows with every run).
                string? hash;
                try { hash = store.GetRef(n); }
                catch (RequiemException ex)
                {
                    WriteError(ToErrorRecord(ex)); // e.g. InvalidRefName
                    continue;
                }
                if (hash is null)
                {
                    WriteError(ToErrorRecord(new RequiemException("RefNotFound", ErrorKind.ObjectNotFound, $"There is no ref named '{n}' in the store at '{store.Root}'.", n)));
                    continue;
                }
                WriteObject(ToInfo(store, n, hash));
                continue;
            }
            _all ??= store.EnumerateRefs().Select(r => (r.Name, r.Hash)).ToList();
            var pattern = new WildcardPattern(n, WildcardOptions.None);
            foreach (var r in _all.Where(r => pattern.IsMatch(r.Name))) WriteObject(ToInfo(store, r.Name, r.Hash));
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
