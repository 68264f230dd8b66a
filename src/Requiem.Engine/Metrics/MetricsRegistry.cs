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
    ActionCacheHits,
    ActionCacheMisses,
    ActionCacheWrites,
    RemoteUploads,
    RemoteDownloads,
    RemoteBytesUploaded,
    RemoteBytesDownloaded,
    RemoteErrors,
    RemoteCorruptDetected,
}

/// <summary>
/// Process-wide counters, cheap to bump from hot paths (one interlocked add), persisted per process under
/// <c>&lt;data dir&gt;/metrics/</c> when a cmdlet finishes, and summed over every process by <see cref="ReadTotals"/>.
/// </summary>
/// <remarks>
/// The folder stays small over months: files of processes that have ended (<c>p-&lt;pid&gt;-&lt;start&gt;.json</c>, the
/// start time telling a reused pid apart) are folded into <c>base.json</c> by a compactor holding <c>metrics.lock</c>
/// exclusively: it writes the new totals to a temp file, renames it over base.json, then deletes the folded files.
/// base.json also names the files it folded last, so a compactor that died between the rename and the deletes is
/// not counted twice: the next reader skips those files and the next compactor deletes them. Readers hold the lock
/// shared while they read base.json and the live files, so they never see a file both folded and present. Writers
/// only replace their own process's file (temp + rename) and need no lock.
/// </remarks>
public static class MetricsRegistry
{
    private static readonly long[] s_values = new long[Enum.GetValues<Counter>().Length];
    private static long s_version;
    private static long s_flushedVersion;
    private static readonly object s_flushLock = new();
    private static readonly string s_processFile = ProcessFileName(Environment.ProcessId, ProcessStartStamp(Environment.ProcessId) ?? 0);
    private static int s_compactedOnFirstFlush;

    /// <summary>A flush compacts when the folder holds more than this many .json files (so it holds about this many at most, plus live processes).</summary>
    public const int CompactAbove = 32;

    public const string MetricsDirectoryVariable = "REQUIEM_METRICS_DIR";
    public const string TotalsFileName = "base.json";
    public const string LockFileName = "metrics.lock";
    private const string FoldedProperty = "folded";

    /// <summary>Interrupted writers' temp files older than this are deleted by the compactor.</summary>
    private static readonly TimeSpan s_staleTemp = TimeSpan.FromHours(1);

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
        if (s_tenant.Value is { } tenant) Interlocked.Add(ref TenantValues(tenant)[(int)counter], amount); // [tenants]
        Interlocked.Increment(ref s_version);
    }

    // [tenants] Counters are also kept per tenant: the tenant label of the work this execution context does (set by
    // the cmdlet that resolved the tenant; flows into the tasks it starts). Totals above still count everything.
    private static readonly AsyncLocal<string?> s_tenant = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long[]> s_tenantValues = new(StringComparer.Ordinal);
    private const string TenantsProperty = "tenants";

    /// <summary>The tenant whose label the counters bumped from here on carry (null: no tenant).</summary>
    public static string? CurrentTenant
    {
        get => s_tenant.Value;
        set => s_tenant.Value = value;
    }

    private static long[] TenantValues(string tenant) => s_tenantValues.GetOrAdd(tenant, _ => new long[s_values.Length]);

    private static Dictionary<string, Dictionary<Counter, long>> TenantSnapshot() =>
        s_tenantValues.ToDictionary(kv => kv.Key, kv => Enum.GetValues<Counter>().ToDictionary(c => c, c => Interlocked.Read(ref kv.Value[(int)c])), StringComparer.Ordinal);

    private static void AddTenants(Dictionary<string, Dictionary<Counter, long>> into, Dictionary<string, Dictionary<Counter, long>>? from)
    {
        if (from is null) return;
        foreach (var (tenant, values) in from)
        {
            if (!into.TryGetValue(tenant, out var sum)) into[tenant] = sum = new Dictionary<Counter, long>();
            foreach (var (k, v) in values) sum[k] = sum.GetValueOrDefault(k) + v;
        }
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

    /// <summary>
    /// Writes this process's counters if they changed since the last flush (atomic temp + rename); the first flush of
    /// a process also compacts a folder that has grown past <see cref="CompactAbove"/>. Never throws.
    /// </summary>
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
                File.WriteAllText(tmp, Serialize(Snapshot(), folded: null, TenantSnapshot()));
                File.Move(tmp, Path.Combine(dir, s_processFile), overwrite: true);
                Interlocked.Exchange(ref s_flushedVersion, version);
                if (Interlocked.Exchange(ref s_compactedOnFirstFlush, 1) == 0 && System.IO.Directory.GetFiles(dir, "*.json").Length > CompactAbove)
                {
                    Compact(dir);
                }
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

    /// <summary>Totals over every process that ever flushed (this one included, flushed first); folds ended processes' files first.</summary>
    public static MetricsSnapshot ReadTotals()
    {
        Flush();
        var dir = Directory;
        var totals = Enum.GetValues<Counter>().ToDictionary(c => c, _ => 0L);
        var tenants = new Dictionary<string, Dictionary<Counter, long>>(StringComparer.Ordinal);
        var files = 0;
        if (System.IO.Directory.Exists(dir))
        {
            Compact(dir);
            using var shared = AcquireLock(dir, exclusive: false, TimeSpan.FromSeconds(30));
            var (baseValues, folded, baseTenants) = ReadTotalsFile(Path.Combine(dir, TotalsFileName));
            if (baseValues is not null)
            {
                files++;
                foreach (var (k, v) in baseValues) totals[k] += v;
                AddTenants(tenants, baseTenants);
            }
            foreach (var file in System.IO.Directory.GetFiles(dir, "p-*.json"))
            {
                if (folded.Contains(Path.GetFileName(file)) || TryRead(file, null, out var fileTenants) is not { } values) continue;
                files++;
                foreach (var (k, v) in values) totals[k] += v;
                AddTenants(tenants, fileTenants);
            }
        }
        return new MetricsSnapshot(totals, files, dir, tenants);
    }

    /// <summary>
    /// Folds the files of processes that have ended into base.json (see the class remarks). Returns the number of files
    /// folded, or -1 when another process holds the lock (compacting or reading; the next caller will do it).
    /// </summary>
    public static int Compact(string dir)
    {
        try
        {
            using var exclusive = AcquireLock(dir, exclusive: true, TimeSpan.Zero);
            if (exclusive is null) return -1;
            var basePath = Path.Combine(dir, TotalsFileName);
            var (baseValues, lastFolded, mergedTenants) = ReadTotalsFile(basePath);
            mergedTenants ??= new Dictionary<string, Dictionary<Counter, long>>(StringComparer.Ordinal);
            // Already counted in base.json by a compactor that stopped before deleting them.
            foreach (var name in lastFolded) File.Delete(Path.Combine(dir, name));

            var merged = baseValues ?? new Dictionary<Counter, long>();
            var folded = new List<string>();
            foreach (var file in System.IO.Directory.GetFiles(dir, "p-*.json"))
            {
                var name = Path.GetFileName(file);
                if (name == s_processFile || IsAlive(name) || TryRead(file, null, out var fileTenants) is not { } values) continue;
                foreach (var (k, v) in values) merged[k] = merged.GetValueOrDefault(k) + v;
                AddTenants(mergedTenants, fileTenants);
                folded.Add(name);
            }
            DeleteStaleTemps(dir);
            if (folded.Count == 0) return 0;
            var tmp = basePath + "." + Guid.NewGuid().ToString("n") + ".tmp";
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(Encoding.UTF8.GetBytes(Serialize(merged, folded, mergedTenants)));
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, basePath, overwrite: true);
            foreach (var name in folded) File.Delete(Path.Combine(dir, name));
            return folded.Count;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>
    /// The lock file held shared (readers) or exclusive (the compactor): an advisory flock on Unix, share modes on
    /// Windows. Null when it cannot be had within <paramref name="wait"/>; a reader then reads without it (a folder it
    /// cannot write to has no compactor either).
    /// </summary>
    private static FileStream? AcquireLock(string dir, bool exclusive, TimeSpan wait)
    {
        var path = Path.Combine(dir, LockFileName);
        var deadline = Stopwatch.GetTimestamp() + (long)(wait.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return exclusive
                    ? new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1)
                    : new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite, 1);
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            catch (IOException) when (Stopwatch.GetTimestamp() < deadline)
            {
                Thread.Sleep(Random.Shared.Next(1, 8));
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    private static void DeleteStaleTemps(string dir)
    {
        foreach (var tmp in System.IO.Directory.GetFiles(dir, "*.tmp"))
        {
            try
            {
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(tmp) > s_staleTemp) File.Delete(tmp);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Someone else removed or holds it.
            }
        }
    }

    internal static string ProcessFileName(int pid, long start) =>
        $"p-{pid.ToString(CultureInfo.InvariantCulture)}-{start.ToString(CultureInfo.InvariantCulture)}.json";

    /// <summary>
    /// When the process started, in a form that is exact across readings: on Linux field 22 of /proc/pid/stat (clock
    /// ticks after boot; Process.StartTime adds a boot time that moves by milliseconds between readings), elsewhere
    /// Process.StartTime. Null when the process does not exist.
    /// </summary>
    internal static long? ProcessStartStamp(int pid)
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
                // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                return long.Parse(fields[22 - 3], CultureInfo.InvariantCulture);
            }
            using var p = Process.GetProcessById(pid);
            return p.StartTime.ToUniversalTime().Ticks;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException
                                       or FormatException or IndexOutOfRangeException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether the process that writes this file may still be running: folding a live process's file would count it
    /// twice (it rewrites its running totals). Only a file whose pid is gone, or whose pid now names a process with
    /// another start stamp, is taken as ended. A file without a usable stamp (the writer could not read its own, or an
    /// earlier version named it by DateTime ticks, which never equal /proc's clock ticks) counts as alive while its pid exists.
    /// </summary>
    private static bool IsAlive(string fileName)
    {
        var parts = fileName.Split('-', '.');
        if (parts.Length < 3 || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var pid)) return true;
        if (ProcessStartStamp(pid) is not { } now) return false;
        if (!long.TryParse(parts[2], CultureInfo.InvariantCulture, out var start) || start == 0) return true;
        return now == start || (OperatingSystem.IsLinux() && start > OldStyleStampFloor);
    }

    /// <summary>DateTime ticks of any date after 1900 exceed this; clock ticks after boot (/proc/pid/stat) never do.</summary>
    private const long OldStyleStampFloor = 599_266_080_000_000_000;

    private static (Dictionary<Counter, long>? Values, HashSet<string> Folded, Dictionary<string, Dictionary<Counter, long>>? Tenants) ReadTotalsFile(string path)
    {
        var folded = new HashSet<string>(StringComparer.Ordinal);
        var values = TryRead(path, folded, out var tenants);
        return (values, folded, tenants);
    }

    private static Dictionary<Counter, long>? TryRead(string path, HashSet<string>? folded, out Dictionary<string, Dictionary<Counter, long>>? tenants)
    {
        tenants = null;
        try
        {
            if (!File.Exists(path)) return null;
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var d = new Dictionary<Counter, long>();
            foreach (var c in Enum.GetValues<Counter>())
            {
                if (doc.RootElement.TryGetProperty(MetricsSnapshot.Name(c), out var v) && v.TryGetInt64(out var n)) d[c] = n;
            }
            if (doc.RootElement.TryGetProperty(TenantsProperty, out var byTenant) && byTenant.ValueKind == JsonValueKind.Object)
            {
                tenants = new Dictionary<string, Dictionary<Counter, long>>(StringComparer.Ordinal);
                foreach (var t in byTenant.EnumerateObject())
                {
                    if (!Tenants.TenantName.IsValid(t.Name) || t.Value.ValueKind != JsonValueKind.Object) continue;
                    var tv = tenants[t.Name] = new Dictionary<Counter, long>();
                    foreach (var c in Enum.GetValues<Counter>())
                    {
                        if (t.Value.TryGetProperty(MetricsSnapshot.Name(c), out var v) && v.TryGetInt64(out var n)) tv[c] = n;
                    }
                }
            }
            if (folded is not null && doc.RootElement.TryGetProperty(FoldedProperty, out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var name in list.EnumerateArray())
                {
                    // Only plain per-process file names: never a path that would reach outside the folder.
                    if (name.GetString() is { } n && n.StartsWith("p-", StringComparison.Ordinal) && n == Path.GetFileName(n)) folded.Add(n);
                }
            }
            return d;
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string Serialize(Dictionary<Counter, long> values, List<string>? folded, Dictionary<string, Dictionary<Counter, long>>? tenants)
    {
        var sb = new StringBuilder("{");
        var first = true;
        foreach (var (k, v) in values)
        {
            if (!first) sb.Append(',');
            first = false;
            sb.Append('"').Append(MetricsSnapshot.Name(k)).Append("\":").Append(v.ToString(CultureInfo.InvariantCulture));
        }
        if (tenants is { Count: > 0 })
        {
            // Tenant names are validated ([a-z0-9_-]), so they need no escaping.
            sb.Append(first ? "" : ",").Append('"').Append(TenantsProperty).Append("\":");
            sb.Append(JsonSerializer.Serialize(tenants.ToDictionary(t => t.Key, t => t.Value.ToDictionary(kv => MetricsSnapshot.Name(kv.Key), kv => kv.Value))));
            first = false;
        }
        if (folded is not null)
        {
            sb.Append(first ? "" : ",").Append('"').Append(FoldedProperty).Append("\":[");
            sb.Append(string.Join(',', folded.Select(f => "\"" + f + "\"")));
            sb.Append(']');
        }
        return sb.Append('}').ToString();
    }
}

/// <summary>Summed counters with derived gauges; renders as JSON (snake_case) or Prometheus text exposition.</summary>
public sealed class MetricsSnapshot
{
    internal MetricsSnapshot(Dictionary<Counter, long> totals, int sources, string directory,
        Dictionary<string, Dictionary<Counter, long>>? tenants = null)
    {
        Totals = totals;
        Sources = sources;
        Directory = directory;
        var byTenant = new SortedDictionary<string, MetricsSnapshot>(StringComparer.Ordinal);
        foreach (var (name, values) in tenants ?? new())
            byTenant[name] = new MetricsSnapshot(Enum.GetValues<Counter>().ToDictionary(c => c, c => values.GetValueOrDefault(c)), sources, directory);
        Tenants = byTenant;
    }

    /// <summary>
    /// [tenants] The counters of each tenant's work (by tenant name); the properties above total everything, tenants
    /// included. Prometheus output labels each tenant's series <c>tenant="&lt;name&gt;"</c>; the unlabelled series is the
    /// work of no tenant.
    /// </summary>
    public IReadOnlyDictionary<string, MetricsSnapshot> Tenants { get; }

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
    public long ActionCacheHits => Totals[Counter.ActionCacheHits];
    public long ActionCacheMisses => Totals[Counter.ActionCacheMisses];
    public long ActionCacheWrites => Totals[Counter.ActionCacheWrites];
    public long RemoteUploads => Totals[Counter.RemoteUploads];
    public long RemoteDownloads => Totals[Counter.RemoteDownloads];
    public long RemoteBytesUploaded => Totals[Counter.RemoteBytesUploaded];
    public long RemoteBytesDownloaded => Totals[Counter.RemoteBytesDownloaded];
    public long RemoteErrors => Totals[Counter.RemoteErrors];
    public long RemoteCorruptDetected => Totals[Counter.RemoteCorruptDetected];
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
        Counter.ActionCacheHits => "action_cache_hits_total",
        Counter.ActionCacheMisses => "action_cache_misses_total",
        Counter.ActionCacheWrites => "action_cache_writes_total",
        Counter.RemoteUploads => "remote_uploads_total",
        Counter.RemoteDownloads => "remote_downloads_total",
        Counter.RemoteBytesUploaded => "remote_bytes_uploaded_total",
        Counter.RemoteBytesDownloaded => "remote_bytes_downloaded_total",
        Counter.RemoteErrors => "remote_errors_total",
        Counter.RemoteCorruptDetected => "remote_corrupt_detected_total",
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
        (Counter.ActionCacheHits, "Invoke-RequiemExec -Cache lookups answered from the action cache (nothing ran)"),
        (Counter.ActionCacheMisses, "Invoke-RequiemExec -Cache lookups that found no usable entry (the command ran)"),
        (Counter.ActionCacheWrites, "Results written to the action cache"),
        (Counter.RemoteUploads, "Objects and documents uploaded to the remote store"),
        (Counter.RemoteDownloads, "Objects and documents downloaded from the remote store (verified)"),
        (Counter.RemoteBytesUploaded, "Bytes uploaded to the remote store"),
        (Counter.RemoteBytesDownloaded, "Bytes downloaded from the remote store"),
        (Counter.RemoteErrors, "Remote store operations that failed (unreachable or refused)"),
        (Counter.RemoteCorruptDetected, "Remote blobs that failed verification after download and were not used"),
    };

    public string ToJson()
    {
        var o = new SortedDictionary<string, object>(StringComparer.Ordinal);
        foreach (var (k, v) in Totals) o[Name(k)] = v;
        o["cas_hit_rate"] = CasHitRate;
        o["exec_duration_seconds_total"] = ExecDurationSecondsTotal;
        o.Remove("exec_duration_ms_total");
        if (Tenants.Count > 0) o["tenants"] = Tenants.ToDictionary(t => t.Key, t => JsonSerializer.Deserialize<JsonElement>(t.Value.ToJson()));
        return JsonSerializer.Serialize(o, Json.JsonContract.Indented);
    }

    public string ToPrometheus()
    {
        // [tenants] The unlabelled series is the work of no tenant (totals minus every tenant's), so sum() over a metric is the total.
        var untenanted = Tenants.Count == 0 ? this : new MetricsSnapshot(
            Enum.GetValues<Counter>().ToDictionary(c => c, c => Totals[c] - Tenants.Values.Sum(t => t.Totals[c])), Sources, Directory);
        var sb = new StringBuilder();
        foreach (var (counter, help) in s_help)
        {
            var name = "requiem_" + Name(counter);
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(" counter\n");
            sb.Append(name).Append(' ').Append(untenanted.Totals[counter].ToString(CultureInfo.InvariantCulture)).Append('\n');
            foreach (var (tenant, t) in Tenants)
                sb.Append(name).Append(Label(tenant)).Append(t.Totals[counter].ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        sb.Append("# HELP requiem_exec_duration_seconds_total Wall-clock seconds spent in executions\n");
        sb.Append("# TYPE requiem_exec_duration_seconds_total counter\n");
        sb.Append("requiem_exec_duration_seconds_total ").Append(untenanted.ExecDurationSecondsTotal.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        foreach (var (tenant, t) in Tenants)
            sb.Append("requiem_exec_duration_seconds_total").Append(Label(tenant)).Append(t.ExecDurationSecondsTotal.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("# HELP requiem_cas_hit_rate CAS cache hit rate\n");
        sb.Append("# TYPE requiem_cas_hit_rate gauge\n");
        sb.Append("requiem_cas_hit_rate ").Append(untenanted.CasHitRate.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        foreach (var (tenant, t) in Tenants)
            sb.Append("requiem_cas_hit_rate").Append(Label(tenant)).Append(t.CasHitRate.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }

    // Tenant names are [a-z0-9_-] (validated when read), so the label value needs no escaping.
    private static string Label(string tenant) => "{tenant=\"" + tenant + "\"} ";
}
