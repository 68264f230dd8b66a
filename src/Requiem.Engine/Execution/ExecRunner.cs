using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Requiem.Engine.Cas;
using Requiem.Engine.Diagnostics;
using Requiem.Engine.Hashing;
using Requiem.Engine.Processes;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.Execution;

/// <summary>Options for one execution.</summary>
public sealed class ExecOptions
{
    public required CasStore Store { get; init; }
    public SandboxProbe? Probe { get; init; }
    /// <summary>Decode captured stdout/stderr into the result's StdoutText/StderrText.</summary>
    public bool IncludeOutput { get; init; }
    public IEngineOutput Output { get; init; } = NullEngineOutput.Instance;
    /// <summary>
    /// The caller blocks for this run on its own thread (a single request on the pipeline thread): the run is waited
    /// for and recorded on that thread, with no hop through the thread pool (<see cref="SupervisionOptions.OnCallingThread"/>).
    /// </summary>
    public bool OnCallingThread { get; init; }
}

/// <summary>
/// Runs one request: resolve (confinement, command, environment, sandbox), launch with every limit in force before
/// the command's first instruction, capture bounded output, kill the whole tree on timeout or cancel, store
/// everything in the CAS, and return the result with its digests.
/// </summary>
public static class ExecRunner
{
    /// <summary>Bytes read and discarded after max_output_bytes before the pipe is closed (the writer then gets SIGPIPE/EPIPE).</summary>
    public const long OverflowDrainBytes = BoundedCapture.OverflowDrainBytes;

    public static ExecResult Run(ExecRequest request, ExecOptions options, CancellationToken cancel = default) =>
        RunAsync(request, options, cancel).GetAwaiter().GetResult();

    public static async Task<ExecResult> RunAsync(ExecRequest request, ExecOptions options, CancellationToken cancel = default)
    {
        var probe = options.Probe ?? SandboxProbe.Current;
        var store = options.Store;
        var hash = store.HashPrimitive;
        var plan = ExecPlan.Create(request, probe);
        var policy = request.Policy;
        if (policy.IsStrict && plan.Violations.Count > 0)
            throw new RequiemException("PolicyNotEnforceable", ErrorKind.SecurityError,
                "The request's strict policy cannot be met on this machine, so nothing was run: " + string.Join("; ", plan.Violations) + ".",
                string.Join(",", plan.RequestedButMissing));
        foreach (var v in plan.Violations) options.Output.Warning(v);
        foreach (var r in plan.Reasons) options.Output.Warning(r);

        // Inputs are hashed before the run (the command may change them).
        var inputDigests = plan.Inputs
            .Select(i => new InputFileDigest { Path = i.Relative, Digest = hash.HashFile(i.Full, HashDomain.Cas, cancel).Hash })
            .ToArray();

        options.Output.Verbose($"exec {plan.CommandPath} ({plan.Request.Argv.Length} args) in {plan.WorkingDirectory}; enforced: {string.Join(", ", plan.Enforced)}");
        var started = DateTime.UtcNow;
        var sw = Stopwatch.StartNew();
        // While the command runs, on this thread: the canonical forms of the request and the policy (pure functions of
        // the request; one canonical form of the request serves both its digest and its CAS blob, canonicalising costs
        // a parse). If that fails the run is killed and waited for before the failure goes up. The duration stops when
        // the run ends, not when this thread next looks.
        byte[] requestBytes = Array.Empty<byte>(), policyBytes = Array.Empty<byte>();
        var requestDigest = "";
        void Canonicalise()
        {
            requestBytes = request.SharedCanonicalBytes();
            requestDigest = hash.HashBytes(requestBytes, HashDomain.Request);
            policyBytes = policy.SharedCanonicalBytes();
        }
        var running = SandboxRunner.RunAsync(plan, store, new SupervisionOptions { WhileRunning = Canonicalise, OnCallingThread = options.OnCallingThread }, cancel);
        var timed = running.ContinueWith(_ => sw.Stop(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var outcome = await running.ConfigureAwait(false);
        await timed.ConfigureAwait(false);

        using (outcome.Stdout)
        using (outcome.Stderr)
        using (var batch = store.BeginBatch(parallelism: 1))
        {
            // Every object of the record (outputs, request, policy and the manifest naming them) is staged and made
            // durable together: two syncfs calls instead of a file and a folder flush per new object.
            var stdoutPut = outcome.Stdout.Store(batch);
            var stderrPut = outcome.Stderr.Store(batch);
            var (files, missing, skipped, outputReasons) = CaptureOutputs(plan, batch, store, cancel);
            foreach (var r in outputReasons) options.Output.Warning(r);
            var policyPut = batch.PutBytes(policyBytes);
            var requestPut = batch.PutBytes(requestBytes);

            var result = new ExecResult
            {
                HashAlgorithm = hash.Algorithm,
                RequestDigest = requestDigest,
                ExitCode = outcome.ExitCode,
                Signal = outcome.Signal,
                TimedOut = outcome.TimedOut,
                StdoutDigest = stdoutPut.Hash,
                StdoutBytes = stdoutPut.Size,
                StdoutTruncated = outcome.Stdout.Truncated,
                StderrDigest = stderrPut.Hash,
                StderrBytes = stderrPut.Size,
                StderrTruncated = outcome.Stderr.Truncated,
                OutputFiles = files,
                MissingOutputs = missing,
                SkippedOutputs = skipped,
                InputDigests = inputDigests,
                PolicyDigest = policyPut.Hash,
                RequestBlobDigest = requestPut.Hash,
                Sandbox = new SandboxReport
                {
                    Enforced = plan.Enforced.ToArray(), NotEnforced = plan.NotEnforced.ToArray(),
                    Filesystem = plan.FilesystemInForce, Seccomp = plan.Enforces(Controls.SeccompBpf),
                },
                CommandDigest = CommandDigests.Of(plan.CommandPath, hash, cancel),
                DeterminismConfidence = Confidence(plan, outcome.TimedOut, hash.IsFallback, outputReasons, outcome.ExtraReasons),
                DurationMs = (long)sw.Elapsed.TotalMilliseconds,
                StartedAt = started.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
                Request = request,
                CasRoot = store.Root,
            };
            result.ResultDigest = result.ComputeDigest(hash);

            // The result digest covers every blob the manifest names (outputs, request, policy), so an identical
            // rerun is already recorded: its ref keeps pointing at the first run's manifest (whose wall-clock fields
            // are that run's) and nothing is written. Otherwise the manifest and its ref are written durably.
            var refName = "results/" + result.ResultDigest;
            if (store.GetRef(refName) is { } recorded && store.Contains(recorded))
            {
                batch.Commit();
                result.ManifestDigest = recorded;
            }
            else
            {
                var refs = new List<string> { stdoutPut.Hash, stderrPut.Hash, policyPut.Hash, requestPut.Hash };
                refs.AddRange(files.Select(f => f.Digest));
                using var body = JsonDocument.Parse(result.ToJson(indented: false));
                // Every object the manifest names is in this batch (new, or existing and freshened by the put), so
                // they become visible together with it; the ref is written only after all of them are durable.
                var manifest = batch.PutBytes(new CasManifest
                {
                    Kind = "exec_result",
                    References = refs.Distinct(StringComparer.Ordinal).ToArray(),
                    Body = body.RootElement.Clone(),
                }.ToJsonBytes());
                batch.Commit();
                store.SetRef(refName, manifest.Hash);
                result.ManifestDigest = manifest.Hash;
                Audit.AuditLog.Append(store, Audit.AuditActions.ExecRecorded, new[] { result.ResultDigest, result.RequestDigest, manifest.Hash }, // [audit]
                    new Dictionary<string, object?> { ["ref"] = refName, ["exit_code"] = result.ExitCode });
            }
            if (options.IncludeOutput)
            {
                result.StdoutText = Encoding.UTF8.GetString(store.ReadAllBytes(stdoutPut.Hash, cancel));
                result.StderrText = Encoding.UTF8.GetString(store.ReadAllBytes(stderrPut.Hash, cancel));
            }
            Metrics.MetricsRegistry.Add(Metrics.Counter.ExecTotal);
            Metrics.MetricsRegistry.Add(Metrics.Counter.ExecDurationMsTotal, result.DurationMs);
            if (result.ExitCode != 0 || result.Signal is not null) Metrics.MetricsRegistry.Add(Metrics.Counter.ExecFailed);
            if (result.TimedOut) Metrics.MetricsRegistry.Add(Metrics.Counter.ExecTimedOut);
            return result;
        }
    }

    /// <summary>
    /// <c>high</c> only for a <c>hermetic</c> run with the network denied, every requested control enforced, nothing
    /// stochastic declared and the run finished; every deduction is a typed <see cref="ConfidencePenalty"/> with a
    /// stable reason (docs/CONTRACT.md).
    /// </summary>
    public static DeterminismConfidence Confidence(ExecPlan plan, bool timedOut, bool hashFallback, IReadOnlyList<string> outputReasons, IReadOnlyList<string> extra)
    {
        var policy = plan.Request.Policy;
        var penalties = new List<ConfidencePenalty>();
        // One missing mechanism is charged once: when the files could not be isolated, HostFilesystem below covers both
        // of the file-system controls the request asked for (their reasons stay listed).
        var hostFiles = plan.FilesystemInForce == FilesystemView.Host;
        penalties.AddRange(plan.Gaps.Select(g =>
            hostFiles && g.Control is Controls.FilesystemIsolation or Controls.WorkspaceConfinement ? new ConfidencePenalty(g.Reason!, 0)
            : g.Requested ? ConfidencePenalty.RequestedControlMissing(g.Reason!) : ConfidencePenalty.DefaultControlMissing(g.Reason!)));
        penalties.AddRange(plan.Violations.Select(ConfidencePenalty.PolicyProblem));
        penalties.AddRange(outputReasons.Concat(extra).Select(ConfidencePenalty.RunProblem));
        penalties.AddRange(plan.FilesystemInForce switch
        {
            FilesystemView.Host => new[] { ConfidencePenalty.HostFilesystem },
            FilesystemView.Workspace => new[] { ConfidencePenalty.WorkspaceFilesystem },
            _ => Array.Empty<ConfidencePenalty>(),
        });
        if (!policy.DenyNetwork) penalties.Add(ConfidencePenalty.NetworkAllowed);
        if (!policy.Deterministic) penalties.Add(ConfidencePenalty.NotDeterministic);
        if (timedOut) penalties.Add(ConfidencePenalty.TimedOut);
        if (hashFallback) penalties.Add(ConfidencePenalty.HashFallback);
        if (policy.Stochastic) penalties.Add(ConfidencePenalty.Stochastic);
        var score = 1.0 - penalties.Sum(p => p.Deduction);
        if (policy.Stochastic) score = Math.Min(score, 0.3);
        score = Math.Round(Math.Clamp(score, 0, 1), 2);
        var level = policy.Stochastic || score < 0.5 ? "best_effort" : penalties.Count == 0 ? "high" : "medium";
        return new DeterminismConfidence { Level = level, Score = score, Reasons = penalties.Select(p => p.Reason).ToArray() };
    }

    private static (OutputFileDigest[] Files, string[] Missing, SkippedOutput[] Skipped, List<string> Reasons) CaptureOutputs(
        ExecPlan plan, CasWriteBatch batch, CasStore store, CancellationToken cancel)
    {
        var files = new List<OutputFileDigest>();
        var missing = new List<string>();
        var skipped = new List<SkippedOutput>();
        var reasons = new List<string>();
        var root = plan.WorkspaceRoot;
        var maxBytes = plan.Request.Policy.EffectiveMaxOutputFileBytes;

        void CaptureFile(string real, string rel, bool declared)
        {
            var outcome = OutputFileCapture.Capture(real, rel, maxBytes, batch, store, cancel);
            if (outcome.Put is { } put) files.Add(new OutputFileDigest { Path = rel, Digest = put.Hash, Bytes = put.Size });
            else if (outcome.Skipped is { } skip)
            {
                skipped.Add(skip);
                reasons.Add($"output '{rel}' was not captured: {skip.Reason} ({skip.Detail})");
            }
            else if (declared) missing.Add(rel);
        }

        foreach (var output in plan.Request.Outputs)
        {
            var lexical = Path.GetFullPath(Path.Combine(root, output));
            var real = WorkspacePaths.RealPath(lexical);
            if (!WorkspacePaths.IsWithin(root, real))
            {
                missing.Add(output);
                reasons.Add($"output '{output}' resolves outside the workspace after the run (symlink); it was not captured");
                continue;
            }
            if (Directory.Exists(real))
            {
                foreach (var f in Directory.EnumerateFiles(real, "*", SearchOption.AllDirectories))
                {
                    var fr = WorkspacePaths.RealPath(f);
                    var rel = ExecPlan.Relative(root, Path.Combine(lexical, Path.GetRelativePath(real, f)));
                    if (!WorkspacePaths.IsWithin(root, fr))
                    {
                        reasons.Add($"output '{rel}' resolves outside the workspace (symlink); it was not captured");
                        continue;
                    }
                    CaptureFile(fr, rel, declared: false);
                }
            }
            else if (File.Exists(real)) CaptureFile(real, ExecPlan.Relative(root, lexical), declared: true);
            else missing.Add(output);
        }
        var sorted = files.GroupBy(f => f.Path, StringComparer.Ordinal).Select(g => g.First()).OrderBy(f => f.Path, StringComparer.Ordinal).ToArray();
        var skippedSorted = skipped.GroupBy(f => f.Path, StringComparer.Ordinal).Select(g => g.First()).OrderBy(f => f.Path, StringComparer.Ordinal).ToArray();
        return (sorted, missing.Distinct().Order(StringComparer.Ordinal).ToArray(), skippedSorted, reasons);
    }
}
