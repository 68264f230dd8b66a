using System.Buffers;
using Requiem.Engine.Hashing;
using ZstdSharp;

namespace Requiem.Engine.Cas;

/// <summary>One object to re-hash: its file, the digest it must have, how it is stored, and its size when known.</summary>
/// <param name="ExpectedSize">Uncompressed size in bytes, or -1 when not known (then only the digest is checked).</param>
/// <param name="ScanManifest">Also read the bytes as a manifest while they are hashed (objects a ref names), so the
/// reference check does not read them again.</param>
internal readonly record struct CasVerifyItem(string Path, string ExpectedHash, CasEncoding Encoding, long ExpectedSize = -1, bool ScanManifest = false);

/// <summary>What a <see cref="CasManifestScanner"/> learned from an object, without its parse buffer.</summary>
internal sealed record ScannedManifest(CasManifestStatus Status, string? Problem, IReadOnlyList<string> References, IReadOnlyList<string> Manifests)
{
    public static ScannedManifest From(CasManifestScanner scanner)
    {
        scanner.Complete();
        return new(scanner.Status, scanner.Problem, scanner.References, scanner.Manifests);
    }

    public static readonly ScannedManifest Data = new(CasManifestStatus.NotManifest, null, Array.Empty<string>(), Array.Empty<string>());
}

internal enum CasVerifyStatus
{
    /// <summary>The bytes hash to the expected digest (and have the expected size).</summary>
    Ok,
    /// <summary>The bytes do not match, do not decode, or cannot be read; <see cref="CasVerifyItemResult.Reason"/> says which.</summary>
    Corrupt,
    /// <summary>The file is gone (a concurrent GC removed it): not a verdict on the store.</summary>
    Vanished,
}

/// <summary>The verdict on one <see cref="CasVerifyItem"/>; <see cref="Size"/> is the uncompressed bytes hashed.</summary>
/// <param name="Manifest">For an item with <see cref="CasVerifyItem.ScanManifest"/> that is <see cref="CasVerifyStatus.Ok"/>: what its bytes are.</param>
/// <param name="Reread">The first read failed and a second one, after the reread delay, gave this verdict.</param>
internal readonly record struct CasVerifyItemResult(CasVerifyStatus Status, long Size, string? Reason, ScannedManifest? Manifest = null, bool Reread = false);

/// <summary>
/// Re-hashes many CAS objects on at most <c>maxThreads</c> threads in all, results in input order. Memory is bounded: at
/// most <see cref="Window"/> objects are ahead of the consumer (results wait in a ring, never a list of all), each
/// worker reads through one pooled buffer, and zstd objects are decoded by the worker that checks them, so several
/// decode at once. The threads are shared out: with several objects every worker hashes its object on its own thread;
/// a single object is hashed subtree-parallel on all of them. An object that fails is re-read by its worker after the
/// reread delay, so damaged objects do not hold up the others.
/// </summary>
internal sealed class CasParallelVerifier
{
    private const int SmallObjectBuffer = 64 * 1024;
    private const int DecodeBuffer = 1 << 20;

    private readonly HashPrimitive _hash;
    private readonly int _threads;
    private readonly TimeSpan? _rereadDelay;

    /// <param name="hash">The store's primitive.</param>
    /// <param name="maxThreads">Threads hashing at once, workers and subtree helpers together; at least 1.</param>
    /// <param name="rereadDelay">When set, an object that fails is read a second time after this pause before its verdict.</param>
    public CasParallelVerifier(HashPrimitive hash, int maxThreads, TimeSpan? rereadDelay = null)
    {
        if (maxThreads < 1) throw new ArgumentOutOfRangeException(nameof(maxThreads), maxThreads, "At least one thread is needed.");
        _hash = hash;
        _threads = maxThreads;
        _rereadDelay = rereadDelay;
    }

    /// <summary>Objects verified ahead of the one the consumer waits for, at most.</summary>
    public int Window => Math.Max(256, _threads * 64);

    /// <summary>
    /// Verifies <paramref name="items"/> and yields each result with its index, in input order, as soon as it and every
    /// earlier one are known. Stopping the enumeration early (or cancelling) stops the workers before it returns; an
    /// unexpected failure of a worker is rethrown here. Cancellation throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public IEnumerable<(int Index, CasVerifyItemResult Result)> Verify(IReadOnlyList<CasVerifyItem> items, CancellationToken cancel = default)
    {
        var count = items.Count;
        var threads = Math.Max(1, Math.Min(_threads, count));
        // Each worker's share of the cap for a large object's subtrees: the total never exceeds it.
        var hash = _hash.WithMaxThreads(Math.Max(1, _threads / threads));
        if (threads <= 1)
        {
            for (var i = 0; i < count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var probe = HashConcurrencyProbe.Enter();
                CasVerifyItemResult result;
                try { result = VerifyWithReread(hash, items[i], cancel); }
                finally { HashConcurrencyProbe.Exit(probe); }
                yield return (i, result);
            }
            yield break;
        }

        var run = new Run(this, hash, items, cancel);
        var workers = new Task[threads];
        for (var t = 0; t < threads; t++) workers[t] = Task.Factory.StartNew(run.Work, CancellationToken.None, TaskCreationOptions.None, TaskScheduler.Default);
        try
        {
            for (var i = 0; i < count; i++) yield return (i, run.Take(i));
        }
        finally
        {
            run.Stop();
            try { Task.WaitAll(workers); }
            catch (AggregateException) { } // a worker's failure was handed to Take already
        }
    }

    /// <summary>The queue of one <see cref="Verify"/> call; every field is guarded by the lock.</summary>
    private sealed class Run
    {
        private readonly object _gate = new();
        private readonly CasParallelVerifier _owner;
        private readonly HashPrimitive _hash;
        private readonly IReadOnlyList<CasVerifyItem> _items;
        private readonly CancellationToken _cancel;
        private readonly CasVerifyItemResult[] _results;
        private readonly bool[] _ready;
        private int _next;      // the next item a worker takes
        private int _consumed;  // items handed to the consumer
        private bool _stopped;
        private Exception? _failure;

        public Run(CasParallelVerifier owner, HashPrimitive hash, IReadOnlyList<CasVerifyItem> items, CancellationToken cancel)
        {
            _owner = owner;
            _hash = hash;
            _items = items;
            _cancel = cancel;
            _results = new CasVerifyItemResult[owner.Window];
            _ready = new bool[owner.Window];
        }

        public void Work()
        {
            using var wake = _cancel.Register(Stop);
            while (true)
            {
                int i;
                lock (_gate)
                {
                    while (!_stopped && _next < _items.Count && _next - _consumed >= _results.Length) Monitor.Wait(_gate);
                    if (_stopped || _next >= _items.Count) return;
                    i = _next++;
                }
                CasVerifyItemResult result;
                var probe = HashConcurrencyProbe.Enter();
                try
                {
                    result = _owner.VerifyWithReread(_hash, _items[i], _cancel);
                }
                catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
                {
                    Stop();
                    return;
                }
                catch (Exception ex)
                {
                    lock (_gate)
                    {
                        _failure ??= ex;
                        _stopped = true;
                        Monitor.PulseAll(_gate);
                    }
                    return;
                }
                finally
                {
                    HashConcurrencyProbe.Exit(probe);
                }
                lock (_gate)
                {
                    _results[i % _results.Length] = result;
                    _ready[i % _results.Length] = true;
                    Monitor.PulseAll(_gate);
                }
            }
        }

        /// <summary>Waits for item <paramref name="i"/> (the consumer takes them in order).</summary>
        public CasVerifyItemResult Take(int i)
        {
            lock (_gate)
            {
                var slot = i % _results.Length;
                while (!_ready[slot])
                {
                    if (_failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_failure).Throw();
                    _cancel.ThrowIfCancellationRequested();
                    Monitor.Wait(_gate, TimeSpan.FromMilliseconds(200));
                }
                _ready[slot] = false;
                _consumed = i + 1;
                Monitor.PulseAll(_gate);
                return _results[slot];
            }
        }

        public void Stop()
        {
            lock (_gate)
            {
                _stopped = true;
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>One object, read a second time after the reread delay (when there is one) if the first read fails.</summary>
    private CasVerifyItemResult VerifyWithReread(HashPrimitive hash, CasVerifyItem item, CancellationToken cancel)
    {
        var first = VerifyOne(hash, item, cancel);
        if (first.Status != CasVerifyStatus.Corrupt || _rereadDelay is not { } delay) return first;
        if (delay > TimeSpan.Zero && cancel.WaitHandle.WaitOne(delay)) cancel.ThrowIfCancellationRequested();
        return VerifyOne(hash, item, cancel) with { Reread = true };
    }

    /// <summary>
    /// Verifies one object on the calling thread: identity objects are hashed from the file (small ones with one read,
    /// large ones subtree-parallel), zstd objects are decoded and hashed as they stream. Read and decode failures are
    /// a <see cref="CasVerifyStatus.Corrupt"/> verdict when the file still exists and <see cref="CasVerifyStatus.Vanished"/>
    /// when it does not; only cancellation and unexpected faults throw.
    /// </summary>
    public static CasVerifyItemResult VerifyOne(HashPrimitive hash, CasVerifyItem item, CancellationToken cancel = default)
    {
        string actual;
        long size;
        ScannedManifest? manifest = null;
        try
        {
            var scanner = item.ScanManifest ? new CasManifestScanner() : null;
            (actual, size) = item.Encoding == CasEncoding.Zstd ? HashZstd(hash, item, scanner, cancel) : HashIdentity(hash, item, ref scanner, cancel);
            if (scanner is not null) manifest = ScannedManifest.From(scanner);
            else if (item.ScanManifest) manifest = ScannedManifest.Data;
        }
        catch (FileNotFoundException)
        {
            return new(CasVerifyStatus.Vanished, 0, null);
        }
        catch (DirectoryNotFoundException)
        {
            return new(CasVerifyStatus.Vanished, 0, null);
        }
        catch (RequiemException ex) when (ex.ErrorId == "FileNotFound")
        {
            return new(CasVerifyStatus.Vanished, 0, null);
        }
        catch (RequiemException ex) when (ex.ErrorId is "FileReadError" or "PathIsDirectory" or "CasObjectCorrupt")
        {
            return Unreadable(item, ex.ErrorId == "CasObjectCorrupt" ? ex.Message : CasStore.Corrupt(item.ExpectedHash, "read failed: " + ex.Message).Message);
        }
        catch (IO.SpecialFileException ex)
        {
            return new(CasVerifyStatus.Corrupt, 0, CasStore.Corrupt(item.ExpectedHash, $"the object file is {ex.What}, not a regular file; it was not read").Message);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Unreadable(item, CasStore.Corrupt(item.ExpectedHash, "read failed: " + ex.Message).Message);
        }
        if (!string.Equals(actual, item.ExpectedHash, StringComparison.Ordinal))
            return new(CasVerifyStatus.Corrupt, size, CasStore.Corrupt(item.ExpectedHash, $"content hashes to {actual}").Message);
        if (item.ExpectedSize >= 0 && size != item.ExpectedSize)
            return new(CasVerifyStatus.Corrupt, size, CasStore.Corrupt(item.ExpectedHash, $"{size} bytes where {item.ExpectedSize} were expected").Message);
        return new(CasVerifyStatus.Ok, size, null, manifest);
    }

    private static CasVerifyItemResult Unreadable(CasVerifyItem item, string reason) =>
        File.Exists(item.Path) ? new(CasVerifyStatus.Corrupt, 0, reason) : new(CasVerifyStatus.Vanished, 0, null);

    /// <summary>
    /// An identity object: small ones with one read (scanned from the same buffer), large ones subtree-parallel — or, when
    /// a scan is asked for and the object starts like a manifest ('{'), streamed through the scanner. A large object
    /// that is not JSON is not scanned (<paramref name="scanner"/> becomes null: it is data).
    /// </summary>
    private static (string Hash, long Size) HashIdentity(HashPrimitive hash, CasVerifyItem item, ref CasManifestScanner? scanner, CancellationToken cancel)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(SmallObjectBuffer);
        try
        {
            // One open and one statx (no-follow, non-blocking, must be a regular file), then the bytes.
            using var handle = IO.StoreFile.OpenObject(item.Path, out var length);
            if (length < SmallObjectBuffer)
            {
                var n = ReadSmall(handle, buffer.AsSpan(0, SmallObjectBuffer), length);
                scanner?.Write(buffer.AsSpan(0, n));
                return (hash.HashBytes(buffer.AsSpan(0, n), HashDomain.Cas), n);
            }
            if (scanner is not null)
            {
                Span<byte> first = stackalloc byte[1];
                if (RandomAccess.Read(handle, first, 0) == 1 && first[0] == (byte)'{')
                {
                    using var file = new FileStream(handle, FileAccess.Read, 1);
                    return HashStream(hash, item, file, buffer.AsSpan(0, SmallObjectBuffer), scanner, cancel);
                }
                scanner = null;
            }
            return hash.HashOpenFile(handle, item.Path, HashDomain.Cas, cancel);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads the <paramref name="length"/> bytes statx reported (objects are immutable) from offset 0 with pread on the
    /// raw descriptor: with the open, the statx and the close, four system calls for a small object, as many as before
    /// the type check (RandomAccess would add an lseek/fstat per file). Stops early at end of file.
    /// </summary>
    private static unsafe int ReadSmall(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> buffer, long length)
    {
        if (!OperatingSystem.IsLinux())
        {
            var read = 0;
            for (int n; read < length && (n = RandomAccess.Read(handle, buffer[read..(int)length], read)) > 0;) read += n;
            return read;
        }
        var fd = (int)handle.DangerousGetHandle();
        var total = 0;
        fixed (byte* p = buffer)
        {
            while (total < length)
            {
                var n = Interop.Libc.Pread(fd, p + total, (nuint)(length - total), total);
                if (n < 0)
                {
                    var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                    if (errno == 4) continue; // EINTR
                    throw new IOException($"read failed: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
                }
                if (n == 0) break;
                total += (int)n;
            }
        }
        return total;
    }

    private static (string Hash, long Size) HashZstd(HashPrimitive hash, CasVerifyItem item, CasManifestScanner? scanner, CancellationToken cancel)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(DecodeBuffer);
        try
        {
            using var file = new FileStream(IO.StoreFile.OpenObject(item.Path, out _), FileAccess.Read, 1);
            using var decoder = new DecompressionStream(file, leaveOpen: true);
            return HashStream(hash, item, decoder, buffer.AsSpan(0, DecodeBuffer), scanner, cancel);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Hashes (and scans, when asked) a stream to its end in reads that fill <paramref name="buffer"/>.</summary>
    private static (string Hash, long Size) HashStream(HashPrimitive hash, CasVerifyItem item, Stream source, Span<byte> buffer,
        CasManifestScanner? scanner, CancellationToken cancel)
    {
        using var hasher = hash.CreateHasher(HashDomain.Cas);
        long total = 0;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            int n;
            try
            {
                n = source.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            }
            catch (Exception ex) when (ex is ZstdException or InvalidDataException or EndOfStreamException or InvalidOperationException)
            {
                throw CasStore.Corrupt(item.ExpectedHash, "zstd frame does not decode: " + ex.Message, ex);
            }
            if (n <= 0) break;
            if (n >= HashPrimitive.ParallelThreshold) hasher.UpdateParallel(buffer[..n]); else hasher.Update(buffer[..n]);
            scanner?.Write(buffer[..n]);
            total += n;
            if (n < buffer.Length) break;
        }
        return (hasher.FinalizeHex(), total);
    }
}
