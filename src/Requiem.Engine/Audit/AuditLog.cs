using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;
using Requiem.Engine.Tenants;

namespace Requiem.Engine.Audit;

/// <summary>
/// The append-only, hash-chained audit log of one store: <c>&lt;store&gt;/audit/log.jsonl</c> (one canonical JSON entry a
/// line) with its head anchor <c>&lt;store&gt;/audit/head</c> (the last entry, its sequence number and the log's length
/// after it) kept outside the log, so that a cut-off tail is detected. docs/CONTRACT.md has the format.
/// </summary>
/// <remarks>
/// Appends from any number of threads and processes hold an exclusive lock on <c>audit/lock</c> while they read the head
/// and append, so every entry chains onto the one before it and none is lost. Order of writes per entry: the new head
/// (temp file, fsync, rename, directory fsync), then the log lines (append, fsync). A crash between the two leaves a head
/// ahead of the log; the next append writes the missing lines from the head before its own (nothing is lost), and until
/// then verification reports the gap. Threads of one process that append at the same moment are written as one batch.
/// </remarks>
public sealed partial class AuditLog
{
    public const string DirectoryName = "audit";
    public const string LogFileName = "log.jsonl";
    public const string HeadFileName = "head";
    public const string LockFileName = "lock";
    /// <summary>A head holds the entries of one group commit; a file larger than this is not a head.</summary>
    public const int MaxHeadBytes = 64 << 20;

    private readonly HashPrimitive _hash;

    public AuditLog(string storeRoot, HashPrimitive hash, string? tenant)
    {
        StoreRoot = Path.GetFullPath(storeRoot);
        Directory = Path.Combine(StoreRoot, DirectoryName);
        LogPath = Path.Combine(Directory, LogFileName);
        HeadPath = Path.Combine(Directory, HeadFileName);
        LockPath = Path.Combine(Directory, LockFileName);
        Tenant = tenant;
        _hash = hash;
    }

    /// <summary>The log of a store; the tenant is the one the store belongs to (null for a store that is no tenant's).</summary>
    public static AuditLog For(CasStore store) => new(store.Root, store.HashPrimitive, TenantStores.TenantOf(store.Root));

    /// <summary>Appends one entry to the store's audit log (see <see cref="Append(string, IEnumerable{string}?, IReadOnlyDictionary{string, object?}?)"/>).</summary>
    public static AuditEntry Append(CasStore store, string action, IEnumerable<string>? digests = null, IReadOnlyDictionary<string, object?>? details = null) =>
        For(store).Append(action, digests, details);

    public string StoreRoot { get; }
    public string Directory { get; }
    public string LogPath { get; }
    public string HeadPath { get; }
    public string LockPath { get; }
    public string? Tenant { get; }

    [GeneratedRegex("^[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)*\\z")] // \z: $ would let a final newline through
    private static partial Regex ActionPattern();

    /// <summary>
    /// Appends one entry (durable when this returns). <paramref name="action"/> is a dotted lowercase name
    /// (<see cref="AuditActions"/>); <paramref name="digests"/> are the objects involved (64 hex digits each);
    /// <paramref name="details"/> holds strings, numbers, booleans or arrays of them. Throws <c>InvalidAuditEntry</c>
    /// for bad input and <c>AuditWriteError</c> when the log cannot be written.
    /// </summary>
    public AuditEntry Append(string action, IEnumerable<string>? digests = null, IReadOnlyDictionary<string, object?>? details = null)
    {
        if (string.IsNullOrEmpty(action) || action.Length > 64 || !ActionPattern().IsMatch(action))
            throw new RequiemException("InvalidAuditEntry", ErrorKind.InvalidArgument,
                $"'{action}' is not an audit action: use lowercase words separated by '.', e.g. '{AuditActions.RefSet}'.", action);
        var digestList = new List<string>();
        foreach (var d in digests ?? Array.Empty<string>())
        {
            if (!Hex.IsDigest(d))
                throw new RequiemException("InvalidAuditEntry", ErrorKind.InvalidArgument, $"'{d}' is not a digest (64 hexadecimal characters).", d);
            digestList.Add(d.ToLowerInvariant());
        }
        var detailMap = new SortedDictionary<string, object?>(StringComparer.Ordinal);
        if (details is not null) foreach (var (k, v) in details) detailMap[k] = v;
        var request = new PendingAppend(action, digestList, detailMap);

        // Group commit: appends that arrive while another thread of this process is writing are written together by it,
        // under one lock, one head and one flush of the log (so parallel runs do not queue one flush each).
        var queue = s_queues.GetOrAdd(LogPath, _ => new AppendQueue());
        bool lead;
        lock (queue)
        {
            queue.Waiting.Add(request);
            lead = !queue.Writing;
            if (lead) queue.Writing = true;
        }
        if (lead)
        {
            while (true)
            {
                List<PendingAppend> batch;
                lock (queue)
                {
                    if (queue.Waiting.Count == 0) { queue.Writing = false; break; }
                    batch = queue.Waiting;
                    queue.Waiting = new List<PendingAppend>();
                }
                try { WriteBatch(batch); }
                catch (Exception ex) { foreach (var b in batch) b.Error = ex; }
                finally { foreach (var b in batch) b.Done.Set(); }
            }
        }
        request.Done.Wait();
        request.Done.Dispose();
        if (request.Error is RequiemException rex) throw rex;
        if (request.Error is not null) throw new RequiemException("AuditWriteError", ErrorKind.WriteError, $"Cannot append to the audit log '{LogPath}': {request.Error.Message}", LogPath, request.Error);
        return request.Result!;
    }

    private sealed class PendingAppend(string action, IReadOnlyList<string> digests, IReadOnlyDictionary<string, object?> details)
    {
        public string Action { get; } = action;
        public IReadOnlyList<string> Digests { get; } = digests;
        public IReadOnlyDictionary<string, object?> Details { get; } = details;
        public AuditEntry? Result { get; set; }
        public Exception? Error { get; set; }
        public ManualResetEventSlim Done { get; } = new(false);
    }

    private sealed class AppendQueue
    {
        public List<PendingAppend> Waiting { get; set; } = new();
        public bool Writing { get; set; }
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, AppendQueue> s_queues = new(StringComparer.Ordinal);

    /// <summary>Appends the entries of <paramref name="batch"/> in order, holding the lock across processes.</summary>
    private void WriteBatch(List<PendingAppend> batch)
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            AuditFiles.CheckDirectory(Directory);
            using var _ = AuditFileLock.Acquire(LockPath, exclusive: true);
            var head = ReadHead(out var headProblem);
            var length = LogLength();
            long seq;
            string? prev;
            var entries = new List<AuditEntry>();
            if (head is not null)
            {
                length = CompleteInterruptedAppend(head, length);
                (seq, prev) = (head.Seq, head.Hash);
            }
            else if (length > 0)
            {
                // The log has entries but no usable anchor: chain onto its last entry, and say in the log itself that the
                // anchor was lost here (verification reports it: nothing before this point can prove its tail was whole).
                (seq, prev) = ReadLastEntry(length);
                var reset = Build(seq + 1, prev, AuditActions.AnchorReset, Array.Empty<string>(),
                    new Dictionary<string, object?> { ["reason"] = headProblem ?? "the head anchor was missing" });
                entries.Add(reset);
                (seq, prev) = (reset.Seq, reset.Hash);
            }
            else
            {
                (seq, prev) = (0, null);
            }
            foreach (var request in batch)
            {
                var entry = Build(seq + 1, prev, request.Action, request.Digests, request.Details);
                request.Result = entry;
                entries.Add(entry);
                (seq, prev) = (entry.Seq, entry.Hash);
            }
            WriteEntries(entries, length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("AuditWriteError", ErrorKind.WriteError, $"Cannot append to the audit log '{LogPath}': {ex.Message}", LogPath, ex);
        }
    }

    private AuditEntry Build(long seq, string? prev, string action, IReadOnlyList<string> digests, IReadOnlyDictionary<string, object?> details)
    {
        var time = DateTime.UtcNow;
        var actor = AuditActor.Current;
        var hash = AuditEntry.ComputeHash(_hash, AuditEntry.ToNode(AuditEntry.CurrentFormat, seq, time, actor, Tenant, action, digests, details, prev, null));
        return new AuditEntry
        {
            Seq = seq, Time = time, Actor = actor, Tenant = Tenant, Action = action, Digests = digests, Details = details, Prev = prev, Hash = hash,
        };
    }

    /// <summary>Writes the head naming <paramref name="entries"/> (the last one anchored), then appends their lines.</summary>
    private void WriteEntries(List<AuditEntry> entries, long length)
    {
        var text = string.Concat(entries.Select(e => e.ToJsonLine() + "\n"));
        var bytes = Encoding.UTF8.GetBytes(text);
        var separator = length > 0 && !EndsWithNewline(length) ? 1 : 0; // never glue an entry onto a torn line
        WriteHead(entries, length + separator + bytes.Length);
        using var log = AuditFiles.Open(LogPath, write: true, create: true)!;
        log.Position = log.Length; // appends are serialized by the lock
        if (separator == 1) log.WriteByte((byte)'\n');
        log.Write(bytes);
        log.Flush(flushToDisk: true);
    }

    private void WriteHead(List<AuditEntry> entries, long logSize)
    {
        var last = entries[^1];
        var head = new JsonObject
        {
            ["v"] = AuditEntry.CurrentFormat,
            ["seq"] = last.Seq,
            ["hash"] = last.Hash,
            ["log_size"] = logSize,
            ["entries"] = new JsonArray(entries.Select(e => JsonNode.Parse(e.ToJsonLine())).ToArray()),
        };
        var bytes = CanonicalJson.Canonicalize(head.ToJsonString());
        var tmp = Path.Combine(Directory, HeadFileName + "." + Guid.NewGuid().ToString("n") + ".tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.WriteByte((byte)'\n');
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, HeadPath, overwrite: true);
            CasNative.FsyncDirectory(Directory);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// When the head names entries the log does not hold in full (the writer stopped between the head and the lines),
    /// writes the missing bytes of those lines. Only when the log's last bytes are exactly a prefix of them: any other
    /// difference is left for verification to report.
    /// </summary>
    private long CompleteInterruptedAppend(AuditHead head, long length)
    {
        if (length == head.LogSize) return length;
        var line = Encoding.UTF8.GetBytes(string.Concat(head.EntryLines.Select(l => l + "\n")));
        var start = head.LogSize - line.Length;
        if (start < 0 || length < start || length >= head.LogSize) return length;
        var present = new byte[length - start];
        using var log = AuditFiles.Open(LogPath, write: true, create: true)!;
        log.Position = start;
        log.ReadExactly(present);
        if (!present.AsSpan().SequenceEqual(line.AsSpan(0, present.Length))) return length;
        log.Position = length;
        log.Write(line.AsSpan(present.Length));
        log.Flush(flushToDisk: true);
        return head.LogSize;
    }

    private long LogLength()
    {
        using var log = AuditFiles.Open(LogPath, write: false);
        return log?.Length ?? 0;
    }

    private bool EndsWithNewline(long length)
    {
        using var log = AuditFiles.Open(LogPath, write: false) ?? throw new FileNotFoundException("The audit log vanished.", LogPath);
        log.Position = length - 1;
        return log.ReadByte() == '\n';
    }

    /// <summary>Sequence number and hash of the last complete line; <c>AuditLogCorrupt</c> when that line is not an entry.</summary>
    private (long Seq, string Hash) ReadLastEntry(long length)
    {
        using var log = AuditFiles.Open(LogPath, write: false) ?? throw new FileNotFoundException("The audit log vanished.", LogPath);
        var end = length;
        // Skip a torn last line (no newline): the last complete line ends at the last newline.
        var chunk = new byte[64 * 1024];
        long pos = end;
        var lastNewline = -1L;
        var lineStart = -1L;
        while (pos > 0 && lineStart < 0)
        {
            var n = (int)Math.Min(chunk.Length, pos);
            pos -= n;
            log.Position = pos;
            log.ReadExactly(chunk, 0, n);
            for (var i = n - 1; i >= 0; i--)
            {
                if (chunk[i] != '\n') continue;
                if (lastNewline < 0) lastNewline = pos + i;
                else { lineStart = pos + i + 1; break; }
            }
        }
        if (lastNewline < 0) throw Corrupt("it has no complete line");
        if (lineStart < 0) lineStart = 0;
        var bytes = new byte[lastNewline - lineStart];
        log.Position = lineStart;
        log.ReadExactly(bytes);
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var seq = doc.RootElement.GetProperty("seq").GetInt64();
            var hash = doc.RootElement.GetProperty("hash").GetString();
            if (!Hex.IsDigest(hash)) throw Corrupt("its last entry has no valid hash");
            return (seq, hash!);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Corrupt("its last line is not an entry: " + ex.Message);
        }
    }

    private RequiemException Corrupt(string why) =>
        new("AuditLogCorrupt", ErrorKind.InvalidData,
            $"Cannot append to the audit log '{LogPath}': {why}, and there is no head anchor to chain from. Run Test-RequiemAuditLog to see what is wrong.", LogPath);

    /// <summary>The head anchor, or null when it is missing (problem null) or unreadable (problem says why).</summary>
    internal AuditHead? ReadHead(out string? problem)
    {
        problem = null;
        string text;
        try
        {
            using var file = AuditFiles.Open(HeadPath, write: false);
            if (file is null) return null;
            if (file.Length > MaxHeadBytes)
            {
                problem = $"the head anchor is {file.Length} bytes, more than a head can be ({MaxHeadBytes})";
                return null;
            }
            var bytes = new byte[file.Length];
            file.ReadExactly(bytes);
            text = Encoding.UTF8.GetString(bytes);
        }
        catch (DirectoryNotFoundException) { return null; }
        catch (RequiemException ex) when (ex.ErrorId == "AuditFileNotRegular")
        {
            problem = ex.Message;
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(text);
            var r = doc.RootElement;
            var lines = r.GetProperty("entries").EnumerateArray().Select(e => Encoding.UTF8.GetString(CanonicalJson.Canonicalize(e))).ToArray();
            var head = new AuditHead(r.GetProperty("seq").GetInt64(), r.GetProperty("hash").GetString() ?? "",
                r.GetProperty("log_size").GetInt64(), lines);
            if (!Hex.IsDigest(head.Hash) || head.Seq < 1 || head.LogSize < 1 || lines.Length == 0)
            {
                problem = "the head anchor has an invalid seq, hash or log_size";
                return null;
            }
            return head;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or RequiemException)
        {
            problem = "the head anchor is unreadable: " + ex.Message;
            return null;
        }
    }

    /// <summary>
    /// Every entry in log order; a line that is not an entry is passed to <paramref name="onMalformed"/> (line number,
    /// reason) and skipped. Reads without the lock: a line being appended right now is simply not seen yet.
    /// </summary>
    public IEnumerable<AuditEntry> ReadEntries(Action<long, string>? onMalformed = null)
    {
        AuditFiles.CheckDirectory(Directory);
        long line = 0;
        foreach (var (text, complete) in ReadLines(LogPath))
        {
            line++;
            if (!complete) break; // being appended (or torn): not an entry yet
            AuditEntry? entry = null;
            string? problem;
            try
            {
                using var doc = JsonDocument.Parse(text);
                entry = AuditEntry.FromJson(doc.RootElement, line, out problem);
            }
            catch (JsonException ex) { problem = "not valid JSON: " + ex.Message; }
            if (entry is not null) yield return entry;
            else onMalformed?.Invoke(line, problem ?? "not an entry");
        }
    }

    /// <summary>Lines of a file as UTF-8 text, each with whether it ended with a newline.</summary>
    internal static IEnumerable<(string Text, bool Complete)> ReadLines(string path)
    {
        using var fs = AuditFiles.Open(path, write: false, bufferSize: 1);
        if (fs is null) yield break;
        var buffer = new MemoryStream();
        var chunk = new byte[1 << 16];
        int n;
        while ((n = fs.Read(chunk, 0, chunk.Length)) > 0)
        {
            var start = 0;
            for (var i = 0; i < n; i++)
            {
                if (chunk[i] != '\n') continue;
                buffer.Write(chunk, start, i - start);
                yield return (Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length), true);
                buffer.SetLength(0);
                start = i + 1;
            }
            buffer.Write(chunk, start, n - start);
        }
        if (buffer.Length > 0) yield return (Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length), false);
    }

    /// <summary>Verifies the chain and the head anchor (see <see cref="AuditVerifier"/>).</summary>
    public AuditVerification Verify() => AuditVerifier.Verify(this, _hash);
}

/// <summary>The head anchor: the last entry's sequence number and hash, the log's length after it, and the entry itself.</summary>
/// <summary>
/// The head anchor: the last entry's sequence number and hash, the log's length after it, and the entries the last
/// append wrote (the anchored entry last), so that an append interrupted before its lines reached the log can be finished.
/// </summary>
internal sealed record AuditHead(long Seq, string Hash, long LogSize, IReadOnlyList<string> EntryLines);
