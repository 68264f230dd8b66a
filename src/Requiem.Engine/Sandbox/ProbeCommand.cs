using System.Diagnostics;

namespace Requiem.Engine.Sandbox;

/// <summary>How one probe command ended, and what it printed.</summary>
internal readonly record struct ProbeRun(bool Ok, int ExitCode, string Out, string Err)
{
    public string Describe()
    {
        var text = (Err.Length > 0 ? Err : Out).Trim();
        return $"exit {ExitCode}: {(text.Length > 300 ? text[..300] + "…" : text)}";
    }
}

/// <summary>
/// Runs the probe commands of the isolators (as runs are started: the process host on Linux, with a 5 s limit) and
/// reads what they printed about themselves (/proc/self/status, /proc/self/limits, /proc/self/net/dev).
/// </summary>
internal static class ProbeCommand
{
    // Unusual values, so that reading them back proves they were applied and are not the machine's defaults.
    public const long ProbeAs = 1073741824, ProbeCpu = 97, ProbeNofile = 93, ProbeNproc = 4093;

    public static ProbeRun Run(LaunchCommand command, string workingDirectory) => Run(command.File, command.Args.ToArray(), workingDirectory, command.Files);

    public static ProbeRun Run(string file, string[] args, string? workingDirectory = null, IReadOnlyList<(int Fd, string Path)>? files = null)
    {
        if (Processes.ProcessHost.Supported) return RunHosted(file, args, workingDirectory, files ?? Array.Empty<(int, string)>());
        if (files is { Count: > 0 }) return new ProbeRun(false, -1, "", "descriptors can only be passed by the process host");
        return RunPortable(file, args, workingDirectory);
    }

    /// <summary>A spec whose command reads back <c>/proc/self/limits</c> with the four probe limits set.</summary>
    public static LaunchSpec LimitsSpec(string cat) => new()
    {
        Command = cat, Argv = new[] { "/proc/self/limits" }, WorkingDirectory = "/",
        MaxMemoryBytes = ProbeAs, MaxCpuSeconds = ProbeCpu, MaxOpenFiles = ProbeNofile, MaxProcessesRlimit = ProbeNproc,
    };

    /// <summary>/proc/self/limits shows the four probe limits, soft = hard.</summary>
    public static bool LimitsReadBack(string limits) =>
        LimitIs(limits, "Max cpu time", ProbeCpu) && LimitIs(limits, "Max open files", ProbeNofile)
        && LimitIs(limits, "Max address space", ProbeAs) && LimitIs(limits, "Max processes", ProbeNproc);

    private static bool LimitIs(string limits, string name, long value)
    {
        var text = value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return limits.Split('\n').Any(l => l.StartsWith(name, StringComparison.Ordinal) &&
                                           l[name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: >= 2 } f && f[0] == text && f[1] == text);
    }

    public static bool OnlyLoopback(string netDev)
    {
        var ifaces = netDev.Split('\n').Skip(2).Select(l => l.Split(':')[0].Trim()).Where(s => s.Length > 0).ToList();
        return ifaces.Count > 0 && ifaces.All(i => i == "lo");
    }

    public static string? StatusField(string status, string name) =>
        status.Split('\n').Where(l => l.StartsWith(name + ":", StringComparison.Ordinal) || l.StartsWith(name + "=", StringComparison.Ordinal))
            .Select(l => l[(name.Length + 1)..].Trim()).FirstOrDefault();

    /// <summary>A capability set in /proc/pid/status that is all zero.</summary>
    public static bool NoCapabilities(string status, string field) =>
        ulong.TryParse(StatusField(status, field), System.Globalization.NumberStyles.HexNumber, null, out var v) && v == 0;

    public static bool SigPipeAtDefault(string status) =>
        ulong.TryParse(StatusField(status, "SigIgn"), System.Globalization.NumberStyles.HexNumber, null, out var ign) && (ign & (1UL << 12)) == 0;

    /// <summary>Every capability set empty and no_new_privs, as /proc/self/status shows them.</summary>
    public static bool Unprivileged(string status) =>
        NoCapabilities(status, "CapBnd") && NoCapabilities(status, "CapEff") && StatusField(status, "NoNewPrivs") == "1";

    public static string? Which(string name, params string[] candidates)
    {
        foreach (var c in candidates) if (File.Exists(c)) return c;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public static string Sh => Which("sh", "/bin/sh", "/usr/bin/sh") ?? "/bin/sh";

    private static ProbeRun RunHosted(string file, string[] args, string? workingDirectory, IReadOnlyList<(int Fd, string Path)> files)
    {
        Processes.HostedProcess p;
        try
        {
            var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>().Select(e => $"{e.Key}={e.Value}").ToArray();
            p = Processes.ProcessHost.Start(new Processes.ProcessSpec
            {
                Argv = new[] { file }.Concat(args).ToArray(), Environment = env, WorkingDirectory = workingDirectory, StdinPipe = false, ReadOnlyFiles = files,
            });
        }
        catch (Processes.ProcessStartException ex)
        {
            return new ProbeRun(false, -1, "", ex.Message);
        }
        using (p)
        {
            var outTask = Bench.ProcessMeasure.ReadAllAsync(p.Stdout);
            var errTask = Bench.ProcessMeasure.ReadAllAsync(p.Stderr);
            var timedOut = 0;
            using var timer = new Timer(_ => { if (p.KillGroup()) Volatile.Write(ref timedOut, 1); }, null, 5000, Timeout.Infinite);
            var exit = p.WaitForExit();
            timer.Dispose();
            if (!Task.WaitAll(new Task[] { outTask, errTask }, TimeSpan.FromSeconds(2))) p.KillGroup();
            if (Volatile.Read(ref timedOut) == 1) return new ProbeRun(false, -1, "", "timed out");
            var stdout = outTask.IsCompletedSuccessfully ? System.Text.Encoding.UTF8.GetString(outTask.Result) : "";
            var stderr = errTask.IsCompletedSuccessfully ? System.Text.Encoding.UTF8.GetString(errTask.Result) : "";
            return new ProbeRun(exit.ExitCode == 0, exit.ExitCode, stdout, stderr);
        }
    }

    private static ProbeRun RunPortable(string file, string[] args, string? workingDirectory)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.StandardInput.Close();
            var outTask = p.StandardOutput.ReadToEndAsync();
            var errTask = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(5000))
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                return new ProbeRun(false, -1, "", "timed out");
            }
            p.WaitForExit();
            return new ProbeRun(p.ExitCode == 0, p.ExitCode, outTask.Result, errTask.Result);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return new ProbeRun(false, -1, "", ex.Message);
        }
    }
}
