using System.Management.Automation;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Hashing;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemDigest: BLAKE3 (optionally domain-separated) digests of files, strings or bytes.</summary>
[Cmdlet(VerbsCommon.Get, "RequiemDigest", DefaultParameterSetName = PathSet)]
[OutputType(typeof(DigestInfo))]
public sealed class GetRequiemDigestCommand : RequiemCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string InputObjectSet = "InputObject";
    private const int ProgressId = 1;
    private const int FileProgressId = 2;
    private const string Activity = "Get-RequiemDigest";

    private HashPrimitive? _hash;
    private ProgressThrottle? _throttle;
    private long _count;
    private readonly PipedBytes _pipedBytes = new();

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = InputObjectSet, ValueFromPipeline = true)]
    [AllowEmptyString]
    public object? InputObject { get; set; }

    [Parameter]
    public HashDomain Domain { get; set; } = HashDomain.None;

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    /// <summary>At most this many cores hash one large file (default: every core, or hash.max_threads from the config).</summary>
    [Parameter]
    [ValidateRange(1, 4096)]
    public int ThrottleLimit { get; set; }

    protected override void BeginProcessing()
    {
        _hash = SelectHash(AllowHashFallback);
        if (MyInvocation.BoundParameters.ContainsKey(nameof(ThrottleLimit))) _hash = _hash.WithMaxThreads(ThrottleLimit);
        _throttle = ProgressThrottle.Default();
    }

    protected override void ProcessRecord()
    {
        var hash = _hash!;
        if (ParameterSetName == InputObjectSet && _pipedBytes.TryAdd(InputObject, MyInvocation.ExpectingInput)) return;
        HashPipedBytes();
        if (ParameterSetName == InputObjectSet && InputBytes.AsFilePath(InputObject) is null)
        {
            var digest = TryRun(() => hash.Digest(InputBytes.From(InputObject), Domain));
            if (digest is not null) WriteObject(digest);
            return;
        }

        // Large files report their own progress as a second bar, completed after each file.
        var output = CreateEngineOutput(FileProgressId);
        foreach (var file in ResolveInputFiles(ParameterSetName == PathSet ? Path : null, ParameterSetName == LiteralPathSet ? LiteralPath : null, InputObject))
        {
            var digest = TryRun(() => hash.HashFile(file, Domain, CancellationToken, output));
            if (digest is null) continue;
            if (digest.Length >= HashPrimitive.ParallelThreshold) CompleteProgress(FileProgressId, "Hashing " + file);
            WriteObject(digest);
            _count++;
            if (_throttle!.ShouldReport())
                WriteProgress(new ProgressRecord(ProgressId, Activity, $"{_count} files hashed"));
        }
    }

    protected override void EndProcessingCore()
    {
        HashPipedBytes();
        if (_count > 0) CompleteProgress(ProgressId, Activity);
    }

    private void HashPipedBytes()
    {
        if (_pipedBytes.Take() is not { } bytes) return;
        WriteVerbose(PipedBytes.VerboseNote(bytes.Length));
        var digest = TryRun(() => _hash!.Digest(bytes, Domain));
        if (digest is not null) WriteObject(digest);
    }
}
