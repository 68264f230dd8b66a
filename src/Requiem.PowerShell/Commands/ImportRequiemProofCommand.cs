using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.Engine.Proof;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Import-RequiemProof: verifies every object of a proof archive and stores the proof and its objects in a CAS.</summary>
[Cmdlet(VerbsData.Import, "RequiemProof", DefaultParameterSetName = PathSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ProofInfo))]
public sealed class ImportRequiemProofCommand : RequiemStoreCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    private CasStore? _store;

    /// <summary>Archive files written by Export-RequiemProof.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    [Parameter]
    public string? Cas { get; set; }

    protected override void BeginProcessing() => _store = OpenStore(Cas);

    protected override void ProcessRecord()
    {
        foreach (var file in ResolveFileSystemPaths(ParameterSetName == PathSet ? Path : LiteralPath, ParameterSetName == LiteralPathSet))
        {
            if (!ShouldProcess(file, $"Import proof archive into CAS '{_store!.Root}'")) continue;
            var info = TryRun(() => ProofArchive.Import(_store!, file, CancellationToken));
            if (info is not null)
                Audit(_store!, Requiem.Engine.Audit.AuditActions.ProofImported, new[] { info.ManifestDigest, info.RequestDigest, info.ResultDigest },
                    new Dictionary<string, object?> { ["merkle_root"] = info.MerkleRoot, ["ref"] = "proofs/" + info.MerkleRoot, ["archive"] = file });
            if (info is not null) WriteObject(info);
        }
    }
}
