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
}
