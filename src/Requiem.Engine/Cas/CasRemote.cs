using System.Collections.Concurrent;
using System.Diagnostics;
using Requiem.Engine.Metrics;

namespace Requiem.Engine.Cas;

/// <summary>What Sync-RequiemCas (or the upload at the end of a command) did.</summary>
public sealed class CasSyncResult
{
    /// <summary>The remote store (endpoint and container; never a credential).</summary>
    public required string Remote { get; init; }
    /// <summary>Objects and documents uploaded now.</summary>
    public int Uploaded { get; init; }
    public long BytesUploaded { get; init; }
    /// <summary>Names that were already in the remote store (nothing sent).</summary>
    public int AlreadyPresent { get; init; }
    /// <summary>Uploads that failed; they stay in the pending journal for the next run.</summary>
    public int Failed { get; init; }
    /// <summary>Names still waiting in the pending journal afterwards (0 when everything is up).</summary>
    public int Pending { get; init; }
    /// <summary>False when the remote could not be reached (nothing was lost: the journal keeps the names).</summary>
    public bool Reachable { get; init; } = true;
    public TimeSpan Duration { get; init; }
}

/// <summary>The outcome of looking for an object in the remote store.</summary>
public enum CasFetchOutcome
{
    Fetched,
    Absent,
    Corrupt,
    Unreachable,
    /// <summary>The blob is longer than <c>remote.max_object_bytes</c>: not downloaded past the bound, not used.</summary>
    TooLarge,
}

/// <summary>
/// The local store as a verified cache in front of a remote backend. Reads that miss locally fall through to the
/// remote; what comes down is decoded and re-hashed before it is published into the local store, and a blob whose
/// bytes do not match its name is never used. Writes stay local and are recorded in a pending journal
/// (<c>remote/pending/</c> in the store: one empty file per name), uploaded at the end of a command or by
/// Sync-RequiemCas, concurrently, with If-None-Match so an object is created once however many agents upload it.
/// A journal entry is removed only after its upload succeeded, so a crash or an offline run loses nothing.
/// When the remote cannot be reached the tier goes offline for the rest of this handle's life: one warning, and
/// everything carries on locally.
/// </summary>
public sealed class CasRemote
{
    public const string PendingFolder = "remote/pending";
    public const int DefaultParallelism = 8;
    /// <summary>Downloads in flight when many objects are needed at once (config <c>remote.download_parallelism</c>).</summary>
    public const int DefaultDownloadParallelism = 8;
    public const int MaxDownloadParallelism = 64;

    private readonly CasStore _store;
    private readonly ConcurrentQueue<string> _warnings = new();
    private volatile string? _offline;

    public CasRemote(CasStore store, ICasBackend backend)
    {
        _store = store;
        Backend = backend;
        PendingDirectory = Path.Combine(store.Root, PendingFolder.Replace('/', Path.DirectorySeparatorChar));
    }

    public ICasBackend Backend { get; }
    public string PendingDirectory { get; }

    /// <summary>How many objects <see cref="Prefetch"/> downloads at once (1..<see cref="MaxDownloadParallelism"/>).</summary>
    public int DownloadParallelism
    {
        get => _downloadParallelism;
        set => _downloadParallelism = Math.Clamp(value, 1, MaxDownloadParallelism);
    }

    private int _downloadParallelism = DefaultDownloadParallelism;

    /// <summary>The default <c>remote.max_object_bytes</c>: 64 GiB.</summary>
    public const long DefaultMaxObjectBytes = 64L << 30;

    /// <summary>
    /// The largest remote object blob (as stored) that is downloaded: a longer one is refused before it can fill the
    /// local disk (<c>remote.max_object_bytes</c>). Refs and action-cache entries have small fixed bounds.
    /// </summary>
    public long MaxObjectBytes { get; set; } = DefaultMaxObjectBytes;
    // Objects whose remote copy was found corrupt by this handle: not downloaded (nor warned about) a second time.
    private readonly ConcurrentDictionary<string, CasFetchOutcome> _corrupt = new(StringComparer.Ordinal);
    /// <summary>Why the remote is treated as unreachable, or null while it answers.</summary>
    public string? OfflineReason => _offline;

    /// <summary>Warnings raised on any thread, for the host to show on its own thread (remote unreachable, corrupt blob).</summary>
    public IEnumerable<string> DrainWarnings()
    {
        while (_warnings.TryDequeue(out var w)) yield return w;
    }

    private void Warn(string message) => _warnings.Enqueue(message);

    private void GoOffline(CasBackendUnavailableException ex)
    {
        MetricsRegistry.Add(Counter.RemoteErrors);
        if (_offline is not null) return;
        _offline = ex.Message;
        Warn($"The remote store is unreachable; going on with the local store only, and what is written now is kept for Sync-RequiemCas. {ex.Message}");
    }

    /// <summary>A read the remote could not serve: unreachable (<see cref="CasBackendUnavailableException"/>) or another HTTP failure (<c>CasRemoteError</c>).</summary>
    private static bool IsRemoteFailure(Exception ex) =>
        ex is CasBackendUnavailableException || ex is RequiemException { ErrorId: "CasRemoteError" };

    /// <summary>Unreachable: go on offline; another failure: counted and warned. The read goes on locally either way.</summary>
    private void NoteRemoteFailure(Exception ex)
    {
        if (ex is CasBackendUnavailableException unavailable) { GoOffline(unavailable); return; }
        MetricsRegistry.Add(Counter.RemoteErrors);
        Warn(ex.Message);
    }

    // ---------------------------------------------------------------- pending journal

    private static string JournalName(string name) => name.Replace('/', '+');

    private static string NameOfJournal(string file) => Path.GetFileName(file).Replace('+', '/');

    /// <summary>Records that an object was written locally and must reach the remote (objects/ab/&lt;hash&gt;, whatever its encoding).</summary>
    public void ObjectWritten(string hash) => MarkPending(CasLayout.ObjectName(hash, CasEncoding.Identity));

    /// <summary>Records that a document (a ref, an action-cache entry) was written locally and must be uploaded.</summary>
    public void DocumentWritten(string relativeName) => MarkPending(relativeName);

    private void MarkPending(string name)
    {
        try
        {
            Directory.CreateDirectory(PendingDirectory);
            using var _ = new FileStream(Path.Combine(PendingDirectory, JournalName(name)), FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Warn($"Could not record '{name}' for upload ({ex.Message}); Sync-RequiemCas uploads it later.");
        }
    }

    /// <summary>Names waiting for upload.</summary>
    public IReadOnlyList<string> PendingNames()
    {
        if (!Directory.Exists(PendingDirectory)) return Array.Empty<string>();
        return Directory.EnumerateFiles(PendingDirectory).Select(NameOfJournal).OrderBy(n => n, StringComparer.Ordinal).ToList();
    }

    internal void ClearPending(string name) => CasStore.TryDelete(Path.Combine(PendingDirectory, JournalName(name)));

    /// <summary>Whether a name waits in the pending journal (for a ref: a local change or removal the remote has not seen yet).</summary>
    internal bool IsPending(string name) => File.Exists(Path.Combine(PendingDirectory, JournalName(name)));

    /// <summary>How long a ref change waits for another process's ref change or ref upload on this store.</summary>
    private static readonly TimeSpan RefLockWait = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Serializes, across processes, what touches a ref of this store together with its journal entry: a set, a
    /// removal, the fill of a ref read through from the remote, and the upload of a journalled ref. Without it a
    /// read-through racing a removal could put the old value back locally, and the upload would then send it.
    /// </summary>
    internal IDisposable LockRefs()
    {
        var path = Path.Combine(_store.Root, "remote", "refs.lock");
        var deadline = Stopwatch.GetTimestamp() + (long)(RefLockWait.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                // FileShare.None is an exclusive advisory lock (flock) on Unix and a share-mode lock on Windows.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
            }
            catch (IOException) when (Stopwatch.GetTimestamp() < deadline)
            {
                Thread.Sleep(Random.Shared.Next(2, 12));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new RequiemException("CasWriteError", ErrorKind.WriteError,
                    $"The ref lock of the CAS at '{_store.Root}' could not be taken: {ex.Message}", _store.Root, ex);
            }
        }
    }

    // ---------------------------------------------------------------- reads

    /// <summary>
    /// Brings an object missing locally down from the remote: streamed into the store's tmp/ while it is decoded and
    /// re-hashed (one pass), then published like a put. A blob whose bytes do not hash to its name is discarded (Corrupt, a warning and a metric).
    /// </summary>
    public CasFetchOutcome FetchObject(string hash, CancellationToken cancel = default)
    {
        if (_offline is not null) return CasFetchOutcome.Unreachable;
        if (_corrupt.TryGetValue(hash, out var known)) return known;
        var outcome = FetchObjectCore(hash, cancel);
        if (outcome is CasFetchOutcome.Corrupt or CasFetchOutcome.TooLarge) _corrupt.TryAdd(hash, outcome);
        return outcome;
    }

    /// <summary>
    /// Brings down every object of <paramref name="hashes"/> that the local store lacks, <see cref="DownloadParallelism"/>
    /// at a time, each through <see cref="FetchObject"/> (decoded and re-hashed before it is published). Nothing fails
    /// here: an object that could not be brought down is still missing, and the read that needs it reports why, as a
    /// read without prefetch would. Returns how many objects came down.
    /// </summary>
    public int Prefetch(IEnumerable<string> hashes, CancellationToken cancel = default)
    {
        if (_offline is not null) return 0;
        var missing = hashes.Where(h => h is not null && Hashing.Hex.IsDigest(h)).Select(h => h.ToLowerInvariant())
            .Distinct(StringComparer.Ordinal).Where(h => _store.Locate(h) is null).ToList();
        if (missing.Count < 2) return 0; // one object is fetched by the read that needs it
        var fetched = 0;
        var options = new ParallelOptions { MaxDegreeOfParallelism = DownloadParallelism, CancellationToken = cancel };
        Parallel.ForEach(missing, options, (hash, loop) =>
        {
            if (_offline is not null) { loop.Stop(); return; }
            try
            {
                if (FetchObject(hash, cancel) == CasFetchOutcome.Fetched) Interlocked.Increment(ref fetched);
            }
            catch (RequiemException)
            {
                // The local store could not take it (full disk, quota): the read of that object reports it.
            }
        });
        return fetched;
    }

    private CasFetchOutcome FetchObjectCore(string hash, CancellationToken cancel)
    {
        var sawCorrupt = false;
        var sawTooLarge = false;
        foreach (var encoding in new[] { CasEncoding.Identity, CasEncoding.Zstd })
        {
            var name = CasLayout.ObjectName(hash, encoding);
            var tmp = _store.NewTempPath();
            try
            {
                // One pass: the blob streams into the staging file while it is hashed (and decoded, for zstd); the
                // staged file is published by rename only when its content hashed to the name.
                bool found;
                string? problem;
                long size, stored;
                using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
                using (var sink = new CasDownloadSink(file, encoding, _store.HashPrimitive, cancel))
                {
                    found = Backend.Download(name, sink, MaxObjectBytes, cancel);
                    problem = found ? sink.Complete(hash) : null;
                    if (found && problem is null) file.Flush(flushToDisk: true);
                    size = sink.ContentBytes;
                    stored = sink.StoredBytes;
                }
                if (!found) continue;
                MetricsRegistry.Add(Counter.RemoteDownloads);
                MetricsRegistry.Add(Counter.RemoteBytesDownloaded, stored);
                if (problem is not null)
                {
                    MetricsRegistry.Add(Counter.RemoteCorruptDetected);
                    Warn($"The remote copy of object {hash} ({name}) is corrupt and was not used: {problem}.");
                    sawCorrupt = true;
                    continue;
                }
                _store.CountVerified(size);
                _store.PublishFetched(tmp, hash, size, encoding, stored);
                tmp = null;
                return CasFetchOutcome.Fetched;
            }
            catch (CasBlobTooLargeException ex)
            {
                MetricsRegistry.Add(Counter.RemoteCorruptDetected);
                Warn($"The remote copy of object {hash} was not used: {ex.Message} (remote.max_object_bytes).");
                sawTooLarge = true;
            }
            catch (Exception ex) when (IsRemoteFailure(ex))
            {
                NoteRemoteFailure(ex);
                return CasFetchOutcome.Unreachable;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw _store.WriteError(ex); // the local store could not take the download (full disk, permissions)
            }
            finally
            {
                if (tmp is not null) CasStore.TryDelete(tmp);
            }
        }
        return sawCorrupt ? CasFetchOutcome.Corrupt : sawTooLarge ? CasFetchOutcome.TooLarge : CasFetchOutcome.Absent;
    }

    /// <summary>The largest small document (an action-cache entry) that is downloaded: entries are small JSON.</summary>
    public const int MaxDocumentBytes = 16 << 20; // as ActionCacheEntries.MaxEntryBytes

    /// <summary>
    /// Brings a small document (e.g. <c>ac/ab/&lt;key&gt;.json</c>) down into the local store when it is missing there,
    /// written atomically. The caller validates its content (a document is not named by its digest).
    /// </summary>
    /// <param name="accept">Checks the downloaded bytes; a document it refuses is not kept (a warning), so it is not
    /// served from the local store afterwards and is fetched again once the remote copy is fixed.</param>
    public bool FetchDocument(string relativeName, CancellationToken cancel = default, Func<byte[], bool>? accept = null)
    {
        if (_offline is not null) return false;
        var final = _store.Layout.PathOf(relativeName);
        var tmp = _store.NewTempPath();
        try
        {
            bool found;
            using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                found = Backend.Download(relativeName, file, MaxDocumentBytes, cancel);
                if (found) file.Flush(flushToDisk: true);
            }
            if (!found) return false;
            MetricsRegistry.Add(Counter.RemoteDownloads);
            MetricsRegistry.Add(Counter.RemoteBytesDownloaded, new FileInfo(tmp).Length);
            if (accept is not null && !accept(File.ReadAllBytes(tmp)))
            {
                MetricsRegistry.Add(Counter.RemoteCorruptDetected);
                Warn($"The remote document '{relativeName}' is not valid; it was not used.");
                return false;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(final)!);
            try { File.Move(tmp, final, overwrite: false); }
            catch (IOException) when (File.Exists(final)) { } // another process brought it first
            return true;
        }
        catch (CasBlobTooLargeException ex)
        {
            MetricsRegistry.Add(Counter.RemoteCorruptDetected);
            Warn($"The remote document '{relativeName}' was not used: {ex.Message}");
            return false;
        }
        catch (Exception ex) when (IsRemoteFailure(ex))
        {
            NoteRemoteFailure(ex);
            return false;
        }
        finally
        {
            CasStore.TryDelete(tmp);
        }
    }

    /// <summary>
    /// A ref missing locally, read through from the remote store: the blob must hold a digest naming an object the local
    /// or the remote store holds; it is then written into the local store (not journalled) and its hash returned. A
    /// tombstone (an empty blob: the ref was removed), a malformed blob (a warning), a ref whose removal here is still
    /// waiting in the journal, or an unreachable remote give null: a removed ref is never brought back.
    /// </summary>
    public string? FetchRef(string refName, CancellationToken cancel = default)
    {
        var name = CasLayout.RefName(refName);
        if (_offline is not null || IsPending(name)) return null;
        byte[] content;
        try
        {
            using var buffer = new MemoryStream();
            if (!Backend.Download(name, buffer, CasRefStore.MaxRefFileBytes, cancel)) return null;
            content = buffer.ToArray();
        }
        catch (CasBlobTooLargeException)
        {
            Warn($"The remote ref '{refName}' ({name}) is larger than a ref can be; it was not used.");
            MetricsRegistry.Add(Counter.RemoteCorruptDetected);
            return null;
        }
        catch (Exception ex) when (IsRemoteFailure(ex))
        {
            NoteRemoteFailure(ex);
            return null;
        }
        MetricsRegistry.Add(Counter.RemoteDownloads);
        MetricsRegistry.Add(Counter.RemoteBytesDownloaded, content.Length);
        if (content.Length == 0) return null; // a tombstone: removed on some agent
        var text = System.Text.Encoding.ASCII.GetString(content).Trim();
        if (!Hashing.Hex.IsDigest(text))
        {
            MetricsRegistry.Add(Counter.RemoteCorruptDetected);
            Warn($"The remote ref '{refName}' ({name}) does not hold an object hash; it was not used.");
            return null;
        }
        var hash = text.ToLowerInvariant();
        try
        {
            if (_store.Locate(hash) is null && !Backend.Exists(CasLayout.ObjectName(hash, CasEncoding.Identity), cancel)
                && !Backend.Exists(CasLayout.ObjectName(hash, CasEncoding.Zstd), cancel))
            {
                Warn($"The remote ref '{refName}' names object {hash}, which neither store holds; it was not used.");
                return null;
            }
        }
        catch (Exception ex) when (IsRemoteFailure(ex))
        {
            NoteRemoteFailure(ex);
            return null;
        }
        using var _ = LockRefs();
        // Checked again under the lock: a removal made here meanwhile wins over the copy just read.
        return _store.Refs.FillFromRemote(refName, hash, removalPending: IsPending(name));
    }

    // ---------------------------------------------------------------- uploads

    /// <summary>Uploads what the pending journal lists (the end of every command that wrote to a store with a remote).</summary>
    public CasSyncResult UploadPending(int parallelism = DefaultParallelism, CancellationToken cancel = default)
    {
        var watch = Stopwatch.StartNew();
        var names = PendingNames();
        if (names.Count == 0) return new CasSyncResult { Remote = Backend.Description, Duration = watch.Elapsed };
        if (_offline is not null)
            return new CasSyncResult { Remote = Backend.Description, Pending = names.Count, Reachable = false, Duration = watch.Elapsed };
        var result = Upload(names, parallelism, cancel);
        return Finish(result, watch);
    }

    /// <summary>
    /// Sync-RequiemCas: lists the remote, uploads every local object, ref and action-cache entry it lacks and every
    /// name in the pending journal. Throws RemoteUnavailable when the remote cannot be reached at all.
    /// </summary>
    public CasSyncResult Sync(int parallelism = DefaultParallelism, CancellationToken cancel = default)
    {
        var watch = Stopwatch.StartNew();
        HashSet<string> remote;
        try
        {
            Backend.Probe(cancel);
            remote = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prefix in new[] { CasLayout.ObjectsFolder + "/", CasLayout.RefsFolder + "/", CasLayout.ActionCacheFolder + "/" })
                foreach (var item in Backend.List(prefix, cancel)) remote.Add(item.Name);
        }
        catch (CasBackendUnavailableException ex)
        {
            MetricsRegistry.Add(Counter.RemoteErrors);
            throw new RequiemException("RemoteUnavailable", ErrorKind.ResourceUnavailable,
                $"Nothing was uploaded: {ex.Message}. What is waiting stays in the journal; run Sync-RequiemCas again when the remote answers.",
                Backend.Description, ex);
        }
        var todo = new SortedSet<string>(PendingNames(), StringComparer.Ordinal);
        var present = 0;
        foreach (var (_, hash, encoding) in _store.EnumerateObjectFiles())
        {
            cancel.ThrowIfCancellationRequested();
            if (remote.Contains(CasLayout.ObjectName(hash, CasEncoding.Identity)) || remote.Contains(CasLayout.ObjectName(hash, CasEncoding.Zstd)))
            {
                present++;
                continue;
            }
            todo.Add(CasLayout.ObjectName(hash, CasEncoding.Identity));
        }
        foreach (var name in EnumerateLocalDocuments())
        {
            if (remote.Contains(name)) present++;
            else todo.Add(name);
        }
        // Journal entries the remote already holds (uploaded by another agent, or before a crash) only need clearing.
        foreach (var name in todo.ToList())
        {
            if (!name.StartsWith(CasLayout.ObjectsFolder + "/", StringComparison.Ordinal) || CasLayout.ParseObjectName(name) is not { } o) continue;
            if (remote.Contains(CasLayout.ObjectName(o.Hash, CasEncoding.Identity)) || remote.Contains(CasLayout.ObjectName(o.Hash, CasEncoding.Zstd)))
            {
                ClearPending(name);
                todo.Remove(name);
            }
        }
        var result = Upload(todo.ToList(), parallelism, cancel);
        if (result.Reachable is false)
            throw new RequiemException("RemoteUnavailable", ErrorKind.ResourceUnavailable,
                $"The remote store stopped answering during the sync ({_offline}); {result.Uploaded} name(s) were uploaded, the rest stay in the journal.",
                Backend.Description);
        return Finish(new CasSyncResult
        {
            Remote = result.Remote, Uploaded = result.Uploaded, BytesUploaded = result.BytesUploaded,
            AlreadyPresent = result.AlreadyPresent + present, Failed = result.Failed,
        }, watch);
    }

    private CasSyncResult Finish(CasSyncResult r, Stopwatch watch) => new()
    {
        Remote = r.Remote, Uploaded = r.Uploaded, BytesUploaded = r.BytesUploaded, AlreadyPresent = r.AlreadyPresent, Failed = r.Failed,
        Reachable = _offline is null, Pending = PendingNames().Count, Duration = watch.Elapsed,
    };

    /// <summary>Refs and action-cache entries in the local store, as relative names.</summary>
    private IEnumerable<string> EnumerateLocalDocuments()
    {
        foreach (var (name, _) in _store.EnumerateRefs()) yield return CasLayout.RefsFolder + "/" + name;
        var ac = Path.Combine(_store.Root, CasLayout.ActionCacheFolder);
        if (!Directory.Exists(ac)) yield break;
        foreach (var file in Directory.EnumerateFiles(ac, "*.json", SearchOption.AllDirectories))
            yield return Path.GetRelativePath(_store.Root, file).Replace('\\', '/');
    }

    private CasSyncResult Upload(IReadOnlyList<string> names, int parallelism, CancellationToken cancel)
    {
        int uploaded = 0, present = 0, failed = 0;
        long bytes = 0;
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism), CancellationToken = cancel };
        Parallel.ForEach(names, options, (name, loop) =>
        {
            if (_offline is not null) { loop.Stop(); return; }
            try
            {
                var (sent, size) = UploadOne(name, cancel);
                if (sent)
                {
                    Interlocked.Increment(ref uploaded);
                    Interlocked.Add(ref bytes, size);
                    MetricsRegistry.Add(Counter.RemoteUploads);
                    MetricsRegistry.Add(Counter.RemoteBytesUploaded, size);
                }
                else
                {
                    Interlocked.Increment(ref present);
                }
                if (!IsRefName(name)) ClearPending(name); // a ref's entry is cleared under the ref lock (UploadRef)
            }
            catch (CasBackendUnavailableException ex)
            {
                GoOffline(ex);
                loop.Stop();
            }
            catch (RequiemException ex) when (ex.ErrorId == "CasRemoteError")
            {
                Interlocked.Increment(ref failed);
                MetricsRegistry.Add(Counter.RemoteErrors);
                Warn(ex.Message);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The local file could not be read (removed by a GC this instant, permissions): kept in the journal.
                Interlocked.Increment(ref failed);
                Warn($"'{name}' was not uploaded: {ex.Message}");
            }
        });
        return new CasSyncResult { Remote = Backend.Description, Uploaded = uploaded, BytesUploaded = bytes, AlreadyPresent = present, Failed = failed, Reachable = _offline is null };
    }

    /// <summary>Uploads one name; (false, 0) when the remote already had it, or the local copy is gone (nothing to send).</summary>
    private (bool Sent, long Size) UploadOne(string name, CancellationToken cancel)
    {
        if (CasLayout.ParseObjectName(name) is { } o)
        {
            var located = _store.Locate(o.Hash);
            if (located is null) return (false, 0); // collected locally since: nothing to send
            var (path, encoding) = located.Value;
            var size = new FileInfo(path).Length;
            return (Backend.CreateFromFile(CasLayout.ObjectName(o.Hash, encoding), path, cancel), size);
        }
        var local = _store.Layout.PathOf(name);
        if (IsRefName(name)) return UploadRef(name, local, cancel);
        byte[] content;
        try { content = File.ReadAllBytes(local); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException) { return (false, 0); }
        // An action-cache entry for a key is written once.
        return (Backend.PutDocument(name, content, overwrite: false, cancel), content.Length);
    }

    private static bool IsRefName(string name) => name.StartsWith(CasLayout.RefsFolder + "/", StringComparison.Ordinal);

    /// <summary>
    /// Makes the remote ref what the local one is now, under the ref lock (so a set or removal made meanwhile keeps its
    /// journal entry): the local value (last writer wins, as locally), or a tombstone when the ref was removed here.
    /// The journal entry is cleared here, inside the lock.
    /// </summary>
    private (bool Sent, long Size) UploadRef(string name, string local, CancellationToken cancel)
    {
        using var _ = LockRefs();
        if (!IsPending(name) && !File.Exists(local)) return (false, 0);
        byte[] content;
        try { content = IO.StoreFile.ReadSmall(local, CasRefStore.MaxRefFileBytes) ?? Array.Empty<byte>(); }
        catch (IO.SpecialFileException ex) { throw new IOException(ex.Message, ex); }
        var sent = Backend.PutDocument(name, content, overwrite: true, cancel);
        ClearPending(name);
        return (sent, content.Length);
    }

    // ---------------------------------------------------------------- verification

    /// <summary>
    /// Test-RequiemCas -Remote: downloads every object blob (or a random sample) into a scratch file, decodes and
    /// re-hashes it; a blob whose bytes do not match its name is listed as corrupt. Nothing is written to the local store.
    /// </summary>
    public CasVerifyReport Verify(int sample, CancellationToken cancel = default)
    {
        var watch = Stopwatch.StartNew();
        List<CasBackendItem> items;
        var foreign = new List<string>();
        try
        {
            items = Backend.List(CasLayout.ObjectsFolder + "/", cancel).ToList();
        }
        catch (CasBackendUnavailableException ex)
        {
            MetricsRegistry.Add(Counter.RemoteErrors);
            throw new RequiemException("RemoteUnavailable", ErrorKind.ResourceUnavailable, $"The remote store cannot be verified: {ex.Message}", Backend.Description, ex);
        }
        var objects = new List<(CasBackendItem Item, string Hash, CasEncoding Encoding)>();
        foreach (var item in items)
        {
            if (CasLayout.ParseObjectName(item.Name) is { } p) objects.Add((item, p.Hash, p.Encoding));
            else foreign.Add(item.Name);
        }
        var total = objects.Count;
        if (sample > 0 && sample < objects.Count)
            objects = objects.OrderBy(_ => Random.Shared.Next()).Take(sample).ToList();
        var corrupt = new ConcurrentBag<CasCorruptObject>();
        long bytes = 0;
        var checkedCount = 0;
        try
        {
            Parallel.ForEach(objects, new ParallelOptions { MaxDegreeOfParallelism = DefaultParallelism, CancellationToken = cancel }, o =>
            {
                var tmp = _store.NewTempPath();
                try
                {
                    using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose))
                    {
                        if (!Backend.Download(o.Item.Name, file, cancel)) return; // removed meanwhile
                        Interlocked.Add(ref bytes, file.Length);
                        MetricsRegistry.Add(Counter.RemoteDownloads);
                        MetricsRegistry.Add(Counter.RemoteBytesDownloaded, file.Length);
                        file.Position = 0;
                        try
                        {
                            _store.VerifyStream(file, o.Encoding, o.Hash, cancel);
                        }
                        catch (RequiemException ex) when (ex.ErrorId == "CasObjectCorrupt")
                        {
                            MetricsRegistry.Add(Counter.RemoteCorruptDetected);
                            corrupt.Add(new CasCorruptObject { Hash = o.Hash, Path = o.Item.Name, Encoding = o.Encoding, Reason = ex.Message });
                        }
                    }
                    Interlocked.Increment(ref checkedCount);
                }
                catch (CasBackendUnavailableException ex)
                {
                    MetricsRegistry.Add(Counter.RemoteErrors);
                    throw new RequiemException("RemoteUnavailable", ErrorKind.ResourceUnavailable, $"The remote store stopped answering during verification: {ex.Message}", Backend.Description, ex);
                }
            });
        }
        catch (AggregateException ex) when (ex.InnerExceptions.OfType<RequiemException>().FirstOrDefault() is { } first)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
        }
        return new CasVerifyReport
        {
            Root = Backend.Description,
            Mode = sample > 0 ? $"remote-sample:{sample}" : "remote-all",
            Checked = checkedCount,
            Total = total,
            BytesChecked = bytes,
            Corrupt = corrupt.OrderBy(c => c.Path, StringComparer.Ordinal).ToList(),
            Missing = Array.Empty<CasMissingObject>(),
            InvalidManifests = Array.Empty<CasInvalidManifest>(),
            Reread = 0,
            Vanished = 0,
            TempFiles = Array.Empty<CasTempFile>(),
            ForeignFiles = foreign,
            SampledHashes = sample > 0 ? objects.Select(o => o.Hash).ToList() : Array.Empty<string>(),
            Duration = watch.Elapsed,
        };
    }
}
