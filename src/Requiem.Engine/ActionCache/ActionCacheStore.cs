using Requiem.Engine.Cas;

namespace Requiem.Engine.ActionCache;

/// <summary>How <c>Invoke-RequiemExec</c> uses the action cache.</summary>
public enum ActionCacheMode
{
    /// <summary>Run every request; the cache is neither read nor written.</summary>
    Off,
    /// <summary>Answer from the cache when an entry matches; never write an entry.</summary>
    Read,
    /// <summary>Answer from the cache when an entry matches; otherwise run and write an entry for a cacheable result.</summary>
    ReadWrite,
}

/// <summary>
/// The action cache of one CAS store: entries (<see cref="ActionCacheEntries"/>) and the verified objects they name.
/// Reading an entry checks it (<see cref="ActionCacheEntry.Parse"/>) and its age.
/// </summary>
public sealed class ActionCacheStore
{
    /// <summary>Default age after which an entry is no longer used nor a garbage-collection root (config <c>cache.max_age_days</c>).</summary>
    public const int DefaultMaxAgeDays = 7;

    public ActionCacheStore(CasStore store, TimeSpan? maxAge = null)
    {
        Store = store;
        Entries = new ActionCacheEntries(store);
        MaxAge = maxAge ?? TimeSpan.FromDays(DefaultMaxAgeDays);
    }

    public CasStore Store { get; }
    public ActionCacheEntries Entries { get; }
    public TimeSpan MaxAge { get; }

    /// <summary>The entry for <paramref name="key"/> (expired or not, see <see cref="ActionCacheEntry.Expired"/>), or null when there is none.</summary>
    public ActionCacheEntry? TryGet(string key, DateTime? now = null)
    {
        var bytes = Entries.TryRead(key, fetched => IsValid(fetched, key));
        if (bytes is null) return null;
        var entry = ActionCacheEntry.Parse(bytes, key, Store.HashPrimitive);
        Stamp(entry, now ?? DateTime.UtcNow);
        return entry;
    }

    private bool IsValid(byte[] bytes, string key)
    {
        try
        {
            ActionCacheEntry.Parse(bytes, key, Store.HashPrimitive);
            return true;
        }
        catch (RequiemException)
        {
            return false;
        }
    }

    public void Put(ActionCacheEntry entry) => Entries.Write(entry.Key, entry.ToJsonBytes());

    /// <summary>Every entry that parses; an entry that does not is reported through <paramref name="invalid"/> and skipped.</summary>
    public IEnumerable<ActionCacheEntry> EnumerateEntries(Action<string, RequiemException>? invalid = null, DateTime? now = null)
    {
        var at = now ?? DateTime.UtcNow;
        foreach (var key in Entries.Enumerate())
        {
            ActionCacheEntry? entry;
            try
            {
                entry = TryGet(key, at);
            }
            catch (RequiemException ex)
            {
                invalid?.Invoke(key, ex);
                continue;
            }
            if (entry is not null) yield return entry;
        }
    }

    private void Stamp(ActionCacheEntry entry, DateTime now)
    {
        entry.ExpiresAt = entry.CreatedAt + MaxAge;
        entry.Expired = now >= entry.ExpiresAt;
        entry.Path = Entries.PathOf(entry.Key);
    }
}

/// <summary>
/// Garbage-collection roots of the action cache: every entry that has not expired keeps its stdout, stderr, output
/// files, request and result manifest. An entry that does not parse keeps nothing (it is never used either).
/// </summary>
public sealed class ActionCacheGcRoots : ICasGcRootProvider
{
    public ActionCacheGcRoots(TimeSpan? maxAge = null) => MaxAge = maxAge ?? TimeSpan.FromDays(ActionCacheStore.DefaultMaxAgeDays);

    public TimeSpan MaxAge { get; }

    public IEnumerable<CasGcRoot> EnumerateRoots(CasStore store)
    {
        var cache = new ActionCacheStore(store, MaxAge);
        foreach (var entry in cache.EnumerateEntries())
        {
            if (entry.Expired) continue;
            foreach (var (hash, isManifest) in entry.ReferencedObjects()) yield return new CasGcRoot(hash, "ac:" + entry.Key, isManifest);
        }
    }
}
