using Requiem.Engine.Cas;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Execution;

namespace Requiem.Engine.Engines;

public sealed class DualRunOptions
{
    /// <summary>The second engine; null when none is configured (the run is then reported as <c>no_external_engine</c>).</summary>
    public ExternalEngine? Engine { get; init; }
    /// <summary>The share of requests (0..1) sent to the second engine, chosen by <see cref="DualSampling"/>.</summary>
    public double SampleRate { get; init; } = 1.0;
    public required CasStore Store { get; init; }
    public IEngineOutput Output { get; init; } = NullEngineOutput.Instance;
}

/// <summary>
/// The second half of <c>-Engine dual</c>: after the Requiem engine has run a request, runs the same request on the
/// external engine (when one is configured and the request is in the sample), compares the two results, and appends
/// a mismatch or an external failure to the store's diff log. Never throws for a mismatch or an external failure:
/// both are in the report.
/// </summary>
public static class DualRunner
{
    public static async Task<DualRunReport> CompleteAsync(ExecRequest request, ExecResult requiem, DualRunOptions options, CancellationToken cancel)
    {
        var sampled = DualSampling.IsSampled(requiem.RequestDigest, options.SampleRate);
        var engine = options.Engine;
        if (engine is null)
        {
            return new DualRunReport
            {
                Status = DualRunStatus.NoExternalEngine, Sampled = sampled, SampleRate = options.SampleRate, RequestDigest = requiem.RequestDigest,
                RequiemResultDigest = requiem.ResultDigest, Message = NoEngineMessage,
            };
        }
        if (!sampled)
        {
            return new DualRunReport
            {
                Status = DualRunStatus.NotSampled, Sampled = false, SampleRate = options.SampleRate, RequestDigest = requiem.RequestDigest,
                RequiemResultDigest = requiem.ResultDigest, ExternalEngine = engine.Path, ExternalEngineSource = engine.Source,
            };
        }
        DualRunReport report;
        try
        {
            var run = await engine.RunAsync(request, options.Store.HashPrimitive, cancel).ConfigureAwait(false);
            var diffs = DualRunComparer.Compare(requiem, run.Result, options.Store);
            report = new DualRunReport
            {
                Status = diffs.Length == 0 ? DualRunStatus.Match : DualRunStatus.Mismatch, Differences = diffs,
                Sampled = true, SampleRate = options.SampleRate, RequestDigest = requiem.RequestDigest,
                ExternalEngine = engine.Path, ExternalEngineSource = engine.Source, ExternalExitCode = run.ExitCode,
                RequiemResultDigest = requiem.ResultDigest, ExternalResultDigest = run.Result.ResultDigest,
                ExternalResultDigestValid = run.ResultDigestValid, External = run.Result,
            };
        }
        catch (RequiemException ex)
        {
            report = new DualRunReport
            {
                Status = DualRunStatus.ExternalFailed, Sampled = true, SampleRate = options.SampleRate, RequestDigest = requiem.RequestDigest,
                ExternalEngine = engine.Path, ExternalEngineSource = engine.Source, RequiemResultDigest = requiem.ResultDigest,
                ErrorId = ex.ErrorId, Message = ex.Message,
            };
        }
        if (!report.Match) Log(report, request, options);
        return report;
    }

    public const string NoEngineMessage =
        "no external engine is configured (-EnginePath, $env:" + ExternalEngine.PathVariable + " or engine.external_path in the config): only the Requiem engine ran and nothing was compared";

    private static void Log(DualRunReport report, ExecRequest request, DualRunOptions options)
    {
        try
        {
            DualDiffLog.Append(options.Store.Root, new DualDiffEntry
            {
                Time = DateTimeOffset.UtcNow, Status = report.Status, RequestDigest = report.RequestDigest, Command = request.Command,
                ExternalEngine = report.ExternalEngine, ExternalExitCode = report.ExternalExitCode,
                RequiemResultDigest = report.RequiemResultDigest, ExternalResultDigest = report.ExternalResultDigest,
                ErrorId = report.ErrorId, Message = report.Message, Differences = report.Differences,
                HostName = Environment.MachineName, ProcessId = Environment.ProcessId,
            });
        }
        catch (RequiemException ex)
        {
            // The comparison is in the result either way; a log that cannot be written must not fail the run.
            options.Output.Warning(ex.Message);
        }
    }
}
