using System.Management.Automation;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemDigest: does a file, string or byte array have the expected digest?</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemDigest", DefaultParameterSetName = PathSet)]
[OutputType(typeof(DigestVerification), typeof(ResultDigestVerification), typeof(bool))]
public sealed class TestRequiemDigestCommand : RequiemCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string InputObjectSet = "InputObject";
    private const string ResultSet = "Result";

    private HashPrimitive? _hash;
    private string _expected = "";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = InputObjectSet, ValueFromPipeline = true)]
    [AllowEmptyString]
    public object? InputObject { get; set; }

    /// <summary>The digest the input should have (64 hex characters, any case).</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = PathSet)]
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = LiteralPathSet)]
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = InputObjectSet)]
    [Alias("Hash", "Digest")]
    public string Expected { get; set; } = "";

    /// <summary>A stored execution result (path to its JSON, or the result object): verify its result_digest (the Requiem CLI's digest verify --result).</summary>
    [Parameter(Mandatory = true, ParameterSetName = ResultSet)]
    [ValidateNotNull]
    public object? Result { get; set; }

    /// <summary>With -Result: also check the result's request_digest against this request.</summary>
    [Parameter(ParameterSetName = ResultSet)]
    public object? Request { get; set; }

    [Parameter]
    public HashDomain Domain { get; set; } = HashDomain.None;

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    /// <summary>Return only $true or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void BeginProcessing()
    {
        if (ParameterSetName == ResultSet)
        {
            _hash = SelectHash(AllowHashFallback);
            return;
        }
        _expected = Run(() => Hex.NormalizeDigest(Expected, "expected digest"));
        _hash = SelectHash(AllowHashFallback);
    }

    protected override void ProcessRecord()
    {
        var hash = _hash!;
        if (ParameterSetName == ResultSet)
        {
            VerifyResult(hash);
            return;
        }
        if (ParameterSetName == InputObjectSet && InputBytes.AsFilePath(InputObject) is null)
        {
            Emit(TryRun(() => hash.Digest(InputBytes.From(InputObject), Domain)));
            return;
        }
        foreach (var file in ResolveInputFiles(ParameterSetName == PathSet ? Path : null, ParameterSetName == LiteralPathSet ? LiteralPath : null, InputObject))
        {
            Emit(TryRun(() => hash.HashFile(file, Domain, CancellationToken, CreateEngineOutput())));
        }
    }

    private void VerifyResult(HashPrimitive hash)
    {
        var (doc, target) = Run(() => ExecInput.ToResultDocument(Result, ResolveNewPath));
        var (valid, actual) = Replay.VerifyResultDigest(doc, hash);
        bool? requestValid = null;
        string? actualRequest = null;
        var recordedRequest = doc["request_digest"]?.ToString();
        if (Request is not null)
        {
            var request = Run(() => ExecInput.ToRequest(Request, Config, ResolveNewPath));
            actualRequest = request.ComputeDigest(hash);
            requestValid = string.Equals(actualRequest, recordedRequest, StringComparison.OrdinalIgnoreCase);
        }
        var v = new ResultDigestVerification
        {
            Valid = valid && requestValid != false,
            Expected = doc["result_digest"]?.ToString() ?? "",
            Actual = actual,
            RequestDigestValid = requestValid,
            ExpectedRequestDigest = recordedRequest,
            ActualRequestDigest = actualRequest,
            Path = target == "result" ? null : target,
        };
        WriteObject(Quiet ? v.Valid : v);
    }

    private void Emit(DigestInfo? actual)
    {
        if (actual is null)
        {
            if (Quiet) WriteObject(false);
            return;
        }
        var result = new DigestVerification(string.Equals(actual.Hash, _expected, StringComparison.Ordinal), _expected, actual);
        WriteObject(Quiet ? result.Valid : result);
    }
}
