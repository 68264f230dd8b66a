using System.Globalization;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// A run's own pids cgroup: made under the probed base with <c>pids.max</c> set, joined by the launch before the
/// command starts (<see cref="Procs"/>), and on dispose emptied (whatever is left is killed) and removed.
/// </summary>
public sealed class RunCgroup : IDisposable
{
    private RunCgroup(string directory)
    {
        Directory = directory;
        Procs = Path.Combine(directory, "cgroup.procs");
    }

    public string Directory { get; }
    /// <summary>The file a process writes 0 to in order to join.</summary>
    public string Procs { get; }

    /// <summary>Makes a cgroup that admits <paramref name="maxProcesses"/> processes; SandboxSetupFailed when it cannot.</summary>
    public static RunCgroup Create(string baseDirectory, long maxProcesses, string command)
    {
        var dir = Path.Combine(baseDirectory, "run-" + Guid.NewGuid().ToString("n"));
        try
        {
            System.IO.Directory.CreateDirectory(dir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("SandboxSetupFailed", ErrorKind.ResourceUnavailable,
                $"The run's pids cgroup could not be created ({ex.Message}), so '{command}' did not run.", command, ex);
        }
        var cgroup = new RunCgroup(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "pids.max"), maxProcesses.ToString(CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            cgroup.Dispose();
            throw new RequiemException("SandboxSetupFailed", ErrorKind.ResourceUnavailable,
                $"The process limit could not be set ({ex.Message}), so '{command}' did not run.", command, ex);
        }
        return cgroup;
    }

    public void Dispose() => Remove(Directory);

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
