using System.Globalization;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// A run's own pids cgroup: made under the probed base with <c>pids.max</c> set, joined by the launch before the
/// command starts (<see cref="Procs"/>), and on dispose emptied (whatever is left is killed) and removed.
/// </summary>
/// <remarks>
/// Making a cgroup (mkdir, which the kernel pays for in its cgroup locks) and removing it cost ≈ 0.3 ms of a short
/// run. So a cgroup that ends its run with nothing charged to it (<c>pids.current</c> is 0: no process, not even a
/// zombie, is in it) is kept as a spare for the next run in this process for <see cref="SpareLifetime"/>, then removed
/// (and at process exit; a process killed before that leaves an empty one, which the next process to make a run
/// cgroup there removes). The next run writes its own <c>pids.max</c> and checks <c>pids.current</c> again, so the limit
/// stays per run and a cgroup that holds anything is never reused: it is emptied and removed as before.
/// </remarks>
public sealed class RunCgroup : IDisposable
{
    /// <summary>How long an emptied cgroup waits for the next run before it is removed.</summary>
    public static readonly TimeSpan SpareLifetime = TimeSpan.FromMilliseconds(150);

    private static readonly object s_gate = new();
    private static readonly List<(string Directory, long ReleasedAt)> s_spares = new();
    private static Timer? s_expiry;
    private static bool s_expiryArmed;
    private static bool s_exitHooked;
    private int _disposed;

    private RunCgroup(string directory)
    {
        Directory = directory;
        Procs = Path.Combine(directory, "cgroup.procs");
    }

    public string Directory { get; }
    /// <summary>The file a process writes 0 to in order to join.</summary>
    public string Procs { get; }

    /// <summary>Makes (or takes a spare) cgroup that admits <paramref name="maxProcesses"/> processes; SandboxSetupFailed when it cannot.</summary>
    public static RunCgroup Create(string baseDirectory, long maxProcesses, string command)
    {
        var max = maxProcesses.ToString(CultureInfo.InvariantCulture);
        while (TakeSpare(baseDirectory) is { } spare)
        {
            if (IsEmpty(spare) && TryWrite(Path.Combine(spare, "pids.max"), max)) return new RunCgroup(spare);
            Remove(spare);
        }
        SweepOnce(baseDirectory);
        var dir = Path.Combine(baseDirectory, RunPrefix + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("n"));
        try
        {
            System.IO.Directory.CreateDirectory(dir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("SandboxSetupFailed", ErrorKind.ResourceUnavailable,
                $"The run's pids cgroup could not be created ({ex.Message}), so '{command}' did not run.", command, ex);
        }
        try
        {
            File.WriteAllText(Path.Combine(dir, "pids.max"), max);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Remove(dir);
            throw new RequiemException("SandboxSetupFailed", ErrorKind.ResourceUnavailable,
                $"The process limit could not be set ({ex.Message}), so '{command}' did not run.", command, ex);
        }
        return new RunCgroup(dir);
    }

    /// <summary>Keeps the cgroup as a spare when nothing is charged to it any more; otherwise kills what is left and removes it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (IsEmpty(Directory)) AddSpare(Directory);
        else Remove(Directory);
    }

    /// <summary>True when no process (running or zombie) is charged to the cgroup: <c>pids.current</c> reads 0.</summary>
    /// <remarks>Read and written with one pread/pwrite on a handle (no stream or text decoder): these run twice per run.</remarks>
    private static bool IsEmpty(string dir)
    {
        try
        {
            using var handle = File.OpenHandle(Path.Combine(dir, "pids.current"), FileMode.Open, FileAccess.Read);
            Span<byte> text = stackalloc byte[32];
            var n = RandomAccess.Read(handle, text, 0);
            return n >= 1 && text[0] == (byte)'0' && (n == 1 || text[1] == (byte)'\n');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    private static bool TryWrite(string file, string value)
    {
        try
        {
            using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Write);
            RandomAccess.Write(handle, System.Text.Encoding.ASCII.GetBytes(value), 0);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    private const string RunPrefix = "run-";

    private static string? TakeSpare(string baseDirectory)
    {
        var prefix = Path.Combine(baseDirectory, RunPrefix);
        lock (s_gate)
        {
            for (var i = s_spares.Count - 1; i >= 0; i--)
            {
                var dir = s_spares[i].Directory;
                if (!dir.StartsWith(prefix, StringComparison.Ordinal) || dir.IndexOf('/', prefix.Length) >= 0) continue;
                s_spares.RemoveAt(i);
                return dir;
            }
        }
        return null;
    }

    private static void AddSpare(string dir)
    {
        lock (s_gate)
        {
            s_spares.Add((dir, Environment.TickCount64));
            if (!s_exitHooked)
            {
                s_exitHooked = true;
                AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveSpares(TimeSpan.Zero);
            }
            if (s_expiryArmed) return;
            s_expiry ??= new Timer(_ => RemoveSpares(SpareLifetime), null, Timeout.Infinite, Timeout.Infinite);
            s_expiry.Change(SpareLifetime, Timeout.InfiniteTimeSpan);
            s_expiryArmed = true;
        }
    }

    /// <summary>
    /// Once per process and base: removes the empty run cgroups (<c>run-&lt;pid&gt;-…</c>) of processes that no longer
    /// exist — a spare of a process that was killed before it could remove it. Cgroups that hold anything are left alone.
    /// </summary>
    private static void SweepOnce(string baseDirectory)
    {
        lock (s_gate)
        {
            if (!s_swept.Add(baseDirectory)) return;
        }
        try
        {
            foreach (var dir in System.IO.Directory.EnumerateDirectories(baseDirectory, RunPrefix + "*"))
            {
                var name = Path.GetFileName(dir);
                var dash = name.IndexOf('-', RunPrefix.Length);
                if (dash < 0 || !int.TryParse(name.AsSpan(RunPrefix.Length, dash - RunPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var owner)) continue;
                if (owner == Environment.ProcessId || System.IO.Directory.Exists("/proc/" + owner.ToString(CultureInfo.InvariantCulture))) continue;
                if (IsEmpty(dir)) Remove(dir);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    private static readonly HashSet<string> s_swept = new(StringComparer.Ordinal);
    /// <summary>Spares taken off the list by the expiry timer and not yet removed (process exit finishes them).</summary>
    private static readonly HashSet<string> s_removing = new(StringComparer.Ordinal);

    /// <summary>Removes the spares idle for at least <paramref name="idle"/>; the timer is re-armed for the rest.</summary>
    private static void RemoveSpares(TimeSpan idle)
    {
        var expired = new List<string>();
        lock (s_gate)
        {
            if (idle == TimeSpan.Zero) expired.AddRange(s_removing); // process exit: also those an expiry was removing
            var now = Environment.TickCount64;
            long oldestLeft = long.MaxValue;
            for (var i = s_spares.Count - 1; i >= 0; i--)
            {
                if (now - s_spares[i].ReleasedAt >= (long)idle.TotalMilliseconds)
                {
                    expired.Add(s_spares[i].Directory);
                    s_removing.Add(s_spares[i].Directory);
                    s_spares.RemoveAt(i);
                }
                else oldestLeft = Math.Min(oldestLeft, s_spares[i].ReleasedAt);
            }
            s_expiryArmed = s_spares.Count > 0 && s_expiry is not null;
            if (s_expiryArmed) s_expiry!.Change(TimeSpan.FromMilliseconds(Math.Max(1, oldestLeft + (long)SpareLifetime.TotalMilliseconds - now)), Timeout.InfiniteTimeSpan);
        }
        foreach (var dir in expired)
        {
            Remove(dir);
            lock (s_gate) s_removing.Remove(dir);
        }
    }

    /// <summary>Kills whatever is left in a cgroup and removes it (best effort, a few retries).</summary>
    public static void Remove(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) return;
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                foreach (var line in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")))
                {
                    if (int.TryParse(line, out var pid)) Interop.Libc.Kill(pid, 9);
                }
                System.IO.Directory.Delete(dir);
                return;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                if (!System.IO.Directory.Exists(dir)) return; // removed meanwhile (by process exit's clean-up)
                Thread.Sleep(2);
            }
        }
    }

    /// <summary>
    /// Finds a pids cgroup hierarchy where a per-run cgroup can be made and really bounds forks: with pids.max =
    /// <paramref name="refuse"/> the probe command's fork must fail, with <paramref name="allow"/> it must succeed.
    /// </summary>
    internal static string? FindBase(Func<string, ProbeRun> tryFork, int refuse, int allow, List<string> notes)
    {
        foreach (var (root, own) in PidsHierarchies())
        {
            var baseDir = Path.Combine(root, own.TrimStart('/'), "requiem");
            var probe = Path.Combine(baseDir, "probe-" + Environment.ProcessId);
            try
            {
                System.IO.Directory.CreateDirectory(probe);
                var procs = Path.Combine(probe, "cgroup.procs");
                File.WriteAllText(Path.Combine(probe, "pids.max"), refuse.ToString(System.Globalization.CultureInfo.InvariantCulture));
                var limited = tryFork(procs);
                File.WriteAllText(Path.Combine(probe, "pids.max"), allow.ToString(System.Globalization.CultureInfo.InvariantCulture));
                var allowed = tryFork(procs);
                if (!limited.Out.Contains("forked") && allowed.Out.Contains("forked")) return baseDir;
                notes.Add($"pids cgroup at {baseDir} did not bound forks ({limited.Describe()} / {allowed.Describe()})");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                notes.Add($"pids cgroup at {baseDir} is not usable: {ex.Message}");
            }
            finally
            {
                Remove(probe);
            }
        }
        return null;
    }

    private static IEnumerable<(string Root, string Own)> PidsHierarchies()
    {
        string[] lines;
        try { lines = File.ReadAllLines("/proc/self/cgroup"); }
        catch (IOException) { yield break; }
        foreach (var line in lines)
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            if (parts[1].Split(',').Contains("pids") && System.IO.Directory.Exists("/sys/fs/cgroup/pids"))
                yield return ("/sys/fs/cgroup/pids", parts[2]);
        }
        // cgroup v2 at the root of the hierarchy (e.g. a container with its own cgroup namespace).
        const string v2 = "/sys/fs/cgroup";
        if (lines.Contains("0::/") && File.Exists(Path.Combine(v2, "cgroup.controllers")))
        {
            bool hasPids;
            try
            {
                hasPids = File.ReadAllText(Path.Combine(v2, "cgroup.controllers")).Split(' ', '\n').Contains("pids");
                if (hasPids && !File.ReadAllText(Path.Combine(v2, "cgroup.subtree_control")).Split(' ', '\n').Contains("pids"))
                    File.WriteAllText(Path.Combine(v2, "cgroup.subtree_control"), "+pids");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { hasPids = false; }
            if (hasPids) yield return (v2, "/");
        }
    }
}
