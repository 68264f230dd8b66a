using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.Engine.Proof;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>New-RequiemProof: builds a proof bundle for an execution, optionally signs it, and stores it in the CAS.</summary>
[Cmdlet(VerbsCommon.New, "RequiemProof", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ProofInfo))]
public sealed class NewRequiemProofCommand : RequiemStoreCmdlet
{
    private CasStore? _store;
    private SigningKey? _key;
    private string? _outFile;
    private bool _outIsDirectory;
    private int _count;

    /// <summary>The execution request (file, JSON text, hashtable, object or CAS digest).</summary>
    [Parameter(Position = 0)]
    public object? Request { get; set; }

    /// <summary>The execution result (Invoke-RequiemExec output, file, JSON text, hashtable, CAS digest or results/ ref).</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
    public object? Result { get; set; }

    /// <summary>PEM private key (from New-RequiemSigningKey); the file becomes a signed DSSE envelope.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SigningKey { get; set; }

    /// <summary>Write the bundle (or envelope) here; an existing directory receives &lt;merkle_root&gt;.proof.json.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? OutFile { get; set; }

    [Parameter]
    public string? Cas { get; set; }

    protected override void BeginProcessing()
    {
        _store = OpenStore(Cas);
        if (SigningKey is not null)
        {
            var keyPath = ResolveNewPath(SigningKey);
            _key = Run(() => Engine.Proof.SigningKey.Load(keyPath));
            if (_key.InsecurePermissions)
                WriteWarning($"The private key '{keyPath}' is readable by other users; restrict it with 'chmod 600 {keyPath}'.");
        }
        if (OutFile is not null)
        {
            _outFile = ResolveNewPath(OutFile);
            _outIsDirectory = Directory.Exists(_outFile);
        }
    }

    protected override void ProcessRecord()
    {
        var store = _store!;
        // Each piped result is its own item: one that cannot be proven is written as an error and the next goes on.
        var result = TryRun(() => ExecDocumentInput.Resolve(this, Result, store, isResult: true));
        if (result is null) return;
        result = ExecDocumentInput.PreferStoredResult(store, result);
        var request = Request is null ? null : TryRun(() => ExecDocumentInput.Resolve(this, Request, store, isResult: false));
        if (Request is not null && request is null) return;
        var target = _outFile ?? $"CAS '{store.Root}'";
        if (!ShouldProcess(target, "Create proof bundle")) return;
        _count++;
        if (_count > 1 && _outFile is not null && !_outIsDirectory)
            WriteWarning($"Several results were piped with one -OutFile: '{_outFile}' holds only the last proof (give a directory to keep each).");
        var info = TryRun(() => ProofBuilder.Create(store, request, result, _key, _outIsDirectory ? null : _outFile));
        if (info is null) return;
        Audit(store, Requiem.Engine.Audit.AuditActions.ProofCreated, new[] { info.ManifestDigest, info.RequestDigest, info.ResultDigest },
            new Dictionary<string, object?> { ["merkle_root"] = info.MerkleRoot, ["ref"] = "proofs/" + info.MerkleRoot, ["signed"] = info.Signed });
        if (_outIsDirectory)
        {
            var file = System.IO.Path.Combine(_outFile!, info.MerkleRoot + ".proof.json");
            if (TryRun(() => { ProofBuilder.WriteFile(file, info.Json); return file; }) is null) return;
            info = info with { Path = file };
        }
        WriteObject(info);
    }

    /// <summary>The private key is released however the pipeline ends (error, Ctrl+C or success).</summary>
    protected override void OnDispose() => _key?.Dispose();
}
