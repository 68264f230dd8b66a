using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Requiem.Engine.Cas;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Bench;

/// <summary>Runs a bench spec: for each case warm-up runs, then measured runs, each captured into the CAS.</summary>
public sealed class BenchRunner
{
    private readonly CasStore _cas;
    private readonly string _baseDirectory;
    private readonly IEngineOutput _output;

    /// <param name="cas">Where stdout, stderr and output files of every run are stored.</param>
    /// <param name="baseDirectory">What relative <c>cwd</c>s resolve against (the caller's current location).</param>
    public BenchRunner(CasStore cas, string baseDirectory, IEngineOutput? output = null)
    {
        _cas = cas;
        _baseDirectory = baseDirectory;
        _output = output ?? NullEngineOutput.Instance;
    }

    /// <summary>Run the calibration probe after every measured run (default true).</summary>
    public bool Calibrate { get; init; } = true;

    /// <summary>The probe: about 2000 iterations of a shell loop, a few milliseconds of spawn + CPU work.</summary>
    public static string CalibrationCommand => OperatingSystem.IsWindows()
        ? "for /L %i in (1,1,2000) do rem"
        : "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done";

    private List<double>? _probe;

    public BenchReport Run(BenchSpec spec, CancellationToken cancel = default)
    {
        _probe = Calibrate ? new List<double>() : null;
        spec.Validate();
        var hash = _cas.HashPrimitive;
        var started = DateTimeOffset.UtcNow;
        var machine = DescribeMachine();
        var plannedTotal = spec.Cases.Sum(c => (long)(c.Warmup ?? spec.Warmup) + (c.Runs ?? spec.Runs));
        var progress = new ProgressState(plannedTotal);
        var cases = new List<BenchCaseReport>();
        foreach (var c in spec.Cases)
        {
            cancel.ThrowIfCancellationRequested();
            cases.Add(RunCase(spec, c, hash, progress, cancel));
        }
        _output.Progress(new ProgressInfo("Invoke-RequiemBench", "Done", progress.Done, progress.Done));
        return new BenchReport
        {
            BenchReportVersion = BenchReport.CurrentVersion,
            Tool = new BenchTool { Name = EngineInfo.EngineName, Version = EngineInfo.EngineVersion },
            SpecDigest = spec.ComputeDigest(hash),
            Spec = spec,
            Machine = machine,
            Measurement = ProcessMeasure.Method,
            HashAlgorithm = hash.Algorithm,
            StartedAt = started,
            FinishedAt = DateTimeOffset.UtcNow,
            Cases = cases,
            Calibration = _probe is { Count: > 0 } probe
                ? new BenchCalibration { Command = CalibrationCommand, WallMs = probe, Statistics = BenchStatistics.Summarize(probe)! }
                : null,
        };
    }

    private sealed class ProgressState
    {
        public ProgressState(long planned) { Planned = planned; Clock = Stopwatch.StartNew(); }
        public long Planned;
        public long Done;
        public readonly Stopwatch Clock;
        public long LastReportMs = -1000;
    }

    private BenchCaseReport RunCase(BenchSpec spec, BenchCase c, HashPrimitive hash, ProgressState progress, CancellationToken cancel)
    {
        var warmup = c.Warmup ?? spec.Warmup;
        var minRuns = c.Runs ?? spec.Runs;
        var timeoutMs = c.TimeoutMs ?? spec.TimeoutMs;
        var cwd = Path.GetFullPath(c.Cwd is { Length: > 0 } d ? Path.Combine(_baseDirectory, d) : _baseDirectory);
        var launch = new ProcessLaunch
        {
            Argv = c.ToArgv(),
            Environment = c.Env,
            WorkingDirectory = cwd,
            Timeout = timeoutMs is { } t ? TimeSpan.FromMilliseconds(t) : null,
        };
        var prepare = c.Prepare ?? spec.Prepare;
        var cleanup = c.Cleanup ?? spec.Cleanup;
        var runs = new List<BenchRun>();
        double measuredWall = 0;
        try
        {
            for (var i = 0; ; i++)
            {
                var isWarmup = i < warmup;
                var measuredSoFar = i - warmup;
                if (!isWarmup && measuredSoFar >= minRuns &&
                    (measuredWall >= spec.MinTimeSeconds * 1000 || measuredSoFar >= spec.MaxRuns))
                    break;
                if (!isWarmup && measuredSoFar >= minRuns) progress.Planned++; // min_time extends the plan one run at a time
                cancel.ThrowIfCancellationRequested();
                if (prepare is { Length: > 0 }) RunHelper(prepare, "prepare", c, cwd, cancel);
                var m = ProcessMeasure.Run(launch, cancel);
                runs.Add(Record(c, i, isWarmup, m, cwd, hash, cancel));
                if (!isWarmup) measuredWall += m.WallMs;
                if (!isWarmup && _probe is not null)
                {
                    // Interleaved with the case, so both see the same load; never inside a measured run.
                    var probe = ProcessMeasure.Run(new ProcessLaunch { Argv = ProcessMeasure.ShellArgv(CalibrationCommand), WorkingDirectory = cwd }, cancel);
                    _probe.Add(probe.WallMs);
                }
                progress.Done++;
                Report(progress, c.Name);
            }
        }
        finally
        {
            if (cleanup is { Length: > 0 } && !cancel.IsCancellationRequested) RunHelper(cleanup, "cleanup", c, cwd, CancellationToken.None);
        }
        var measured = runs.Where(r => !r.Warmup).ToList();
        var failed = measured.Count(r => r.ExitCode != 0 || r.TimedOut);
        if (failed > 0)
            _output.Warning($"Case '{c.Name}': {failed} of {measured.Count} measured runs failed (non-zero exit or timeout); their times are still in the statistics.");
        return new BenchCaseReport
        {
            Name = c.Name,
            Command = c.Display(),
            Runs = runs,
            Statistics = new BenchCaseStatistics
            {
                WallMs = BenchStatistics.Summarize(measured.Select(r => r.WallMs).ToList())!,
                UserMs = BenchStatistics.Summarize(measured.Where(r => r.UserMs.HasValue).Select(r => r.UserMs!.Value).ToList()),
                SystemMs = BenchStatistics.Summarize(measured.Where(r => r.SystemMs.HasValue).Select(r => r.SystemMs!.Value).ToList()),
                MaxRssKb = BenchStatistics.Summarize(measured.Where(r => r.MaxRssKb.HasValue).Select(r => (double)r.MaxRssKb!.Value).ToList()),
                FailedRuns = failed,
            },
        };
    }

    private void Report(ProgressState p, string caseName)
    {
        var now = p.Clock.ElapsedMilliseconds;
        if (now - p.LastReportMs < 250 && p.Done < p.Planned) return; // a few updates a second at most
        p.LastReportMs = now;
        var remaining = Math.Max(0, p.Planned - p.Done);
        var eta = p.Done > 0 ? TimeSpan.FromMilliseconds(now / (double)p.Done * remaining) : TimeSpan.Zero;
        _output.Progress(new ProgressInfo("Invoke-RequiemBench",
            $"{caseName}: {p.Done} runs done, {remaining} remaining, about {eta.TotalSeconds:0.0} s left", p.Done, p.Planned));
    }

    private void RunHelper(string commandLine, string what, BenchCase c, string cwd, CancellationToken cancel)
    {
        var m = ProcessMeasure.Run(new ProcessLaunch { Argv = ProcessMeasure.ShellArgv(commandLine), Environment = c.Env, WorkingDirectory = cwd }, cancel);
        if (m.ExitCode != 0)
        {
            var err = System.Text.Encoding.UTF8.GetString(m.Stderr).Trim();
            throw new RequiemException("BenchPrepareFailed", ErrorKind.InvalidOperation,
                $"The {what} command of case '{c.Name}' exited with {m.ExitCode}: {commandLine}" + (err.Length > 0 ? $" ({Truncate(err, 300)})" : ""), commandLine);
        }
    }

    private BenchRun Record(BenchCase c, int index, bool warmup, ProcessMeasurement m, string cwd, HashPrimitive hash, CancellationToken cancel)
    {
        var stdout = _cas.PutBytes(m.Stdout).Hash;
        var stderr = _cas.PutBytes(m.Stderr).Hash;
        var files = new SortedDictionary<string, string?>(StringComparer.Ordinal);
        foreach (var f in c.OutputFiles ?? new List<string>())
        {
            var full = Path.GetFullPath(Path.Combine(cwd, f));
            if (!File.Exists(full))
            {
                files[f] = null;
                continue;
            }
            // Opened without following links or blocking, like Invoke-RequiemExec's outputs: a FIFO or device never hangs
            // the bench or fills the disk.
            var captured = Execution.OutputFileCapture.Capture(full, f, Execution.ExecPolicy.DefaultMaxOutputFileBytes, null, _cas, cancel);
            if (captured.Skipped is { } skip)
                throw new RequiemException("BenchOutputNotCaptured", ErrorKind.InvalidData,
                    $"Output file '{f}' of case '{c.Name}' cannot be captured: {skip.Reason} ({skip.Detail}).", f);
            files[f] = captured.Put?.Hash;
        }
        return new BenchRun
        {
            Index = index,
            Warmup = warmup,
            WallMs = m.WallMs,
            UserMs = m.UserMs,
            SystemMs = m.SystemMs,
            MaxRssKb = m.MaxRssKb,
            MaxRssFloorKb = m.MaxRssFloorKb,
            ExitCode = m.ExitCode,
            Signal = m.Signal,
            TimedOut = m.TimedOut,
            StdoutDigest = stdout,
            StdoutBytes = m.Stdout.LongLength,
            StderrDigest = stderr,
            StderrBytes = m.Stderr.LongLength,
            OutputFiles = files,
            ResultDigest = ResultDigest(hash, m.ExitCode, stdout, stderr, files),
        };
    }

    /// <summary>
    /// A run's result digest: <c>res:</c>-domain BLAKE3 over the RFC 8785 canonical JSON of
    /// <c>{"exit_code":n,"output_files":{path:digest|null},"stderr_digest":"…","stdout_digest":"…"}</c>.
    /// Times are not part of it: two runs that behaved the same have the same digest.
    /// </summary>
    public static string ResultDigest(HashPrimitive hash, int exitCode, string stdoutDigest, string stderrDigest, IReadOnlyDictionary<string, string?> outputFiles)
    {
        var files = new JsonObject();
        foreach (var (k, v) in outputFiles) files[k] = v;
        var doc = new JsonObject
        {
            ["exit_code"] = exitCode,
            ["stdout_digest"] = stdoutDigest,
            ["stderr_digest"] = stderrDigest,
            ["output_files"] = files,
        };
        return hash.HashBytes(CanonicalJson.Canonicalize(doc.ToJsonString()), HashDomain.Result);
    }

    public static BenchMachine DescribeMachine()
    {
        string? cpu = null;
        double? load = null;
        if (OperatingSystem.IsLinux())
        {
            try
            {
                cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
                var la = File.ReadAllText("/proc/loadavg").Split(' ')[0];
                load = double.Parse(la, System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException) { }
        }
        string? host = null;
        try { host = System.Net.Dns.GetHostName(); } catch (System.Net.Sockets.SocketException) { }
        return new BenchMachine
        {
            Os = RuntimeInformation.OSDescription,
            OsPlatform = OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macos" : "other",
            Architecture = RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
            Cores = Environment.ProcessorCount,
            CpuModel = cpu,
            Runtime = RuntimeInformation.FrameworkDescription,
            Hostname = host,
            LoadAverage = load,
        };
    }

    internal static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + "…";
}
