using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.ActionCache;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Sandbox;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Get-RequiemCacheEntry: lists action-cache entries, gets one by key, or — for a request — finds its entry or explains
/// the miss by the key components that differ from the closest entry of the same command.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RequiemCacheEntry", DefaultParameterSetName = ListSet)]
[OutputType(typeof(ActionCacheEntry), ParameterSetName = new[] { ListSet, KeySet })]
[OutputType(typeof(ActionCacheExplanation), ParameterSetName = new[] { RequestSet, PathSet, LiteralPathSet })]
public sealed class GetRequiemCacheEntryCommand : RequiemStoreCmdlet
{
    private const string ListSet = "List";
    private const string KeySet = "Key";
    private const string RequestSet = "Request";
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    private ActionCacheStore? _cache;

    /// <summary>The entry's key (64 hex characters, or a unique prefix of at least 4); binds CacheKey of a piped result.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = KeySet, ValueFromPipelineByPropertyName = true)]
    [Alias("CacheKey")]
    [ValidateNotNullOrEmpty]
    public string[] Key { get; set; } = Array.Empty<string>();

    /// <summary>A request (hashtable, JSON text, path to a JSON file, or an ExecRequest) to look up on this machine now.</summary>
    [Parameter(Mandatory = true, ParameterSetName = RequestSet)]
    [ValidateNotNull]
    public object? Request { get; set; }

    /// <summary>Request files to look up (wildcards allowed).</summary>
    [Parameter(Mandatory = true, ParameterSetName = PathSet)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>Only entries whose request command matches (wildcards allowed).</summary>
    [Parameter(ParameterSetName = ListSet)]
    [ValidateNotNullOrEmpty]
    public string? Command { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void BeginProcessing()
    {
        var store = OpenStore(Cas, create: false);
        _cache = new ActionCacheStore(store, TimeSpan.FromDays(Config.Cache.MaxAgeDays));
    }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case KeySet:
                foreach (var key in Key) EmitKey(key);
                break;
            case RequestSet:
                Explain(Request, Request);
                break;
            case PathSet:
            case LiteralPathSet:
                foreach (var file in ResolveFileSystemPaths(ParameterSetName == PathSet ? Path : LiteralPath, literal: ParameterSetName == LiteralPathSet))
                    Explain(file, file);
                break;
        }
    }

    protected override void EndProcessingCore()
    {
        if (ParameterSetName != ListSet) return;
        var pattern = Command is null ? null : new WildcardPattern(Command, WildcardOptions.CultureInvariant);
        foreach (var entry in _cache!.EnumerateEntries((key, ex) => WriteError(ToErrorRecord(ex))))
        {
            if (pattern is null || pattern.IsMatch(entry.Command)) WriteObject(entry);
        }
    }

    private void EmitKey(string key)
    {
        var full = TryRun(() => ResolveKey(key));
        if (full is null) return;
        var entry = TryRun(() => _cache!.TryGet(full)
            ?? throw new RequiemException("CacheEntryNotFound", ErrorKind.ObjectNotFound, $"The action cache of '{_cache.Store.Root}' has no entry {full}.", key));
        if (entry is not null) WriteObject(entry);
    }

    private string ResolveKey(string key)
    {
        var text = key.Trim().ToLowerInvariant();
        if (Hex.IsDigest(text)) return text;
        if (text.Length < CasStore.MinimumPrefixLength || text.Length > Hex.DigestLength || !Hex.IsHex(text))
            throw new RequiemException("InvalidDigest", ErrorKind.InvalidArgument,
                $"'{key}' is not an action-cache key: give 64 hex characters or a unique prefix of at least {CasStore.MinimumPrefixLength}.", key);
        var matches = _cache!.Entries.Enumerate().Where(k => k.StartsWith(text, StringComparison.Ordinal)).Take(11).ToList();
        return matches.Count switch
        {
            0 => throw new RequiemException("CacheEntryNotFound", ErrorKind.ObjectNotFound, $"The action cache of '{_cache.Store.Root}' has no entry whose key starts with '{text}'.", key),
            1 => matches[0],
            _ => throw new RequiemException("AmbiguousHashPrefix", ErrorKind.InvalidArgument,
                $"'{text}' starts {matches.Count}{(matches.Count > 10 ? "+" : "")} keys: {string.Join(", ", matches.Take(10))}.", key),
        };
    }

    private void Explain(object? input, object? target)
    {
        var explanation = TryRun(() =>
        {
            var request = ExecInput.ToRequest(input, Config, ResolveNewPath);
            var plan = ExecPlan.Create(request, SandboxProbe.Current);
            return ActionCacheExplainer.Explain(_cache!, plan, CancellationToken);
        });
        if (explanation is null) return;
        WriteVerbose(explanation.Summary);
        WriteObject(explanation);
    }
}
