using System.Collections;
using System.Management.Automation;
using System.Text;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Hashing;
using Requiem.Engine.Proof;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Test-RequiemProof: verifies a proof bundle or signed envelope — canonical form, Merkle root, signature, every
/// referenced CAS object — and optionally re-executes the request. A failed verification is a result, not an error.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemProof", DefaultParameterSetName = PathSet)]
[OutputType(typeof(ProofVerification), typeof(bool))]
public sealed class TestRequiemProofCommand : RequiemStoreCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string BundleSet = "Bundle";
    private const string MerkleRootSet = "MerkleRoot";
    private const string ReplayCommand = "Invoke-RequiemReplay";
    private const long MaxBundleBytes = 16 << 20;

    private CasStore? _store;
    private List<VerificationKey> _keys = new();
    private readonly StepOutputs _stepOutputs = new();

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>A bundle given as an object: New-RequiemProof output, JSON text, or a ConvertFrom-Json object.</summary>
    [Parameter(Mandatory = true, ParameterSetName = BundleSet, ValueFromPipeline = true)]
    public object? Bundle { get; set; }

    /// <summary>A proof stored in the CAS under proofs/&lt;merkle_root&gt;.</summary>
    [Parameter(Mandatory = true, ParameterSetName = MerkleRootSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] MerkleRoot { get; set; } = Array.Empty<string>();

    /// <summary>PEM public key files; a signature must verify with one of them.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? PublicKey { get; set; }

    /// <summary>A trusted-keys file (JSON trusted_keys list or concatenated PEM public keys).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TrustedKeys { get; set; }

    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Re-execute the request with Invoke-RequiemReplay and compare with the recorded result.</summary>
    [Parameter]
    public SwitchParameter Replay { get; set; }

    /// <summary>An unsigned bundle is invalid.</summary>
    [Parameter]
    public SwitchParameter RequireSignature { get; set; }

    /// <summary>Return only $true or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>Gate: an invalid proof is a terminating error (ProofInvalid).</summary>
    [Parameter]
    public SwitchParameter FailOnInvalid { get; set; }

    protected override void BeginProcessing()
    {
        _store = OpenStore(Cas, create: false);
        foreach (var p in PublicKey ?? Array.Empty<string>())
        {
            var path = ResolveNewPath(p);
            _keys.Add(Run(() => VerificationKey.Load(path)));
        }
        if (TrustedKeys is not null)
        {
            var path = ResolveNewPath(TrustedKeys);
            _keys.AddRange(Run(() => VerificationKey.LoadTrusted(path)));
        }
    }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case BundleSet:
                VerifyObject(Bundle);
                break;
            case MerkleRootSet:
                foreach (var root in MerkleRoot)
                {
                    var normalized = TryRun(() => Hex.NormalizeDigest(root, "merkle root"));
                    if (normalized is null) continue;
                    var doc = TryRun(() => ProofBuilder.LoadStoredDocument(_store!, normalized, out _)
                        ?? throw new RequiemException("ProofNotFound", ErrorKind.ObjectNotFound, $"The CAS at '{_store!.Root}' has no proofs/{normalized} ref.", normalized));
                    if (doc is null) QuietFalse(); else Emit(Verify(doc, requireCanonical: true, $"proofs/{normalized}"));
                }
                break;
            default:
                // Under the gate, a path that names no proof fails it: a CI step must not pass because nothing was checked.
                var files = ResolveFileSystemPaths(ParameterSetName == PathSet ? Path : LiteralPath, ParameterSetName == LiteralPathSet,
                    FailOnInvalid ? ThrowTerminatingError : null);
                var throttle = new ProgressThrottle(TimeSpan.FromMilliseconds(250), checkEvery: 8);
                for (var i = 0; i < files.Count; i++)
                {
                    var file = files[i];
                    if (files.Count > 1 && throttle.ShouldReport())
                        WriteProgress(new ProgressRecord(1, "Verifying proofs", $"{i} of {files.Count}: {file}") { PercentComplete = i * 100 / files.Count });
                    var bytes = TryRun(() => ReadBundleFile(file));
                    if (bytes is null) QuietFalse(); else Emit(Verify(bytes, requireCanonical: true, file));
                }
                if (files.Count > 1) CompleteProgress(1, "Verifying proofs");
                break;
        }
    }

    private void VerifyObject(object? input)
    {
        var value = input is PSObject pso && pso.BaseObject is not PSCustomObject ? pso.BaseObject : input;
        switch (value)
        {
            case FileInfo f:
                var bytes = TryRun(() => ReadBundleFile(f.FullName));
                if (bytes is null) QuietFalse(); else Emit(Verify(bytes, true, f.FullName));
                return;
            case ProofInfo info:
                Emit(Verify(Encoding.UTF8.GetBytes(info.Json), true, info.Path ?? info.RefName));
                return;
            case string s when !s.TrimStart().StartsWith('{'):
                var path = ResolveNewPath(s);
                var fileBytes = TryRun(() => ReadBundleFile(path));
                if (fileBytes is null) QuietFalse(); else Emit(Verify(fileBytes, true, path));
                return;
            case string json:
                Emit(Verify(Encoding.UTF8.GetBytes(json), false, null));
                return;
        }
        var canonical = TryRun(() =>
        {
            var node = JsonInput.ToNode(input, "proof bundle")
                       ?? throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidArgument, "The bundle is null.", null);
            return ProofVerifier.FromNode(node);
        });
        if (canonical is null) QuietFalse(); else Emit(Verify(canonical, false, null));
    }

    private static byte[] ReadBundleFile(string file)
    {
        try
        {
            if (Directory.Exists(file))
                throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument,
                    $"'{file}' is a directory, not a proof file; to verify the proofs in it, use -Path '{System.IO.Path.Combine(file, "*.json")}'.", file);
            var info = new FileInfo(file);
            if (!info.Exists) throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"'{file}' does not exist.", file);
            if (info.Length > MaxBundleBytes)
                throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData, $"'{file}' is {info.Length} bytes, too large to be a proof bundle.", file);
            return File.ReadAllBytes(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot read '{file}': {ex.Message}", file, ex);
        }
    }

    private ProofVerification Verify(byte[] bytes, bool requireCanonical, string? path)
    {
        var options = new ProofVerifyOptions
        {
            Store = _store, Keys = _keys, RequireSignature = RequireSignature, RequireCanonical = requireCanonical, Cancel = CancellationToken,
        };
        ProofVerification v;
        try { v = ProofVerifier.Verify(bytes, options, _store!.HashPrimitive); }
        catch (OperationCanceledException) when (CancellationToken.IsCancellationRequested) { throw new PipelineStoppedException(); }
        v.Path = path;
        if (Replay) RunReplay(v);
        Requiem.Engine.Metrics.MetricsRegistry.Add(Requiem.Engine.Metrics.Counter.ProofVerified);
        if (!v.Valid) Requiem.Engine.Metrics.MetricsRegistry.Add(Requiem.Engine.Metrics.Counter.ProofInvalid);
        return v;
    }

    private void RunReplay(ProofVerification v)
    {
        if (v.RequestJson is null || v.ResultJson is null)
        {
            v.AddReason("replay: skipped: the request and result could not be read back from the CAS");
            return;
        }
        CommandInfo? command;
        try { command = InvokeCommand.GetCommand(ReplayCommand, CommandTypes.Cmdlet | CommandTypes.Function | CommandTypes.Alias); }
        catch (RuntimeException) { command = null; }
        if (command is null)
        {
            v.AddReason($"replay unavailable: {ReplayCommand} not found");
            return;
        }
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "requiem-replay-" + Guid.NewGuid().ToString("n"));
        try
        {
            Directory.CreateDirectory(dir);
            var requestFile = System.IO.Path.Combine(dir, "request.json");
            var resultFile = System.IO.Path.Combine(dir, "result.json");
            File.WriteAllText(requestFile, v.RequestJson);
            File.WriteAllText(resultFile, v.ResultJson);
            var passCas = command.Parameters?.ContainsKey("Cas") == true;
            var script = ScriptBlock.Create(passCas
                ? "param($q, $r, $c) " + ReplayCommand + " -Request $q -Result $r -Cas $c"
                : "param($q, $r) " + ReplayCommand + " -Request $q -Result $r");
            var output = passCas
                ? InvokeCommand.InvokeScript(false, script, null, requestFile, resultFile, _store!.Root)
                : InvokeCommand.InvokeScript(false, script, null, requestFile, resultFile);
            v.Replayed = true;
            var report = output.FirstOrDefault(o => o?.Properties["Match"] is not null);
            if (report is null)
            {
                v.AddReason($"replay: {ReplayCommand} returned no object with a Match property");
                return;
            }
            if (!LanguagePrimitives.IsTrue(report.Properties["Match"].Value))
            {
                var diffs = report.Properties["Differences"]?.Value;
                var text = diffs switch
                {
                    null => "",
                    string s => s,
                    IEnumerable e => string.Join("; ", e.Cast<object?>().Select(d => d?.ToString())),
                    _ => diffs.ToString() ?? "",
                };
                v.AddReason("replay: re-execution does not match the recorded result" + (text.Length > 0 ? ": " + text : ""));
            }
        }
        catch (PipelineStoppedException)
        {
            throw;
        }
        catch (Exception ex) when (ex is RuntimeException or IOException or UnauthorizedAccessException)
        {
            v.AddReason($"replay: {ReplayCommand} failed: {ex.Message}");
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>With -Quiet, an input that could not even be read is a plain $false, so `if (... -Quiet)` never sees $null.</summary>
    private void QuietFalse()
    {
        if (Quiet) WriteObject(false);
    }

    private void Emit(ProofVerification v)
    {
        WriteObject(Quiet ? v.Valid : v);
        if (!FailOnInvalid) return;
        _stepOutputs.Add(v);
        if (!v.Valid)
        {
            Run(() => { _stepOutputs.Flush(this); return true; });
            var ex = new RequiemException("ProofInvalid", ErrorKind.SecurityError,
                $"The proof {v.Path ?? v.MerkleRoot} is invalid: {string.Join("; ", v.Reasons)}", v.Path ?? v.MerkleRoot);
            ThrowTerminatingError(ToErrorRecord(ex));
        }
    }

    protected override void EndProcessingCore() => Run(() => { _stepOutputs.Flush(this); return true; });

    protected override void OnDispose() => _stepOutputs.FlushAtDispose();
}
