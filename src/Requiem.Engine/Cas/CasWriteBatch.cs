namespace Requiem.Engine.Cas;

/// <summary>
/// A group of puts made durable together. Each small object is written completely to <c>tmp/</c> (no per-file
/// flush); <see cref="Commit"/> then makes every staged file durable with one <c>syncfs</c> (Linux; elsewhere one
/// flush per file), renames them into place, and syncs once more so the new names are durable too. The
/// store's invariant is unchanged: a name under <c>objects/</c> only ever points at complete, flushed bytes.
/// Until <see cref="Commit"/> the staged objects are not visible; <see cref="Dispose"/> without a commit deletes them.
/// Large files (over <see cref="CasStore.SmallObjectLimit"/>) are streamed and published immediately (one flush each).
/// Not thread-safe: one batch per pipeline.
/// </summary>
public sealed class CasWriteBatch : IDisposable
{
    private readonly CasStore _store;
    private readonly List<Entry> _entries = new();
    private readonly Dictionary<string, CasPutResult> _pending = new(StringComparer.Ordinal);
    private long _stagedBytes;
    private long _startedAt;
    private int _staged;

    private sealed class Entry
    {
        public string? Tmp;
        public required CasPutResult Result;
    }

    internal CasWriteBatch(CasStore store) => _store = store;

    /// <summary>Puts (staged or complete) waiting for <see cref="Commit"/>.</summary>
    public int Count => _entries.Count;

    /// <summary>Bytes written to tmp/ and not yet flushed.</summary>
    public long StagedBytes => _stagedBytes;

    /// <summary>How long the oldest uncommitted put has waited.</summary>
    public TimeSpan Age => _entries.Count == 0 ? TimeSpan.Zero : System.Diagnostics.Stopwatch.GetElapsedTime(_startedAt);

    public CasPutResult PutFile(string path, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default)
    {
        var result = _store.PutFileCore(path, encoding, level, this, cancel);
        if (_entries.Count == 0 || !ReferenceEquals(_entries[^1].Result, result)) AddDone(result);
        return result;
    }

    public CasPutResult PutBytes(ReadOnlySpan<byte> data, CasEncoding encoding = CasEncoding.Identity, int level = 3)
    {
        var result = _store.PutSmall(data, encoding, level, this);
        if (_entries.Count == 0 || !ReferenceEquals(_entries[^1].Result, result)) AddDone(result);
        return result;
    }

    internal CasPutResult? TryGetPending(string hash, long size)
    {
        if (!_pending.TryGetValue(hash, out var r)) return null;
        _store.CountDeduplicated();
        var dedup = new CasPutResult { Hash = hash, Size = size, StoredSize = r.StoredSize, Encoding = r.Encoding, Existed = true };
        AddDone(dedup);
        return dedup;
    }

    internal void AddDone(CasPutResult result)
    {
        if (_entries.Count == 0) _startedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        _entries.Add(new Entry { Result = result });
    }

    internal void AddStaged(string tmp, CasPutResult result)
    {
        if (_entries.Count == 0) _startedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        _entries.Add(new Entry { Tmp = tmp, Result = result });
        _pending[result.Hash] = result;
        _stagedBytes += result.StoredSize;
        _staged++;
    }

    /// <summary>
    /// Makes every staged object durable and visible; returns every put since the last commit, in order (a staged
    /// object that another process published meanwhile comes back with <c>Existed = true</c>). On failure the staged
    /// files that were not published are deleted and the error is thrown; objects already published stay (complete).
    /// </summary>
    public IReadOnlyList<CasPutResult> Commit()
    {
        var results = new List<CasPutResult>(_entries.Count);
        try
        {
            if (_staged > 0)
            {
                if (!CasNative.SyncFileSystem(_store.TempDirectory))
                {
                    foreach (var e in _entries)
                    {
                        if (e.Tmp is null) continue;
                        using var fs = new FileStream(e.Tmp, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                        fs.Flush(flushToDisk: true);
                    }
                }
            }
            var shards = new HashSet<string>(StringComparer.Ordinal);
            foreach (var e in _entries)
            {
                if (e.Tmp is null)
                {
                    results.Add(e.Result);
                    continue;
                }
                var r = _store.Publish(e.Tmp, e.Result.Hash, e.Result.Size, e.Result.Encoding, durable: false, stored: e.Result.StoredSize);
                e.Tmp = null;
                shards.Add(Path.GetDirectoryName(_store.ObjectPath(r.Hash, r.Encoding))!);
                results.Add(r);
            }
            if (_staged > 0 && !CasNative.SyncFileSystem(_store.ObjectsDirectory))
            {
                foreach (var shard in shards) CasNative.FsyncDirectory(shard);
            }
            return results;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw _store.WriteError(ex);
        }
        finally
        {
            Discard();
        }
    }

    private void Discard()
    {
        foreach (var e in _entries)
        {
            if (e.Tmp is not null) CasStore.TryDelete(e.Tmp);
        }
        _entries.Clear();
        _pending.Clear();
        _stagedBytes = 0;
        _staged = 0;
    }

    /// <summary>Deletes whatever was staged and not committed.</summary>
    public void Dispose() => Discard();
}
