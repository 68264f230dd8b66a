using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.IO;

namespace Requiem.Engine.ActionCache;

/// <summary>
/// The one place where action-cache entries are read and written: <c>&lt;store root&gt;/ac/&lt;first two hex&gt;/&lt;key&gt;.json</c>.
/// A write is atomic (temp file in the same folder, flushed, renamed over the name), so a reader sees a whole entry or
/// none; two writers of the same key both succeed and the last rename wins (both wrote an entry for the same key).
/// With a remote store, <see cref="TryRead"/> falls through to it on a local miss (the entry comes down into the local
/// layout and is checked like any other) and <see cref="Write"/> queues the entry for upload, under the same name.
/// </summary>
public sealed class ActionCacheEntries
{
    public const string DirectoryName = CasLayout.ActionCacheFolder;
    public const string EntrySuffix = ".json";
    /// <summary>An entry larger than this is not an entry (entries are a few KiB; the bytes they name live in the CAS).</summary>
    public const int MaxEntryBytes = 16 << 20;

    private readonly CasStore _store;

    public ActionCacheEntries(CasStore store)
    {
        _store = store;
        Root = Path.Combine(store.Root, DirectoryName);
    }

    /// <summary>The folder that holds every entry (<c>&lt;store root&gt;/ac</c>).</summary>
    public string Root { get; }

    /// <summary>The file of the entry for <paramref name="key"/> (which may not exist); the key must be a lowercase digest.</summary>
    public string PathOf(string key)
    {
        return _store.Layout.PathOf(CasLayout.ActionCacheName(key));
    }

    /// <summary>The entry's bytes, or null when there is no entry for the key.</summary>
    /// <param name="acceptFetched">Checks an entry brought from the remote store; one it refuses is not kept locally.</param>
    public byte[]? TryRead(string key, Func<byte[], bool>? acceptFetched = null) =>
        TryReadLocal(key) ?? (_store.TryFetchDocument(CasLayout.ActionCacheName(key), accept: acceptFetched) ? TryReadLocal(key) : null);

    private byte[]? TryReadLocal(string key)
    {
        var path = PathOf(key);
        try
        {
            // Opened without following a link and without blocking: a FIFO planted at an entry is a damaged entry, not a hang.
            return StoreFile.ReadSmall(path, MaxEntryBytes);
        }
        catch (SpecialFileException ex)
        {
            throw new RequiemException("InvalidCacheEntry", ErrorKind.InvalidData, $"The action-cache entry {ex.Message}.", key, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("CacheEntryReadError", ErrorKind.ReadError, $"Cannot read the action-cache entry '{path}': {ex.Message}", key, ex);
        }
    }

    /// <summary>Writes the entry atomically; a concurrent writer of the same key is not an error.</summary>
    public void Write(string key, ReadOnlySpan<byte> bytes)
    {
        var path = PathOf(key);
        try
        {
            AtomicFile.WriteAllBytes(path, bytes, "CacheEntryWriteError");
        }
        catch (RequiemException) when (File.Exists(path))
        {
            // Another writer's rename won (on Windows a rename over a file being replaced can fail): its entry stands.
        }
        _store.NotifyDocumentWritten(CasLayout.ActionCacheName(key));
    }

    /// <summary>Removes the entry; false when there was none.</summary>
    public bool Remove(string key)
    {
        var path = PathOf(key);
        try
        {
            if (!File.Exists(path)) return false;
            File.Delete(path);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("CacheEntryWriteError", ErrorKind.WriteError, $"Cannot remove the action-cache entry '{path}': {ex.Message}", key, ex);
        }
    }

    /// <summary>Every key with an entry (files whose names are not <c>&lt;key&gt;.json</c> in their shard are skipped).</summary>
    public IEnumerable<string> Enumerate()
    {
        if (!Directory.Exists(Root)) yield break;
        foreach (var shard in Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
        {
            var shardName = Path.GetFileName(shard);
            IEnumerable<string> files;
            try
            {
                files = Directory.EnumerateFiles(shard, "*" + EntrySuffix).Order(StringComparer.Ordinal).ToList();
            }
            catch (DirectoryNotFoundException)
            {
                continue;
            }
            foreach (var file in files)
            {
                var name = Path.GetFileName(file)[..^EntrySuffix.Length];
                if (Hex.IsDigest(name) && name == name.ToLowerInvariant() && name.StartsWith(shardName, StringComparison.Ordinal)) yield return name;
            }
        }
    }
}
