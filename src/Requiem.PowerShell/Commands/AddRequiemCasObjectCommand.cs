using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Diagnostics;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Add-RequiemCasObject: stores files, strings or bytes in the CAS (the Requiem CLI's <c>cas put</c>). Small objects are
/// written in batches that are flushed with one file-system sync, then renamed into place; results are emitted
/// after each batch is durable.
/// </summary>
[Cmdlet(VerbsCommon.Add, "RequiemCasObject", DefaultParameterSetName = PathSet)]
[OutputType(typeof(CasObjectInfo))]
public sealed class AddRequiemCasObjectCommand : RequiemStoreCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string InputObjectSet = "InputObject";
    private const int ProgressId = 1;
    private const string Activity = "Add-RequiemCasObject";

    /// <summary>Commit a batch after this many puts, this many staged bytes, or this long.</summary>
    private const int BatchObjects = 1024; // also bounds the open unnamed temp files (one descriptor each) per batch
    private const long BatchBytes = 256L << 20;
    private static readonly TimeSpan BatchAge = TimeSpan.FromSeconds(1);

    private CasStore? _store;
    private CasWriteBatch? _batch;
    private CasEncoding _encoding;
    private int _level;
    private ProgressThrottle? _throttle;
    private long _count;

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
    public CasCompression Compress { get; set; }

    [Parameter]
    [ValidateRange(1, 22)]
    public int CompressionLevel { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void BeginProcessing()
    {
        var bound = MyInvocation.BoundParameters;
        var compress = bound.ContainsKey(nameof(Compress))
            ? Compress
            : string.Equals(Config.Cas.Compression, "zstd", StringComparison.OrdinalIgnoreCase) ? CasCompression.Zstd : CasCompression.None;
        _encoding = compress == CasCompression.Zstd ? CasEncoding.Zstd : CasEncoding.Identity;
        _level = bound.ContainsKey(nameof(CompressionLevel)) ? CompressionLevel : Config.Cas.ZstdLevel;
        _store = OpenStore(Cas);
        _batch = _store.BeginBatch();
        var batch = _batch;
        CancellationToken.Register(batch.Cancel); // Ctrl+C stops queued and streaming puts promptly
        _throttle = ProgressThrottle.Default();
    }

    private readonly PipedBytes _pipedBytes = new();

    protected override void ProcessRecord()
    {
        if (ParameterSetName == InputObjectSet)
        {
            if (_pipedBytes.TryAdd(InputObject, MyInvocation.ExpectingInput)) return;
            StorePipedBytes();
            if (InputBytes.AsFilePath(InputObject) is { } file)
            {
                PutFile(file);
            }
            else
            {
                try
                {
                    var bytes = InputBytes.From(InputObject);
                    _batch!.EnqueueBytes(bytes, _encoding, _level, state: null);
                    AfterPut();
                }
                catch (RequiemException ex)
                {
                    FailItem(ex);
                }
            }
            return;
        }
        foreach (var file in ResolveFileSystemPaths(ParameterSetName == PathSet ? Path : LiteralPath, ParameterSetName != PathSet))
        {
            PutFile(file);
        }
    }

    private void StorePipedBytes()
    {
        if (_pipedBytes.Take() is not { } bytes) return;
        WriteVerbose(PipedBytes.VerboseNote(bytes.Length));
        _batch!.EnqueueBytes(bytes, _encoding, _level, state: null);
        AfterPut();
    }

    private void PutFile(string file)
    {
        if (CancellationToken.IsCancellationRequested) throw new PipelineStoppedException();
        _batch!.EnqueueFile(file, _encoding, _level, state: file);
        AfterPut();
    }

    private void AfterPut()
    {
        _count++;
        var batch = _batch!;
        if (batch.Count >= BatchObjects || batch.StagedBytes >= BatchBytes || batch.Age >= BatchAge) CommitAndEmit();
        if (_throttle!.ShouldReport())
            WriteProgress(new ProgressRecord(ProgressId, Activity, $"{_count} objects stored"));
    }

    /// <summary>Emits what is already stored before reporting a failure, so that -ErrorAction Stop never loses finished work.</summary>
    private void FailItem(RequiemException ex)
    {
        CommitAndEmit();
        WriteError(ToErrorRecord(ex));
    }

    private void CommitAndEmit()
    {
        var batch = _batch!;
        if (batch.Count == 0) return;
        var items = batch.CommitItems();
        var now = DateTime.UtcNow;
        foreach (var item in items)
        {
            if (item.Error is { } error)
            {
                if (error.Kind == ErrorKind.OperationStopped && CancellationToken.IsCancellationRequested) throw new PipelineStoppedException();
                WriteError(ToErrorRecord(error));
                continue;
            }
            var r = item.Result!;
            WriteObject(new CasObjectInfo
            {
                Hash = r.Hash,
                Algorithm = _store!.HashPrimitive.Algorithm,
                Size = r.Size,
                StoredSize = r.StoredSize,
                Encoding = r.Encoding,
                Path = item.State as string,
                Existed = r.Existed,
                ObjectPath = _store!.ObjectPath(r.Hash, r.Encoding),
                LastWriteTimeUtc = now,
            });
        }
        // After the items (and their errors): one audit entry for the objects this batch added.
        var stored = items.Where(i => i.Error is null && !i.Result!.Existed).Select(i => i.Result!).ToList();
        if (stored.Count > 0)
            Audit(_store!, Requiem.Engine.Audit.AuditActions.CasPut, stored.Select(r => r.Hash).Distinct(StringComparer.Ordinal),
                new Dictionary<string, object?> { ["objects"] = stored.Count, ["bytes"] = stored.Sum(r => r.Size), ["stored_bytes"] = stored.Sum(r => r.StoredSize) });
    }

    protected override void EndProcessingCore()
    {
        StorePipedBytes();
        CommitAndEmit();
        _store?.FlushCounters();
        if (_count > 0) CompleteProgress(ProgressId, Activity);
    }

    protected override void OnDispose()
    {
        _batch?.Dispose(); // staged, uncommitted objects (pipeline stopped) are deleted, never published
        _store?.FlushCounters();
    }
}
