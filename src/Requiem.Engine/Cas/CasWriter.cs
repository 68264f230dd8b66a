using System.Buffers;
using Requiem.Engine.Hashing;
using ZstdSharp;

namespace Requiem.Engine.Cas;

/// <summary>
/// The write path of a store: every object is written to <c>tmp/</c> (hashed and, for zstd, compressed on the way),
/// flushed, then published under its name without ever replacing an existing object, so a reader never sees a partial
/// object and concurrent writers of the same object both succeed. Small files are read whole into a pooled buffer and
/// hashed first (nothing is written when the object exists); a batch stages many and publishes them after one flush.
/// </summary>
public sealed class CasWriter
{
    private const int CopyBuffer = 1 << 20;
    private readonly CasStore _store;
    private readonly HashPrimitive _hash;
    private readonly HashSet<string> _knownShards = new(StringComparer.Ordinal);

    internal CasWriter(CasStore store)
    {
        _store = store;
        _hash = store.HashPrimitive;
    }

    internal CasPutResult PutStream(Stream input, CasEncoding encoding = CasEncoding.Identity, int level = 3, CancellationToken cancel = default)
    {
        var tmp = _store.NewTempPath();
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            string hash;
            long size = 0;
            var incompressible = false;
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            using (var hasher = _hash.CreateHasher(HashDomain.Cas))
            {
                Stream sink = fs;
                if (encoding == CasEncoding.Zstd)
                {
                    // Record the content size in the frame header when it is known (statistics read it without decoding).
                    var known = input.CanSeek ? input.Length - input.Position : -1;
                    if (NativeZstdCompressStream.Enabled && NativeZstdCompressStream.Available)
                    {
                        // The system's libzstd (what the zstd CLI uses) is ~1.5x faster than the managed port; same format.
                        sink = new NativeZstdCompressStream(fs, level, known);
                    }
                    else
                    {
                        var cs = new CompressionStream(fs, level, leaveOpen: true);
                        if (known >= 0) cs.SetPledgedSrcSize((ulong)known);
                        sink = cs;
                    }
                }
                try
                {
                    if (encoding == CasEncoding.Zstd)
                    {
                        // Compression (the slow part) runs on its own thread while this one reads and hashes the next chunk.
                        using var pipe = new BackgroundWriter(sink, CopyBuffer);
                        while (true)
                        {
                            cancel.ThrowIfCancellationRequested();
                            var chunk = ArrayPool<byte>.Shared.Rent(CopyBuffer);
                            var n = input.Read(chunk, 0, CopyBuffer);
                            if (n <= 0) { ArrayPool<byte>.Shared.Return(chunk); break; }
                            if (n >= HashPrimitive.ParallelThreshold) hasher.UpdateParallel(chunk.AsSpan(0, n)); else hasher.Update(chunk.AsSpan(0, n));
                            pipe.Post(chunk, n);
                            size += n;
                        }
                        pipe.Complete();
                        if (sink is NativeZstdCompressStream native) native.Finish();
                    }
                    else
                    {
                        int n;
                        while ((n = input.Read(buffer, 0, CopyBuffer)) > 0)
                        {
                            cancel.ThrowIfCancellationRequested();
                            if (n >= HashPrimitive.ParallelThreshold) hasher.UpdateParallel(buffer.AsSpan(0, n)); else hasher.Update(buffer.AsSpan(0, n));
                            sink.Write(buffer, 0, n);
                            size += n;
                        }
                    }
                }
                finally
                {
                    if (!ReferenceEquals(sink, fs)) sink.Dispose();
                }
                // A frame no smaller than its content is replaced by the raw bytes below: never pay a flush for it.
                incompressible = encoding == CasEncoding.Zstd && fs.Length >= size;
                if (!incompressible) fs.Flush(flushToDisk: true);
                hash = hasher.FinalizeHex();
            }
            if (TryExisting(hash, size) is { } existing)
            {
                CasStore.TryDelete(tmp);
                return existing;
            }
            if (incompressible)
            {
                // Zstd did not help: store the bytes raw (decoded from the frame; the input may not be readable twice).
                tmp = DecodeToRawTemp(tmp);
                encoding = CasEncoding.Identity;
            }
            return Publish(tmp, hash, size, encoding, durable: true);
        }
        catch (ZstdException ex)
        {
            CasStore.TryDelete(tmp);
            throw new RequiemException("CasWriteError", ErrorKind.WriteError, $"zstd compression failed: {ex.Message}", _store.Root, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            CasStore.TryDelete(tmp);
            throw _store.WriteError(ex);
        }
        catch
        {
            CasStore.TryDelete(tmp);
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Decodes a zstd temp file into a new, flushed raw temp file and deletes the first; returns the new path.</summary>
    private string DecodeToRawTemp(string zstdTemp)
    {
        var raw = _store.NewTempPath();
        try
        {
            using (var source = new FileStream(zstdTemp, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
            using (var decoder = new DecompressionStream(source))
            using (var sink = new FileStream(raw, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                decoder.CopyTo(sink, CopyBuffer);
                sink.Flush(flushToDisk: true);
            }
        }
        catch
        {
            CasStore.TryDelete(raw);
            throw;
        }
        CasStore.TryDelete(zstdTemp);
        return raw;
    }

    /// <summary>
    /// Puts a file. With <paramref name="stage"/>, a small new object is written to tmp/ without a flush and its temp
    /// path returned in <paramref name="staged"/> (the caller flushes and publishes it); large files are always
    /// streamed, flushed and published.
    /// </summary>
    internal CasPutResult PutFileCore(string path, CasEncoding encoding, int level, bool stage, CancellationToken cancel, out StagedTemp? staged,
        bool mayHoldHandle = true)
    {
        staged = null;
        using var source = OpenSource(path);
        long length;
        try { length = RandomAccess.GetLength(source); }
        catch (IOException ex) { throw CasStore.ReadError(ex, path); }
        if (length <= CasStore.SmallObjectLimit)
        {
            var buffer = ArrayPool<byte>.Shared.Rent((int)length + 1);
            try
            {
                var total = 0;
                try
                {
                    while (total < buffer.Length)
                    {
                        var n = RandomAccess.Read(source, buffer.AsSpan(total), total);
                        if (n == 0) break;
                        total += n;
                    }
                }
                catch (IOException ex) { throw CasStore.ReadError(ex, path); }
                catch (UnauthorizedAccessException ex) { throw CasStore.ReadError(ex, path); }
                if (total < buffer.Length) return PutSmall(buffer.AsSpan(0, total), encoding, level, stage, out staged, mayHoldHandle);
                // The file grew while we read it: fall through to streaming.
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        using var input = new FileStream(source, FileAccess.Read, 1);
        try
        {
            return PutStream(input, encoding, level, cancel);
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasWriteError" && ex.InnerException is IOException io && !File.Exists(path))
        {
            throw CasStore.ReadError(io, path);
        }
    }

    /// <summary>Writes pooled chunks to a stream on a background thread (bounded: at most four chunks in flight).</summary>
    private sealed class BackgroundWriter : IDisposable
    {
        private readonly System.Collections.Concurrent.BlockingCollection<(byte[] Buffer, int Count)> _queue = new(4);
        private readonly Task _worker;
        private volatile Exception? _error;

        public BackgroundWriter(Stream sink, int _)
        {
            _worker = Task.Factory.StartNew(() =>
            {
                foreach (var (buffer, count) in _queue.GetConsumingEnumerable())
                {
                    try
                    {
                        if (_error is null) sink.Write(buffer, 0, count);
                    }
                    catch (Exception ex)
                    {
                        _error = ex;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        public void Post(byte[] buffer, int count)
        {
            if (_error is { } e) { ArrayPool<byte>.Shared.Return(buffer); Rethrow(e); }
            _queue.Add((buffer, count));
        }

        /// <summary>Waits until everything is written; rethrows the writer's failure.</summary>
        public void Complete()
        {
            _queue.CompleteAdding();
            _worker.Wait();
            if (_error is { } e) Rethrow(e);
        }

        private static void Rethrow(Exception e) => System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();

        public void Dispose()
        {
            if (!_queue.IsAddingCompleted) _queue.CompleteAdding();
            try { _worker.Wait(); } catch (AggregateException) { }
            _queue.Dispose();
        }
    }

    /// <summary>A complete, not yet flushed object waiting in tmp/: a named file, or an unnamed (O_TMPFILE) one.</summary>
    internal sealed class StagedTemp : IDisposable
    {
        public StagedTemp(string path) => Path = path;
        public StagedTemp(Microsoft.Win32.SafeHandles.SafeFileHandle handle) => Handle = handle;
        public string? Path { get; private set; }
        public Microsoft.Win32.SafeHandles.SafeFileHandle? Handle { get; private set; }

        public void Flush()
        {
            if (Handle is not null) { RandomAccess.FlushToDisk(Handle); return; }
            using var fs = new FileStream(Path!, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            fs.Flush(flushToDisk: true);
        }

        /// <summary>Publishes (flush first!) and gives up ownership.</summary>
        public CasPutResult Publish(CasStore store, CasPutResult r)
        {
            if (Handle is { } h) { Handle = null; return store.Writer.PublishAnonymous(h, r.Hash, r.Size, r.Encoding, durable: false, stored: r.StoredSize); }
            var p = Path!;
            var result = store.Publish(p, r.Hash, r.Size, r.Encoding, durable: false, stored: r.StoredSize);
            Path = null;
            return result;
        }

        /// <summary>Discards an unpublished object: an unnamed file just vanishes; a named one is deleted.</summary>
        public void Dispose()
        {
            Handle?.Dispose();
            Handle = null;
            if (Path is not null) CasStore.TryDelete(Path);
            Path = null;
        }
    }

    private static Microsoft.Win32.SafeHandles.SafeFileHandle OpenSource(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (UnauthorizedAccessException) when (Directory.Exists(path))
        {
            throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{path}' is a directory, not a file.", path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return HashPrimitive.OpenForRead(path); // the usual error ids (FileNotFound, FileReadError, PathIsDirectory)
        }
    }

    /// <summary>The result for an object that is already stored (freshened so that a concurrent GC keeps it), or null.</summary>
    private CasPutResult? TryExisting(string hash, long size)
    {
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var identity = _store.ObjectPath(hash, CasEncoding.Identity);
            var zstd = identity + CasLayout.ZstdSuffix;
            foreach (var (path, enc) in new[] { (identity, CasEncoding.Identity), (zstd, CasEncoding.Zstd) })
            {
                try
                {
                    var info = new FileInfo(path);
                    if (!info.Exists) continue;
                    // A truncated identity object is not a copy of these bytes: let the new write replace it.
                    if (enc == CasEncoding.Identity && info.Length != size) return null;
                    if (Freshen(path))
                    {
                        _store.CountDeduplicated(size);
                        return new CasPutResult { Hash = hash, Size = size, StoredSize = info.Length, Encoding = enc, Existed = true };
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            }
        }
        return null;
    }

    /// <summary>Sets an object's mtime to now (like git's freshen): GC keeps anything younger than its grace period.</summary>
    internal static bool Freshen(string path)
    {
        try
        {
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow);
            return true;
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
        catch (UnauthorizedAccessException) { return File.Exists(path); } // read-only store: still present
        catch (IOException) { return File.Exists(path); }
    }

    /// <summary>
    /// Puts bytes. With <paramref name="stage"/>, a new object is left complete and unflushed in tmp/ (returned in
    /// <paramref name="staged"/>): as an open unnamed (O_TMPFILE) file when <paramref name="mayHoldHandle"/>, else as a
    /// closed named temp file, so that a batch of any size holds a bounded number of descriptors.
    /// </summary>
    internal CasPutResult PutSmall(ReadOnlySpan<byte> data, CasEncoding encoding, int level, bool stage, out StagedTemp? staged, bool mayHoldHandle = true)
    {
        staged = null;
        var hash = _hash.HashBytes(data, HashDomain.Cas);
        if (TryExisting(hash, data.Length) is { } existing) return existing;

        string? tmp = null;
        Microsoft.Win32.SafeHandles.SafeFileHandle? anonymous = null;
        byte[]? compressed = null;
        try
        {
            ReadOnlySpan<byte> payload = data;
            if (encoding == CasEncoding.Zstd)
            {
                compressed = ArrayPool<byte>.Shared.Rent(Compressor.GetCompressBound(data.Length));
                var c = CasCodec.GetCompressor(level);
                var n = c.Wrap(data, compressed);
                // Zstd only when it helps: an object that does not shrink is stored raw (and the result says so).
                if (n < data.Length) payload = compressed.AsSpan(0, n);
                else encoding = CasEncoding.Identity;
            }
            var result = new CasPutResult { Hash = hash, Size = data.Length, StoredSize = payload.Length, Encoding = encoding, Existed = false };
            // Linux: an unnamed temp file in tmp/ (O_TMPFILE) that gets its final name in one linkat; it cannot be left
            // behind by a crash. Elsewhere (or where the file system lacks O_TMPFILE): a named temp file and a rename.
            anonymous = !stage || mayHoldHandle ? CasNative.OpenAnonymous(_store.TempDirectory) : null;
            if (anonymous is not null)
            {
                RandomAccess.Write(anonymous, payload, 0);
                if (stage)
                {
                    staged = new StagedTemp(anonymous);
                    anonymous = null;
                    return result;
                }
                RandomAccess.FlushToDisk(anonymous);
                return PublishAnonymous(anonymous, hash, data.Length, encoding, durable: true, stored: payload.Length);
            }
            tmp = _store.NewTempPath();
            using (var handle = File.OpenHandle(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                RandomAccess.Write(handle, payload, 0);
                if (!stage) RandomAccess.FlushToDisk(handle);
            }
            if (stage)
            {
                staged = new StagedTemp(tmp);
                tmp = null;
                return result;
            }
            var published = Publish(tmp, hash, data.Length, encoding, durable: true, stored: payload.Length);
            tmp = null;
            return published;
        }
        catch (ZstdException ex)
        {
            throw new RequiemException("CasWriteError", ErrorKind.WriteError, $"zstd compression failed: {ex.Message}", _store.Root, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw _store.WriteError(ex);
        }
        finally
        {
            anonymous?.Dispose();
            if (tmp is not null) CasStore.TryDelete(tmp);
            if (compressed is not null) ArrayPool<byte>.Shared.Return(compressed);
        }
    }

    /// <summary>Like <see cref="Publish"/> for an unnamed (O_TMPFILE) temp file: linkat never replaces an existing object.</summary>
    internal CasPutResult PublishAnonymous(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string hash, long size, CasEncoding encoding, bool durable, long stored)
    {
        try
        {
            _store.Quota?.Reserve(stored); // [tenants] over the quota: throws, and the unnamed file vanishes with its handle
            var final = _store.ObjectPath(hash, encoding);
            var shard = Path.GetDirectoryName(final)!;
            for (var attempt = 0; ; attempt++)
            {
                EnsureShard(shard, force: attempt > 0);
                var linked = CasNative.LinkAnonymous(handle, final);
                if (linked == CasNative.RenameResult.DirectoryMissing && attempt < 3) continue;
                if (linked == CasNative.RenameResult.Renamed)
                {
                    if (durable) CasNative.FsyncDirectory(shard);
                    _store.Written(hash, size, stored);
                    return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
                }
                if (linked != CasNative.RenameResult.Exists) throw new DirectoryNotFoundException($"The shard directory '{shard}' cannot be created.");
                var existing = new FileInfo(final);
                if (existing.Exists && encoding == CasEncoding.Identity && existing.Length != size)
                {
                    // A damaged identity object of the wrong length: give ours a temp name, then replace it atomically.
                    var tmp = _store.NewTempPath();
                    CasNative.LinkAnonymous(handle, tmp);
                    File.Move(tmp, final, overwrite: true);
                    if (durable) CasNative.FsyncDirectory(shard);
                    _store.Written(hash, size, stored);
                    return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
                }
                if (!Freshen(final) && attempt < 3) continue; // removed by GC this instant: link ours
                _store.CountDeduplicated(size);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = existing.Exists ? existing.Length : stored, Encoding = encoding, Existed = true };
            }
        }
        finally
        {
            handle.Dispose();
        }
    }

    /// <summary>
    /// Renames a complete, flushed temp file to its final name without ever replacing an existing object
    /// (link-then-unlink on Unix). If the name already exists, another writer stored the same bytes: both succeed.
    /// </summary>
    internal CasPutResult Publish(string tmp, string hash, long size, CasEncoding encoding, bool durable, long stored = -1)
    {
        var final = _store.ObjectPath(hash, encoding);
        var shard = Path.GetDirectoryName(final)!;
        if (stored < 0) stored = new FileInfo(tmp).Length;
        _store.Quota?.Reserve(stored); // [tenants] over the quota: throws before the rename; callers delete the temp file
        for (var attempt = 0; ; attempt++)
        {
            EnsureShard(shard, force: attempt > 0);
            try
            {
                var renamed = CasNative.RenameNoReplace(tmp, final);
                if (renamed == CasNative.RenameResult.DirectoryMissing && attempt < 3) continue;
                if (renamed == CasNative.RenameResult.Exists) throw new IOException("exists", 17);
                if (renamed != CasNative.RenameResult.Renamed) File.Move(tmp, final, overwrite: false);
                if (durable) CasNative.FsyncDirectory(shard);
                _store.Written(hash, size, stored);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
            }
            catch (DirectoryNotFoundException) when (attempt < 3 && File.Exists(tmp))
            {
                // The shard directory vanished (removed by hand): recreate it and retry.
            }
            catch (IOException) when (File.Exists(final))
            {
                var existing = new FileInfo(final);
                if (existing.Exists && encoding == CasEncoding.Identity && existing.Length != size)
                {
                    // A damaged identity object of the wrong length: replace it atomically with the good bytes.
                    File.Move(tmp, final, overwrite: true);
                    if (durable) CasNative.FsyncDirectory(shard);
                    _store.Written(hash, size, stored);
                    return new CasPutResult { Hash = hash, Size = size, StoredSize = stored, Encoding = encoding, Existed = false };
                }
                // Another writer published the same object first: same name, same bytes. Both succeed.
                if (!Freshen(final) && attempt < 3) continue; // ... unless GC removed it this instant: publish ours.
                CasStore.TryDelete(tmp);
                _store.CountDeduplicated(size);
                return new CasPutResult { Hash = hash, Size = size, StoredSize = existing.Exists ? existing.Length : stored, Encoding = encoding, Existed = true };
            }
        }
    }

    private void EnsureShard(string shard, bool force)
    {
        lock (_knownShards)
        {
            if (!force && _knownShards.Contains(shard)) return;
        }
        Directory.CreateDirectory(shard);
        lock (_knownShards) _knownShards.Add(shard);
    }

}
