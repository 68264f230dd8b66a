using System.Collections.Concurrent;

namespace Requiem.Engine.Cas;

/// <summary>One put of a batch, in the order it was enqueued: a result, or the error that item hit.</summary>
public sealed class CasBatchItem
{
    public CasPutResult? Result { get; internal set; }
    /// <summary>The failure of this item (e.g. FileNotFound, CasDiskFull); other items are unaffected.</summary>
    public RequiemException? Error { get; internal set; }
    /// <summary>Whatever the caller attached when enqueueing (e.g. the source path).</summary>
    public object? State { get; init; }
}

/// <summary>
/// A group of puts made durable together. Small objects (up to <see cref="CasStore.SmallObjectLimit"/>) are hashed
/// and written completely to <c>tmp/</c> by worker threads, without a flush each; <see cref="CommitItems"/> waits for
/// them, makes every staged file durable with one <c>syncfs</c> (Linux; elsewhere one flush per file), renames them
/// into place (never replacing an existing object), and syncs again so the new names are durable too. The store's
/// invariant is unchanged: a name under <c>objects/</c> only ever points at complete, flushed bytes. Until the commit,
/// staged objects are invisible; <see cref="Dispose"/> without a commit deletes them. Large files are streamed and
/// published (flushed) individually. At most <see cref="MaxOpenStaged"/> staged objects hold an open descriptor; the
/// rest wait as closed named temp files. Enqueue from one thread; the batch itself runs the workers.
/// </summary>
public sealed class CasWriteBatch : IDisposable
{
    /// <summary>Worker threads by default: the number of cores, at most 4 (puts of small files are I/O and hashing bound).</summary>
    public static int DefaultParallelism => Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>
    /// Staged objects kept as open unnamed temp files (one descriptor each) per batch: a quarter of the descriptors still
    /// free under the soft RLIMIT_NOFILE (the limit less those open now — a pwsh holds well over a hundred for its
    /// assemblies and pipes), between 16 and 256. Beyond it objects are staged as closed named temp files, which the
    /// same syncfs makes durable, so a batch of any size stays within the descriptor limit.
    /// </summary>
    public static int MaxOpenStaged
    {
        get
        {
            var limit = CasNative.OpenFileLimit();
            if (limit <= 0) return 256;
            var open = CasNative.OpenDescriptorCount();
            var free = open >= 0 ? limit - open : limit;
            return (int)Math.Clamp(free / 4, 16, 256);
        }
    }

    /// <summary>Staged objects that may always hold a descriptor; past it the batch works out <see cref="MaxOpenStaged"/> once.</summary>
    private const int AlwaysHeld = 16;

    private readonly CasStore _store;
    private readonly List<Work> _items = new();
    private readonly BlockingCollection<Work>? _queue;
    private readonly List<Thread> _workers = new();
    private readonly CancellationTokenSource _cancel = new();
    private long _stagedBytes;
    private int _openStaged;
    private int _maxOpenStaged = -1;
    private long _startedAt;
    private bool _disposed;

    private sealed class Work
    {
        public string? Path;
        public byte[]? Data;
        public CasEncoding Encoding;
        public int Level;
        public required CasBatchItem Item;
        public CasWriter.StagedTemp? Tmp;
        public readonly ManualResetEventSlim Done = new(false);
    }

    internal CasWriteBatch(CasStore store, int parallelism)
    {
        _store = store;
        Parallelism = Math.Max(1, parallelism);
        if (Parallelism > 1) _queue = new BlockingCollection<Work>(Parallelism * 64);
    }

    public int Parallelism { get; }

    /// <summary>Puts enqueued since the last commit.</summary>
    public int Count => _items.Count;

    /// <summary>Bytes written to tmp/ and not yet flushed.</summary>
    public long StagedBytes => Interlocked.Read(ref _stagedBytes);

    /// <summary>How long the oldest uncommitted put has waited.</summary>
    public TimeSpan Age => _items.Count == 0 ? TimeSpan.Zero : System.Diagnostics.Stopwatch.GetElapsedTime(_startedAt);

    /// <summary>Queues a file; its result (or error) comes back from <see cref="CommitItems"/>, in order.</summary>
    public void EnqueueFile(string path, CasEncoding encoding = CasEncoding.Identity, int level = 3, object? state = null) =>
        Enqueue(new Work { Path = path, Encoding = encoding, Level = level, Item = new CasBatchItem { State = state } });

    /// <summary>Queues bytes (the array must not change until the commit).</summary>
    public void EnqueueBytes(byte[] data, CasEncoding encoding = CasEncoding.Identity, int level = 3, object? state = null) =>
        Enqueue(new Work { Data = data, Encoding = encoding, Level = level, Item = new CasBatchItem { State = state } });

    /// <summary>Stages a file now and returns its (not yet visible) result; throws its error.</summary>
    public CasPutResult PutFile(string path, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default)
    {
        var w = new Work { Path = path, Encoding = encoding, Level = level, Item = new CasBatchItem() };
        Enqueue(w, runInline: true);
        return w.Item.Result ?? throw w.Item.Error!;
    }

    /// <summary>Stages bytes now and returns the (not yet visible) result; throws its error.</summary>
    public CasPutResult PutBytes(ReadOnlySpan<byte> data, CasEncoding encoding = CasEncoding.Identity, int level = 3)
    {
        var w = new Work { Data = data.ToArray(), Encoding = encoding, Level = level, Item = new CasBatchItem() };
        Enqueue(w, runInline: true);
        return w.Item.Result ?? throw w.Item.Error!;
    }

    private void Enqueue(Work w, bool runInline = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_items.Count == 0) _startedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        _items.Add(w);
        if (_queue is null || runInline)
        {
            Run(w);
            return;
        }
        if (_workers.Count < Parallelism)
        {
            var t = new Thread(WorkerLoop) { IsBackground = true, Name = "Requiem CAS put" };
            _workers.Add(t);
            t.Start();
        }
        _queue.Add(w);
    }

    private void WorkerLoop()
    {
        try
        {
            foreach (var w in _queue!.GetConsumingEnumerable())
            {
                Run(w);
            }
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Run(Work w)
    {
        try
        {
            if (_cancel.IsCancellationRequested) throw new OperationCanceledException(_cancel.Token);
            CasWriter.StagedTemp? tmp = null;
            // Reserve a descriptor slot; give it back unless the put really left an open handle staged.
            var held = Interlocked.Increment(ref _openStaged);
            // Counting open descriptors costs a directory listing: only a batch that grows past a few objects pays it.
            var mayHold = held <= AlwaysHeld || held <= (_maxOpenStaged >= 0 ? _maxOpenStaged : (_maxOpenStaged = MaxOpenStaged));
            try
            {
                w.Item.Result = w.Path is not null
                    ? _store.PutFileCore(w.Path, w.Encoding, w.Level, stage: true, _cancel.Token, out tmp, mayHold)
                    : _store.PutSmall(w.Data, w.Encoding, w.Level, stage: true, out tmp, mayHold);
            }
            finally
            {
                if (!mayHold || tmp?.Handle is null) Interlocked.Decrement(ref _openStaged);
            }
            w.Tmp = tmp;
            if (tmp is not null) Interlocked.Add(ref _stagedBytes, w.Item.Result.StoredSize);
        }
        catch (RequiemException ex)
        {
            w.Item.Error = ex;
        }
        catch (OperationCanceledException ex)
        {
            w.Item.Error = new RequiemException("OperationStopped", ErrorKind.OperationStopped, "The put was cancelled.", w.Path, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            w.Item.Error = _store.WriteError(ex);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // This runs on a worker thread: an exception escaping it would end the whole pwsh process.
            w.Item.Error = new RequiemException("CasWriteError", ErrorKind.WriteError, $"Storing '{w.Path ?? "input"}' failed: {ex.Message}", w.Path, ex);
        }
        finally
        {
            w.Data = null;
            w.Done.Set();
        }
    }

    /// <summary>
    /// Makes every staged object durable and visible and returns every item since the last commit, in order (a staged
    /// object that another writer published meanwhile comes back with <c>Existed = true</c>). If flushing or publishing
    /// fails, the items not yet published get that error and their temp files are deleted; published ones stay.
    /// </summary>
    public IReadOnlyList<CasBatchItem> CommitItems()
    {
        var items = _items.ToList();
        _items.Clear();
        Interlocked.Exchange(ref _stagedBytes, 0);
        foreach (var w in items) w.Done.Wait();
        Interlocked.Exchange(ref _openStaged, 0); // every staged handle is published or disposed below
        var staged = items.Where(w => w.Tmp is not null).ToList();
        try
        {
            if (staged.Count > 0)
            {
                if (!CasNative.SyncFileSystem(_store.TempDirectory))
                {
                    foreach (var w in staged) w.Tmp!.Flush();
                }
                var shards = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
                Parallel.ForEach(staged, new ParallelOptions { MaxDegreeOfParallelism = Parallelism }, w =>
                {
                    try
                    {
                        var r = w.Item.Result!;
                        var tmp = w.Tmp!;
                        w.Tmp = null;
                        try { w.Item.Result = tmp.Publish(_store, r); }
                        finally { tmp.Dispose(); }
                        shards[Path.GetDirectoryName(_store.ObjectPath(r.Hash, r.Encoding))!] = true;
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        w.Item.Result = null;
                        w.Item.Error = _store.WriteError(ex);
                    }
                    catch (RequiemException ex) // [tenants] e.g. TenantQuotaExceeded from Publish: this item's error, not the batch's
                    {
                        w.Item.Result = null;
                        w.Item.Error = ex;
                    }
                });
                if (!CasNative.SyncFileSystem(_store.ObjectsDirectory))
                {
                    foreach (var shard in shards.Keys) CasNative.FsyncDirectory(shard);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var error = _store.WriteError(ex);
            foreach (var w in staged.Where(w => w.Tmp is not null))
            {
                w.Item.Result = null;
                w.Item.Error = error;
            }
        }
        finally
        {
            foreach (var w in staged)
            {
                w.Tmp?.Dispose();
                w.Tmp = null;
            }
        }
        return items.Select(w => w.Item).ToList();
    }

    /// <summary>Commits and returns the results in order; throws the first item's error, if any (after committing the rest).</summary>
    public IReadOnlyList<CasPutResult> Commit()
    {
        var items = CommitItems();
        if (items.FirstOrDefault(i => i.Error is not null) is { } failed) throw failed.Error!;
        return items.Select(i => i.Result!).ToList();
    }

    /// <summary>Cancels queued and running puts (they finish with an OperationStopped error); safe from any thread.</summary>
    public void Cancel()
    {
        try { _cancel.Cancel(); } catch (ObjectDisposedException) { }
    }

    /// <summary>Stops the workers and deletes whatever was staged and not committed.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _cancel.Cancel();
        _queue?.CompleteAdding();
        foreach (var t in _workers) t.Join();
        foreach (var w in _items) w.Tmp?.Dispose();
        _items.Clear();
        _queue?.Dispose();
        _cancel.Dispose();
    }
}
