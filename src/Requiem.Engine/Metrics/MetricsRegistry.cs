using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Requiem.Engine.Config;

namespace Requiem.Engine.Metrics;

/// <summary>The counters Requiem keeps (the Requiem CLI's <c>requiem metrics</c>). Names are the Prometheus names without the prefix.</summary>
public enum Counter
{
    ExecTotal,
    ExecFailed,
    ExecTimedOut,
    ExecDurationMsTotal,
    CasPutTotal,
    CasPutDeduplicated,
    CasBytesWritten,
    CasReadTotal,
    CasCorruptDetected,
    DigestTotal,
    DigestBytesTotal,
    ProofGenerated,
    ProofVerified,
    ProofInvalid,
    ReplayTotal,
    ReplayMismatch,
}

/// <summary>
/// Process-wide counters, cheap to bump from hot paths (one interlocked add), persisted per process under
/// <c>&lt;data dir&gt;/metrics/</c> when a cmdlet finishes, and summed over every process by <see cref="ReadTotals"/>.
/// Files of processes that have exited are folded into <c>base.json</c> so the folder stays small.
/// </summary>
public static class MetricsRegistry
{
    private static readonly long[] s_values = new long[Enum.GetValues<Counter>().Length];
    private static long s_version;
    private static long s_flushedVersion;
    private static readonly object s_flushLock = new();
    private static readonly string s_processFile = $"p-{Environment.ProcessId}-{Process.GetCurrentProcess().StartTime.ToUniversalTime().Ticks}.json";
    private const int CompactAbove = 64;

    public const string MetricsDirectoryVariable = "REQUIEM_METRICS_DIR";

    public static string Directory
    {
        get
        {
            var env = Environment.GetEnvironmentVariable(MetricsDirectoryVariable);
            return string.IsNullOrEmpty(env) ? Path.Combine(RequiemPaths.DataDirectory, "metrics") : Path.GetFullPath(env);
        }
    }

    public static void Add(Counter counter, long amount = 1)
    {
        Interlocked.Add(ref s_values[(int)counter], amount);
        Interlocked.Increment(ref s_version);
    }

    public static long Get(Counter counter) => Interlocked.Read(ref s_values[(int)counter]);

    private static long s_lastFlushTicks;
    private static int s_exitHooked;

    /// <summary>
    /// Flushes at most once a second (cmdlets call this when they finish); whatever is left is flushed when the
    /// process exits.
    /// </summary>
    public static void FlushThrottled()
    {
        if (Interlocked.Exchange(ref s_exitHooked, 1) == 0) AppDomain.CurrentDomain.ProcessExit += (_, _) => Flush();
        var now = Stopwatch.GetTimestamp();
        if (now - Interlocked.Read(ref s_lastFlushTicks) < Stopwatch.Frequency) return;
        Flush();
    }

    /// <summary>Writes this process's counters if they changed since the last flush (atomic temp + rename). Never throws.</summary>
    public static void Flush()
    {
        Interlocked.Exchange(ref s_lastFlushTicks, Stopwatch.GetTimestamp());
        var version = Interlocked.Read(ref s_version);
        if (version == Interlocked.Read(ref s_flushedVersion)) return;
        lock (s_flushLock)
        {
            try
            {
                var dir = Directory;
                System.IO.Directory.CreateDirectory(dir);
                var tmp = Path.Combine(dir, s_processFile + "." + Guid.NewGuid().ToString("n") + ".tmp");
                File.WriteAllText(tmp, Serialize(Snapshot()));
                File.Move(tmp, Path.Combine(dir, s_processFile), overwrite: true);
                Interlocked.Exchange(ref s_flushedVersion, version);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Metrics must never break the work they count.
            }
        }
    }

    public static Dictionary<Counter, long> Snapshot()
    {
        var d = new Dictionary<Counter, long>();
        foreach (var c in Enum.GetValues<Counter>()) d[c] = Get(c);
        return d;
    }

    /// <summary>Totals over every process that ever flushed (this one included, flushed first).</summary>
    public static MetricsSnapshot ReadTotals()
    {
        Flush();
        var dir = Directory;
        var totals = Enum.GetValues<Counter>().ToDictionary(c => c, _ => 0L);
        var files = 0;
        if (System.IO.Directory.Exists(dir))
        {
            var all = System.IO.Directory.GetFiles(dir, "*.json");
            if (all.Length > CompactAbove) Compact(dir, all);
            foreach (var file in System.IO.Directory.GetFiles(dir, "*.json"))
            {
                if (TryRead(file) is not { } values) continue;
                files++;
                foreach (var (k, v) in values) totals[k] += v;
            }
        }
        return new MetricsSnapshot(totals, files, dir);
    }

    private static void Compact(string dir, string[] files)
    {
        var lockPath = Path.Combine(dir, "compact.lock");
        try
        {
            using var lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            var basePath = Path.Combine(dir, "base.json");
            var merged = TryRead(basePath) ?? new Dictionary<Counter, long>();
            var folded = new List<string>();
            foreach (var file in files)
            {
                var name = Path.GetFileName(file);
                if (!name.StartsWith("p-", StringComparison.Ordinal) || name == s_processFile) continue;
                if (IsAlive(name)) continue;
                if (TryRead(file) is not { } values) continue;
                foreach (var (k, v) in values) merged[k] = merged.GetValueOrDefault(k) + v;
                folded.Add(file);
            }
            var tmp = basePath + "." + Guid.NewGuid().ToString("n") + ".tmp";
            File.WriteAllText(tmp, Serialize(merged));
            File.Move(tmp, basePath, overwrite: true);
            foreach (var f in folded) File.Delete(f);
        }
        catch (IOException)
        {
            // Another process is compacting; totals are still correct without compaction.
        }
    }

    private static bool IsAlive(string fileName)
    {
        var parts = fileName.Split('-', '.');
        if (parts.Length < 3 || !int.TryParse(parts[1], out var pid) || !long.TryParse(parts[2], out var ticks)) return false;
        try
        {
            using var p = Process.GetProcessById(pid);
            return p.StartTime.ToUniversalTime().Ticks == ticks;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static Dictionary<Counter, long>? TryRead(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var d = new Dictionary<Counter, long>();
            foreach (var c in Enum.GetValues<Counter>())
            {
                if (doc.RootElement.TryGetProperty(MetricsSnapshot.Name(c), out var v) && v.TryGetInt64(out var n)) d[c] = n;
            }
            return d;
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string Serialize(Dictionary<Counter, long> values)
    {
        var sb = new StringBuilder("{");
        var first = true;
        foreach (var (k, v) in values)
        {
            if (!first) sb.Append(',');
            first = false;
            sb.Append('"').Append(MetricsSnapshot.Name(k)).Append("\":").Append(v.ToString(CultureInfo.InvariantCulture));
        }
        return sb.Append('}').ToString();
    }
}

/// <summary>Summed counters with derived gauges; renders as JSON (snake_case) or Prometheus text exposition.</summary>
public sealed class MetricsSnapshot
{
    internal MetricsSnapshot(Dictionary<Counter, long> totals, int sources, string directory)
    {
        Totals = totals;
        Sources = sources;
        Directory = directory;
    }

    private Dictionary<Counter, long> Totals { get; }

    public long ExecTotal => Totals[Counter.ExecTotal];
    public long ExecFailed => Totals[Counter.ExecFailed];
    public long ExecTimedOut => Totals[Counter.ExecTimedOut];
    public double ExecDurationSecondsTotal => Totals[Counter.ExecDurationMsTotal] / 1000.0;
    public long CasPutTotal => Totals[Counter.CasPutTotal];
    public long CasPutDeduplicated => Totals[Counter.CasPutDeduplicated];
    public long CasBytesWritten => Totals[Counter.CasBytesWritten];
    public long CasReadTotal => Totals[Counter.CasReadTotal];
    public long CasCorruptDetected => Totals[Counter.CasCorruptDetected];
    /// <summary>Share of puts that found the object already stored (the Requiem CLI's cas_hit_rate); 0 with no puts.</summary>
    public double CasHitRate => CasPutTotal == 0 ? 0 : (double)CasPutDeduplicated / CasPutTotal;
    public long DigestTotal => Totals[Counter.DigestTotal];
    public long DigestBytesTotal => Totals[Counter.DigestBytesTotal];
    public long ProofGenerated => Totals[Counter.ProofGenerated];
    public long ProofVerified => Totals[Counter.ProofVerified];
    public long ProofInvalid => Totals[Counter.ProofInvalid];
    public long ReplayTotal => Totals[Counter.ReplayTotal];
    public long ReplayMismatch => Totals[Counter.ReplayMismatch];
    /// <summary>How many per-process files were summed.</summary>
    public int Sources { get; }
    public string Directory { get; }

    internal static string Name(Counter c) => c switch
    {
        Counter.ExecTotal => "exec_total",
        Counter.ExecFailed => "exec_failed_total",
        Counter.ExecTimedOut => "exec_timed_out_total",
        Counter.ExecDurationMsTotal => "exec_duration_ms_total",
        Counter.CasPutTotal => "cas_put_total",
        Counter.CasPutDeduplicated => "cas_put_deduplicated_total",
        Counter.CasBytesWritten => "cas_bytes_written_total",
        Counter.CasReadTotal => "cas_read_total",
        Counter.CasCorruptDetected => "cas_corrupt_detected_total",
        Counter.DigestTotal => "digest_total",
        Counter.DigestBytesTotal => "digest_bytes_total",
        Counter.ProofGenerated => "proof_generated_total",
        Counter.ProofVerified => "proof_verified_total",
        Counter.ProofInvalid => "proof_invalid_total",
        Counter.ReplayTotal => "replay_total",
        Counter.ReplayMismatch => "replay_mismatch_total",
        _ => c.ToString(),
    };

    private static readonly (Counter Counter, string Help)[] s_help =
    {
        (Counter.ExecTotal, "Total executions"),
        (Counter.ExecFailed, "Executions that exited non-zero or by a signal"),
        (Counter.ExecTimedOut, "Executions killed at their timeout"),
        (Counter.CasPutTotal, "Objects offered to the CAS"),
        (Counter.CasPutDeduplicated, "CAS puts that found the object already stored"),
        (Counter.CasBytesWritten, "Bytes written into the CAS (stored size)"),
        (Counter.CasReadTotal, "Verified CAS reads"),
        (Counter.CasCorruptDetected, "CAS objects found corrupt on read or verify"),
        (Counter.DigestTotal, "Digests computed"),
        (Counter.DigestBytesTotal, "Bytes hashed for digests"),
        (Counter.ProofGenerated, "Proof bundles generated"),
        (Counter.ProofVerified, "Proof bundles verified"),
        (Counter.ProofInvalid, "Proof bundle verifications that failed"),
        (Counter.ReplayTotal, "Replays executed"),
        (Counter.ReplayMismatch, "Replays whose result differed from the record"),
    };

    public string ToJson()
    {
        var o = new SortedDictionary<string, object>(StringComparer.Ordinal);
        foreach (var (k, v) in Totals) o[Name(k)] = v;
        o["cas_hit_rate"] = CasHitRate;
        o["exec_duration_seconds_total"] = ExecDurationSecondsTotal;
        o.Remove("exec_duration_ms_total");
        return JsonSerializer.Serialize(o, Json.JsonContract.Indented);
    }

    public string ToPrometheus()
    {
        var sb = new StringBuilder();
        foreach (var (counter, help) in s_help)
        {
            var name = "requiem_" + Name(counter);
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(" counter\n");
            sb.Append(name).Append(' ').Append(Totals[counter].ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        sb.Append("# HELP requiem_exec_duration_seconds_total Wall-clock seconds spent in executions\n");
        sb.Append("# TYPE requiem_exec_duration_seconds_total counter\n");
        sb.Append("requiem_exec_duration_seconds_total ").Append(ExecDurationSecondsTotal.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("# HELP requiem_cas_hit_rate CAS cache hit rate\n");
        sb.Append("# TYPE requiem_cas_hit_rate gauge\n");
        sb.Append("requiem_cas_hit_rate ").Append(CasHitRate.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }
}
