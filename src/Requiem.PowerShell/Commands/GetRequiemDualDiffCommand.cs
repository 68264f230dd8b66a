using System.Management.Automation;
using Requiem.Engine.Engines;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Get-RequiemDualDiff: reads the store's dual-run diff log (<c>dual/diffs.jsonl</c>), where Invoke-RequiemExec -Engine dual
/// appends every request on which the Requiem engine and the external engine disagreed, or the external engine failed.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RequiemDualDiff")]
[OutputType(typeof(DualDiffEntry))]
public sealed class GetRequiemDualDiffCommand : RequiemStoreCmdlet
{
    /// <summary>Only entries for these request digests (full digests or leading characters).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[]? RequestDigest { get; set; }

    /// <summary>Only entries with a difference in a field matching one of these names (wildcards, e.g. 'output_files*').</summary>
    [Parameter]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Field { get; set; }

    /// <summary>Only mismatch or only external_failed entries.</summary>
    [Parameter]
    [ValidateSet(DualRunStatus.Mismatch, DualRunStatus.ExternalFailed)]
    public string? Status { get; set; }

    /// <summary>Only entries written at or after this time.</summary>
    [Parameter]
    public DateTime? Since { get; set; }

    /// <summary>Only the last N matching entries.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? Last { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    private string? _path;
    private readonly List<DualDiffEntry> _matched = new();

    protected override void BeginProcessing()
    {
        if (Cas is null)
        {
            // The default store not existing yet just means nothing was ever logged; a -Cas that names no store is an error.
            var hash = SelectHash(false);
            try
            {
                _path = DualDiffLog.PathFor(OpenStoreOrThrow(null, hash, create: false));
            }
            catch (Requiem.Engine.RequiemException ex) when (ex.ErrorId == "CasNotFound")
            {
                WriteVerbose(ex.Message + " No dual run has logged anything there.");
                _path = null;
                return;
            }
            catch (Requiem.Engine.RequiemException ex)
            {
                ThrowTerminatingError(ToErrorRecord(ex));
            }
        }
        else _path = DualDiffLog.PathFor(OpenStore(Cas, create: false));
        if (!File.Exists(_path)) WriteVerbose($"No dual-run diff log at '{_path}': no dual run has found a difference in this store.");
    }

    protected override void ProcessRecord()
    {
        if (_path is null) return;
        var patterns = Field?.Select(f => new WildcardPattern(f, WildcardOptions.IgnoreCase)).ToArray();
        var since = Since is { } s ? new DateTimeOffset(s.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(s, DateTimeKind.Local) : s) : (DateTimeOffset?)null;
        try
        {
            foreach (var entry in DualDiffLog.Read(_path!, (line, problem) =>
                         WriteWarning($"{_path}: line {line} is not a diff log entry and was skipped ({problem}).")))
            {
                if (RequestDigest is not null && !RequestDigest.Any(d => entry.RequestDigest.StartsWith(d, StringComparison.OrdinalIgnoreCase))) continue;
                if (Status is not null && entry.Status != Status) continue;
                if (since is not null && entry.Time < since) continue;
                if (patterns is not null && !entry.Differences.Any(d => patterns.Any(p => p.IsMatch(d.Field)))) continue;
                if (Last is null) WriteObject(entry);
                else _matched.Add(entry);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(ToErrorRecord(new Requiem.Engine.RequiemException("FileReadError", Requiem.Engine.ErrorKind.ReadError,
                $"Cannot read the dual-run diff log '{_path}': {ex.Message}", _path, ex)));
        }
    }

    protected override void EndProcessingCore()
    {
        if (Last is int n) foreach (var entry in _matched.Skip(Math.Max(0, _matched.Count - n))) WriteObject(entry);
    }
}
