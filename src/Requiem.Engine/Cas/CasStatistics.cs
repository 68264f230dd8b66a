using System.Text.Json;
using Requiem.Engine.Diagnostics;

namespace Requiem.Engine.Cas;

/// <summary>Objects of one encoding.</summary>
public sealed class CasEncodingStatistic
{
    public required CasEncoding Encoding { get; init; }
    public required long Count { get; init; }
    public required long LogicalBytes { get; init; }
    public required long StoredBytes { get; init; }
}

/// <summary>The result of <c>Get-RequiemCasStatistic</c> (the Requiem CLI's <c>cas stats</c>).</summary>
public sealed class CasStatistics
{
    public required string Root { get; init; }
    /// <summary>Distinct objects (a hash stored in both encodings counts once).</summary>
    public required long ObjectCount { get; init; }
    /// <summary>Object files.</summary>
    public required long FileCount { get; init; }
    /// <summary>Uncompressed bytes of all object files.</summary>
    public required long LogicalBytes { get; init; }
    /// <summary>Bytes on disk of all object files.</summary>
    public required long StoredBytes { get; init; }
    /// <summary>StoredBytes / LogicalBytes (1 when empty; below 1 means compression saves space).</summary>
    public required double CompressionRatio { get; init; }
    public required IReadOnlyList<CasEncodingStatistic> ByEncoding { get; init; }
    /// <summary>The largest objects by uncompressed size.</summary>
    public required IReadOnlyList<CasObjectInfo> Top { get; init; }
    public required int RefCount { get; init; }
    public required int TempFileCount { get; init; }
    public required long TempBytes { get; init; }
    /// <summary>Objects written since the store was created (counted by Add-RequiemCasObject and other callers of FlushCounters).</summary>
    public required long PutsWritten { get; init; }
    /// <summary>Puts that found their object already stored (nothing written).</summary>
    public required long DedupHits { get; init; }
    /// <summary>DedupHits / (PutsWritten + DedupHits); 0 when nothing was put.</summary>
    public required double DedupRatio { get; init; }
    /// <summary>Objects whose zstd frame does not record its size (counted as 0 logical bytes).</summary>
    public required long UnknownSizeCount { get; init; }
}

public sealed partial class CasStore
{
    public const string CountersFileName = "counters.json";

    /// <summary>Counts objects and bytes, by encoding, and the <paramref name="top"/> largest objects. Objects are not read (only sizes).</summary>
    public CasStatistics GetStatistics(int top = 10, IEngineOutput? output = null, CancellationToken cancel = default)
    {
        var byEncoding = new Dictionary<CasEncoding, (long Count, long Logical, long Stored)>();
        var hashes = new HashSet<string>(StringComparer.Ordinal);
        var largest = new PriorityQueue<CasObjectInfo, long>();
        long files = 0, logical = 0, stored = 0, unknown = 0;
        var throttle = ProgressThrottle.Default();
        foreach (var (path, hash, encoding) in EnumerateObjectFiles())
        {
            cancel.ThrowIfCancellationRequested();
            CasObjectInfo info;
            try { info = Describe(path, hash, encoding); }
            catch (FileNotFoundException) { continue; }
            files++;
            hashes.Add(hash);
            var size = Math.Max(0, info.Size);
            if (info.Size < 0) unknown++;
            logical += size;
            stored += info.StoredSize;
            var e = byEncoding.GetValueOrDefault(encoding);
            byEncoding[encoding] = (e.Count + 1, e.Logical + size, e.Stored + info.StoredSize);
            if (top > 0)
            {
                largest.Enqueue(info, size);
                if (largest.Count > top) largest.Dequeue();
            }
            if (output is not null && throttle.ShouldReport())
                output.Progress(new ProgressInfo("Get-RequiemCasStatistic", $"{files} objects", files, -1));
        }
        var topList = new List<CasObjectInfo>();
        while (largest.Count > 0) topList.Add(largest.Dequeue());
        topList.Reverse();
        var temps = EnumerateTempFiles();
        var (written, dedup) = ReadCounters();
        return new CasStatistics
        {
            Root = Root,
            ObjectCount = hashes.Count,
            FileCount = files,
            LogicalBytes = logical,
            StoredBytes = stored,
            CompressionRatio = logical > 0 ? Math.Round((double)stored / logical, 4) : 1.0,
            ByEncoding = byEncoding.OrderBy(k => k.Key).Select(k => new CasEncodingStatistic
            {
                Encoding = k.Key, Count = k.Value.Count, LogicalBytes = k.Value.Logical, StoredBytes = k.Value.Stored,
            }).ToList(),
            Top = topList,
            RefCount = EnumerateRefs().Count(),
            TempFileCount = temps.Count,
            TempBytes = temps.Sum(t => t.Size),
            PutsWritten = written,
            DedupHits = dedup,
            DedupRatio = written + dedup > 0 ? Math.Round((double)dedup / (written + dedup), 4) : 0,
            UnknownSizeCount = unknown,
        };
    }

    /// <summary>
    /// Adds this instance's put counters (objects written, dedup hits) to <c>counters.json</c> under an exclusive
    /// lock (several processes may flush at once), then resets them. Counters are statistics: a failure is ignored.
    /// </summary>
    public void FlushCounters()
    {
        var written = Interlocked.Exchange(ref _written, 0);
        var dedup = Interlocked.Exchange(ref _deduplicated, 0);
        var bytes = Interlocked.Exchange(ref _bytesWritten, 0);
        if (written == 0 && dedup == 0) return;
        var path = Path.Combine(Root, CountersFileName);
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                using var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                var current = ParseCounters(fs);
                var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, long>
                {
                    ["puts_written"] = current.Written + written,
                    ["dedup_hits"] = current.Dedup + dedup,
                    ["bytes_written"] = current.Bytes + bytes,
                });
                fs.SetLength(0);
                fs.Write(json);
                fs.Flush();
                return;
            }
            catch (IOException) when (attempt < 49)
            {
                Thread.Sleep(10 + Random.Shared.Next(20)); // another process holds the lock
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return;
            }
        }
    }

    /// <summary>(objects written, dedup hits) recorded in counters.json.</summary>
    public (long Written, long Dedup) ReadCounters()
    {
        try
        {
            using var fs = new FileStream(Path.Combine(Root, CountersFileName), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var c = ParseCounters(fs);
            return (c.Written, c.Dedup);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (0, 0);
        }
    }

    private static (long Written, long Dedup, long Bytes) ParseCounters(FileStream fs)
    {
        if (fs.Length == 0) return (0, 0, 0);
        try
        {
            var bytes = new byte[fs.Length];
            fs.ReadExactly(bytes);
            fs.Position = 0;
            using var doc = JsonDocument.Parse(bytes);
            long Get(string n) => doc.RootElement.TryGetProperty(n, out var v) && v.TryGetInt64(out var x) ? x : 0;
            return (Get("puts_written"), Get("dedup_hits"), Get("bytes_written"));
        }
        catch (JsonException)
        {
            fs.Position = 0;
            return (0, 0, 0); // a torn counters file (crash mid-write) restarts the statistics, never the data
        }
    }
}
