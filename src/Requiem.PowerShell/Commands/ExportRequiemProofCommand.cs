using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Proof;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Export-RequiemProof: writes a proof and every CAS object it references into one portable tar archive.</summary>
[Cmdlet(VerbsData.Export, "RequiemProof", DefaultParameterSetName = PathSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ProofArchiveInfo))]
public sealed class ExportRequiemProofCommand : RequiemStoreCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string MerkleRootSet = "MerkleRoot";

    private CasStore? _store;

    /// <summary>Proof files (bundle or envelope).</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>A proof stored in the CAS under proofs/&lt;merkle_root&gt; (New-RequiemProof output binds here).</summary>
    [Parameter(Mandatory = true, ParameterSetName = MerkleRootSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string MerkleRoot { get; set; } = "";

    /// <summary>The archive file to write (an existing directory receives &lt;merkle_root&gt;.proof.tar).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Replace an existing archive.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void BeginProcessing() => _store = OpenStore(Cas, create: false);

    protected override void ProcessRecord()
    {
        if (ParameterSetName == MerkleRootSet)
        {
            var root = Run(() => Hex.NormalizeDigest(MerkleRoot, "merkle root"));
            var doc = Run(() => ProofBuilder.LoadStoredDocument(_store!, root, out _)
                ?? throw new RequiemException("ProofNotFound", ErrorKind.ObjectNotFound, $"The CAS at '{_store!.Root}' has no proofs/{root} ref.", root));
            Export(doc, root);
            return;
        }
        foreach (var file in ResolveFileSystemPaths(ParameterSetName == PathSet ? Path : LiteralPath, ParameterSetName == LiteralPathSet))
        {
            var bytes = TryRun(() =>
            {
                if (Directory.Exists(file))
                    throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{file}' is a directory, not a proof file.", file);
                try { return File.ReadAllBytes(file); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot read '{file}': {ex.Message}", file, ex);
                }
            });
            if (bytes is null) continue;
            var root = TryRun(() => ProofArchive.ReadDocument(bytes, file).Bundle.MerkleRoot);
            if (root is not null) Export(bytes, root);
        }
    }

    private void Export(byte[] document, string root)
    {
        var destination = ResolveNewPath(Destination);
        if (Directory.Exists(destination)) destination = System.IO.Path.Combine(destination, root + ".proof.tar");
        if (_written.TryGetValue(destination, out var earlier) && earlier != root)
        {
            WriteError(ToErrorRecord(new RequiemException("DestinationReused", ErrorKind.InvalidArgument,
                $"Proof {root} would overwrite proof {earlier} exported to '{destination}' by this command; give a folder as -Destination to keep each.", root)));
            return;
        }
        if (!ShouldProcess(destination, $"Export proof {root} with its objects")) return;
        var info = TryRun(() => ProofArchive.Export(_store!, document, destination, Force, CancellationToken));
        if (info is null) return;
        _written[destination] = root;
        WriteObject(info);
    }

    /// <summary>Archives this invocation wrote, with the proof each holds (-Force must not let a second proof replace the first).</summary>
    private readonly Dictionary<string, string> _written = new(StringComparer.Ordinal);
}
