using System.Collections;
using System.Management.Automation;
using Requiem.Engine.Bench;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Invoke-RequiemBench: runs a bench spec (or one shell command line) and returns the bench report.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "RequiemBench", DefaultParameterSetName = CommandSet, SupportsShouldProcess = true)]
[OutputType(typeof(BenchReport))]
public sealed class InvokeRequiemBenchCommand : RequiemStoreCmdlet
{
    private const string CommandSet = "Command";
    private const string SpecSet = "Spec";
    private const int ProgressId = 1;
    private const string Activity = "Invoke-RequiemBench";

    /// <summary>A shell command line (/bin/sh -c on Unix, cmd /c on Windows).</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = CommandSet)]
    [ValidateNotNullOrEmpty]
    public string Command { get; set; } = "";

    /// <summary>A spec: path to a JSON file, a hashtable, a BenchSpec, or JSON text.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = SpecSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object? Spec { get; set; }

    /// <summary>Case name for -Command (default: the command line).</summary>
    [Parameter(ParameterSetName = CommandSet)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter]
    [ValidateRange(1, 1_000_000)]
    public int Runs { get; set; } = 10;

    [Parameter]
    [ValidateRange(0, 1_000_000)]
    public int Warmup { get; set; } = 1;

    /// <summary>Keep measuring each case until this many seconds of measured wall time (and at least -Runs runs).</summary>
    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(0.0, 86400.0)]
    public double MinSeconds { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public string? Prepare { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public string? Cleanup { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public string? WorkingDirectory { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public Hashtable? Environment { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(0.001, 86400.0)]
    public double TimeoutSeconds { get; set; }

    /// <summary>Also write the report as JSON to this file.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? OutFile { get; set; }

    /// <summary>Store the report in the CAS under the ref bench/&lt;name&gt; (a reusable baseline).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(CasRefCompleter))]
    public string? SaveRef { get; set; }

    /// <summary>Do not run the machine-speed probe between runs (the report then has no calibration).</summary>
    [Parameter]
    public SwitchParameter NoCalibration { get; set; }

    [Parameter]
    public string? Cas { get; set; }

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    protected override void ProcessRecord()
    {
        WarnIfLauncherUnusable();
        var location = SessionState.Path.CurrentFileSystemLocation.ProviderPath;
        BenchSpec spec;
        if (ParameterSetName == CommandSet)
        {
            Dictionary<string, string?>? env = null;
            if (Environment is not null)
            {
                env = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (DictionaryEntry e in Environment) env[e.Key.ToString() ?? ""] = BenchInput.Unwrap(e.Value)?.ToString();
            }
            spec = Run(() => BenchSpec.ForCommandLine(Command, Name, Runs, Warmup, MinSeconds, Prepare, Cleanup,
                WorkingDirectory is null ? null : ResolveNewPath(WorkingDirectory), env,
                TimeoutSeconds > 0 ? (long)Math.Ceiling(TimeoutSeconds * 1000) : null));
        }
        else
        {
            var parsed = Run(() => BenchInput.Spec(Spec, ResolveNewPath));
            spec = parsed;
            if (MyInvocation.BoundParameters.ContainsKey(nameof(Runs)) || MyInvocation.BoundParameters.ContainsKey(nameof(Warmup)))
            {
                spec = Run(() => new BenchSpec
                {
                    BenchSpecVersion = parsed.BenchSpecVersion, Name = parsed.Name,
                    Warmup = MyInvocation.BoundParameters.ContainsKey(nameof(Warmup)) ? Warmup : parsed.Warmup,
                    Runs = MyInvocation.BoundParameters.ContainsKey(nameof(Runs)) ? Runs : parsed.Runs,
                    MinTimeSeconds = parsed.MinTimeSeconds, MaxRuns = MyInvocation.BoundParameters.ContainsKey(nameof(Runs)) ? Math.Max(parsed.MaxRuns, Runs) : parsed.MaxRuns, TimeoutMs = parsed.TimeoutMs,
                    Prepare = parsed.Prepare, Cleanup = parsed.Cleanup, Cases = parsed.Cases,
                }.Validate());
            }
        }

        if (!ShouldProcess($"{spec.Name}: {spec.Cases.Count} case(s), {spec.Runs} run(s) each" + (OutFile is null ? "" : $", report to {ResolveNewPath(OutFile)}"), "Run benchmark")) return;
        var store = OpenStore(Cas, AllowHashFallback);
        var runner = new BenchRunner(store, location, CreateEngineOutput(ProgressId)) { Calibrate = !NoCalibration };
        var report = Run(() => runner.Run(spec, CancellationToken));
        CompleteProgress(ProgressId, Activity);
        if (OutFile is not null)
        {
            var path = ResolveNewPath(OutFile);
            Run(() => { BenchReportIo.Save(report, path); return path; });
            WriteVerbose($"Bench report written to {path}");
        }
        if (SaveRef is not null)
        {
            var hash = Run(() => BenchReportIo.SaveToCas(store, report, SaveRef));
            WriteVerbose($"Bench report stored as {hash} under ref bench/{SaveRef.TrimStart('/')} in {store.Root}");
        }
        WriteObject(report);
    }
}
