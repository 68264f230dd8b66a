using System.Globalization;
using System.Management.Automation;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Engines;
using Requiem.Engine.Execution;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Invoke-RequiemExec's -Engine, -EnginePath and -DualSampleRate: which engine runs a request, and for -Engine dual
/// how the external engine's result is compared and reported. Chosen once per invocation (BeginProcessing).
/// </summary>
internal sealed class DualEngineSelection
{
    private DualEngineSelection(string engine, ExternalEngine? external, double sampleRate)
    {
        EngineName = engine;
        External = external;
        SampleRate = sampleRate;
    }

    /// <summary>requiem, external or dual (rust is external).</summary>
    public string EngineName { get; }
    public ExternalEngine? External { get; }
    public double SampleRate { get; }
    public bool IsExternalOnly => EngineName == "external";
    public bool IsDual => EngineName == "dual";

    public static DualEngineSelection Select(PSCmdlet cmdlet, string engine, string? enginePath, double? sampleRate, RequiemConfig config)
    {
        engine = engine.ToLowerInvariant() == "rust" ? "external" : engine.ToLowerInvariant();
        if (sampleRate is not null && engine != "dual")
            Terminate(cmdlet, new RequiemException("DualSampleRateWithoutDual", ErrorKind.InvalidArgument,
                $"-DualSampleRate applies to -Engine dual only (the engine is {engine}).", sampleRate));
        if (enginePath is not null && engine == "requiem")
            Terminate(cmdlet, new RequiemException("EnginePathWithoutExternal", ErrorKind.InvalidArgument,
                "-EnginePath names the external engine, which runs with -Engine external or dual only (the engine is requiem).", enginePath));
        var rate = sampleRate ?? config.Engine.DualSampleRate ?? 1.0;
        if (engine == "requiem") return new DualEngineSelection(engine, null, rate);

        var external = ExternalEngine.Resolve(ResolveEnginePath(cmdlet, enginePath), config, PwshPath(cmdlet));
        if (external is null)
        {
            if (engine == "external")
                Terminate(cmdlet, new RequiemException("ExternalEngineNotConfigured", ErrorKind.InvalidArgument,
                    "-Engine external needs an engine that speaks the Requiem CLI's 'exec run --request <file> --out <file>': give -EnginePath, set $env:"
                    + ExternalEngine.PathVariable + ", or set engine.external_path in the config.", "EnginePath"));
            cmdlet.WriteWarning("dual run: " + DualRunner.NoEngineMessage + ".");
            return new DualEngineSelection(engine, null, rate);
        }
        var file = external.Locate();
        if (file is null)
        {
            var missing = new RequiemException("ExternalEngineNotFound", ErrorKind.ObjectNotFound,
                $"The external engine '{external.Path}' (from {external.Source}) does not exist.", external.Path);
            if (engine == "external") Terminate(cmdlet, missing);
            cmdlet.WriteWarning($"dual run: {missing.Message} Every sampled request is reported as external_failed.");
        }
        else cmdlet.WriteVerbose($"External engine: {file} (from {external.Source})" + (engine == "dual" ? $"; dual sample rate {rate.ToString(CultureInfo.InvariantCulture)}." : "."));
        return new DualEngineSelection(engine, external, rate);
    }

    /// <summary>-EnginePath: a path is resolved against the current location; a bare name that is no file there is looked up on PATH.</summary>
    private static string? ResolveEnginePath(PSCmdlet cmdlet, string? enginePath)
    {
        if (enginePath is null) return null;
        var resolved = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(enginePath);
        var bare = enginePath.IndexOfAny(new[] { '/', '\\' }) < 0;
        return bare && !File.Exists(resolved) ? enginePath : resolved;
    }

    /// <summary>The pwsh that runs a .ps1 engine: this session's own, so the engine gets the same PowerShell.</summary>
    private static string? PwshPath(PSCmdlet cmdlet)
    {
        if (cmdlet.SessionState.PSVariable.GetValue("PSHOME") is not string home) return null;
        var pwsh = Path.Combine(home, OperatingSystem.IsWindows() ? "pwsh.exe" : "pwsh");
        return File.Exists(pwsh) ? pwsh : null;
    }

    private static void Terminate(PSCmdlet cmdlet, RequiemException ex) => cmdlet.ThrowTerminatingError(RequiemCmdlet.ToErrorRecord(ex));

    /// <summary>-Engine external: the external engine's result, read back into the result type.</summary>
    public async Task<ExecResult> RunExternalAsync(ExecRequest request, CasStore store, IEngineOutput output, CancellationToken cancel)
    {
        var run = await External!.RunAsync(request, store.HashPrimitive, cancel).ConfigureAwait(false);
        if (!run.ResultDigestValid)
            output.Warning($"The external engine's result_digest {run.Result.ResultDigest} does not match its result as this module computes it.");
        if (run.ExitCode != 0) output.Verbose($"The external engine exited with code {run.ExitCode} and wrote a result.");
        run.Result.Request = request;
        return run.Result;
    }

    public Task<DualRunReport> CompareAsync(ExecRequest request, ExecResult requiem, CasStore store, IEngineOutput output, CancellationToken cancel) =>
        DualRunner.CompleteAsync(request, requiem, new DualRunOptions { Engine = External, SampleRate = SampleRate, Store = store, Output = output }, cancel);

    /// <summary>Tells the user what the dual run found: a warning for a mismatch or an external failure, never an error.</summary>
    public static void Report(Cmdlet cmdlet, DualRunReport dual)
    {
        switch (dual.Status)
        {
            case DualRunStatus.Mismatch:
                cmdlet.WriteWarning($"dual run: the external engine's result differs in {dual.Differences.Length} field(s) (logged for review, see Get-RequiemDualDiff): "
                    + string.Join("; ", dual.Differences.Select(d => d.ToString())));
                break;
            case DualRunStatus.ExternalFailed:
                cmdlet.WriteWarning($"dual run: the external engine failed ({dual.ErrorId}), so nothing was compared (logged for review): {dual.Message}");
                break;
            case DualRunStatus.NotSampled:
                cmdlet.WriteVerbose($"dual run: request {dual.RequestDigest} is outside the {dual.SampleRate.ToString(CultureInfo.InvariantCulture)} sample: only the Requiem engine ran.");
                break;
            case DualRunStatus.Match:
                cmdlet.WriteVerbose($"dual run: the external engine's result matches on every compared field.");
                break;
        }
    }

    /// <summary>The -OutFile document of one result: the contract result, plus <c>dual_run</c> after a dual run.</summary>
    public static JsonObject ToOutFileNode(ExecResult result)
    {
        var node = result.ToJsonNode();
        if (result.DualRun is { } dual) node["dual_run"] = dual.ToJsonNode();
        return node;
    }
}
