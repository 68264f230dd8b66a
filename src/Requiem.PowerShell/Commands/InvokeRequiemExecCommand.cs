using System.Collections;
using System.Management.Automation;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Execution;
using Requiem.Engine.Json;
using Requiem.Engine.Sandbox;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Invoke-RequiemExec: the Requiem CLI's <c>exec run</c> — run requests in the sandbox, record everything in the CAS.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "RequiemExec", DefaultParameterSetName = RequestSet, SupportsShouldProcess = true)]
[OutputType(typeof(ExecResult))]
public sealed class InvokeRequiemExecCommand : RequiemStoreCmdlet
{
    private const string RequestSet = "Request";
    private const string CommandSet = "Command";

    private readonly List<ExecRequest> _pending = new();
    private readonly List<ExecResult> _written = new();
    private CasStore? _store;
    private SchedulerMode? _mode;

    /// <summary>A request: path to a JSON file, JSON text, a hashtable with the Requiem CLI's snake_case fields, or an ExecRequest.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = RequestSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object? Request { get; set; }

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = CommandSet)]
    [ValidateNotNullOrEmpty]
    public string FilePath { get; set; } = "";

    [Parameter(Position = 1, ParameterSetName = CommandSet)]
    [AllowEmptyCollection]
    [AllowEmptyString]
    [Alias("Args")]
    public string[] ArgumentList { get; set; } = Array.Empty<string>();

    /// <summary>The workspace root (default: the current file-system location).</summary>
    [Parameter(ParameterSetName = CommandSet)]
    [Alias("WorkspaceRoot")]
    public string? WorkingDirectory { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public Hashtable? Environment { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(1, ExecRequest.MaxTimeoutMs)]
    public long TimeoutMs { get; set; } = ExecRequest.DefaultTimeoutMs;

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(0, ExecRequest.MaxMaxOutputBytes)]
    public long MaxOutputBytes { get; set; } = ExecRequest.DefaultMaxOutputBytes;

    [Parameter(ParameterSetName = CommandSet)]
    public string? Stdin { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public string[] InputPath { get; set; } = Array.Empty<string>();

    [Parameter(ParameterSetName = CommandSet)]
    public string[] CapturePath { get; set; } = Array.Empty<string>();

    [Parameter(ParameterSetName = CommandSet)]
    public SwitchParameter DenyNetwork { get; set; }

    /// <summary>policy.filesystem: what of the host's files the command sees (Workspace when not given).</summary>
    [Parameter(ParameterSetName = CommandSet)]
    [ValidateSet("Host", "Workspace", "Hermetic")]
    public string? Filesystem { get; set; }

    /// <summary>policy.readonly_paths: host paths visible read-only in Hermetic mode (replaces the default toolchain list).</summary>
    [Parameter(ParameterSetName = CommandSet)]
    public string[]? ReadOnlyPath { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(1, long.MaxValue)]
    public long MaxMemoryBytes { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(1, long.MaxValue)]
    public long MaxCpuSeconds { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(1, long.MaxValue)]
    public long MaxOpenFiles { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(1, ExecPolicy.MaxMaxProcesses)]
    public long MaxProcesses { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateRange(0, ExecPolicy.MaxMaxOutputFileBytes)]
    public long MaxOutputFileBytes { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public string[] EnvAllowlist { get; set; } = Array.Empty<string>();

    [Parameter(ParameterSetName = CommandSet)]
    public string[] EnvDenylist { get; set; } = Array.Empty<string>();

    /// <summary>policy.mode = strict: refuse to run when a requested control cannot be enforced.</summary>
    [Parameter(ParameterSetName = CommandSet)]
    public SwitchParameter Strict { get; set; }

    /// <summary>policy.stochastic = true: the command has LLM / sampling steps.</summary>
    [Parameter(ParameterSetName = CommandSet)]
    public SwitchParameter Stochastic { get; set; }

    /// <summary>Write the result JSON here (an array when several requests ran).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? OutFile { get; set; }

    [Parameter]
    public SchedulerMode Scheduler { get; set; } = SchedulerMode.Turbo;

    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = System.Environment.ProcessorCount;

    [Parameter]
    public string? Cas { get; set; }

    /// <summary>Also return the captured stdout/stderr as text (StdoutText/StderrText, bounded by max_output_bytes).</summary>
    [Parameter]
    public SwitchParameter IncludeOutput { get; set; }

    /// <summary>requiem (default), external (alias rust): an engine speaking the Requiem CLI's contract, or dual: both, compared.</summary>
    [Parameter]
    [ValidateSet("requiem", "external", "rust", "dual")]
    public string Engine { get; set; } = "requiem";

    [Parameter]
    public SwitchParameter AllowHashFallback { get; set; }

    /// <summary>The external engine (-Engine external/dual); else $env:REQUIEM_EXTERNAL_ENGINE, else engine.external_path.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? EnginePath { get; set; }

    /// <summary>-Engine dual: the share of requests (0..1, by request digest) also run on the external engine.</summary>
    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public double DualSampleRate { get; set; } = 1.0;

    private DualEngineSelection? _dual;

    /// <summary>The action cache: Off (the default, or cache.mode in the config), Read (answer from it), ReadWrite (also record cacheable results).</summary>
    [Parameter]
    public Requiem.Engine.ActionCache.ActionCacheMode Cache { get; set; }

    private Requiem.Engine.ActionCache.ActionCacheMode _cacheMode;
    private TimeSpan _cacheMaxAge;

    protected override void BeginProcessing()
    {
        WarnIfLauncherUnusable();
        _store = OpenStore(Cas, AllowHashFallback);
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Scheduler))) _mode = Scheduler;
        _dual = DualEngineSelection.Select(this, Engine, EnginePath, MyInvocation.BoundParameters.ContainsKey(nameof(DualSampleRate)) ? DualSampleRate : null, Config);
        _cacheMode = MyInvocation.BoundParameters.ContainsKey(nameof(Cache)) ? Cache : Config.Cache.Mode;
        _cacheMaxAge = TimeSpan.FromDays(Config.Cache.MaxAgeDays);
        if (_cacheMode != Requiem.Engine.ActionCache.ActionCacheMode.Off && (_dual!.IsDual || _dual.IsExternalOnly))
            WriteVerbose($"action cache: not used with -Engine {Engine} (every request runs).");
    }

    protected override void ProcessRecord()
    {
        var request = ParameterSetName == CommandSet ? BuildFromParameters() : TryRun(() => ExecInput.ToRequest(Request, Config, ResolveNewPath));
        if (request is null) return;
        if (request.Policy.IsStrict)
        {
            // Strict: every requested control must be enforceable, checked before anything runs.
            var plan = TryRun(() => ExecPlan.Create(request, SandboxProbe.Current));
            if (plan is null) return;
            if (plan.Violations.Count > 0)
                ThrowTerminatingError(ToErrorRecord(new RequiemException("PolicyNotEnforceable", ErrorKind.SecurityError,
                    "The request's strict policy cannot be met on this machine, so nothing was run: " + string.Join("; ", plan.Violations) + ".",
                    string.Join(",", plan.RequestedButMissing))));
        }
        if (!ShouldProcess(Describe(request), "Run in the Requiem sandbox")) return;
        _mode ??= request.Policy.SchedulerMode == "repro" ? SchedulerMode.Repro : SchedulerMode.Turbo;
        if (_mode == SchedulerMode.Repro)
        {
            Emit(RunOne(request));
        }
        else
        {
            _pending.Add(request);
        }
    }

    protected override void EndProcessingCore()
    {
        if (_pending.Count > 0)
        {
            var onThisThread = ExecScheduler.RunsOnCallingThread(SchedulerMode.Turbo, _pending.Count, ThrottleLimit);
            var jobs = _pending.Select(r => (Func<CancellationToken, Task<ExecResult>>)(ct => RunEngineAsync(r, onThisThread, ct))).ToList();
            IEnumerable<ExecOutcome> outcomes = ExecScheduler.Run(jobs, SchedulerMode.Turbo, ThrottleLimit, CancellationToken);
            try
            {
                var done = 0;
                var throttle = new Requiem.Engine.Diagnostics.ProgressThrottle(TimeSpan.FromMilliseconds(250), checkEvery: 4);
                foreach (var o in outcomes)
                {
                    if (o.Error is RequiemException ex) WriteError(ToErrorRecord(ex));
                    else if (o.Result is not null) Emit(o.Result);
                    done++;
                    if (_pending.Count > 1 && throttle.ShouldReport())
                        WriteProgress(new ProgressRecord(2, "Invoke-RequiemExec (Turbo)", $"{done} of {_pending.Count}") { PercentComplete = done * 100 / _pending.Count });
                }
            }
            catch (OperationCanceledException) when (CancellationToken.IsCancellationRequested)
            {
                throw new PipelineStoppedException();
            }
            if (_pending.Count > 1) CompleteProgress(2, "Invoke-RequiemExec (Turbo)");
        }
        if (OutFile is not null && _written.Count > 0)
        {
            var path = ResolveNewPath(OutFile);
            // Confirmed with the run itself (-WhatIf runs nothing, so there is nothing to write).
            JsonNode doc = _written.Count == 1 ? DualEngineSelection.ToOutFileNode(_written[0]) : new JsonArray(_written.Select(r => (JsonNode?)DualEngineSelection.ToOutFileNode(r)).ToArray());
            Run(() => { Requiem.Engine.IO.AtomicFile.WriteAllText(path, doc.ToJsonString(JsonContract.Indented) + "\n"); return path; });
        }
    }

    /// <summary>The command line as -WhatIf/-Confirm show it (display only: the argv is never re-joined to run).</summary>
    private static string Describe(ExecRequest request) =>
        string.Join(' ', new[] { request.Command }.Concat(request.Argv).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) ? "'" + a.Replace("'", "''") + "'" : a))
        + $" (in {request.WorkspaceRoot})";

    private ExecResult? RunOne(ExecRequest request)
    {
        try
        {
            return RunEngineAsync(request, onCallingThread: true, CancellationToken).GetAwaiter().GetResult();
        }
        catch (RequiemException ex)
        {
            WriteError(ToErrorRecord(ex));
            return null;
        }
        catch (OperationCanceledException) when (CancellationToken.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <param name="onCallingThread">The pipeline thread blocks for this run: the engine waits for it and records it on this thread.</param>
    private async Task<ExecResult> RunEngineAsync(ExecRequest request, bool onCallingThread, CancellationToken cancel)
    {
        var output = new QueuedEngineOutput();
        var options = new ExecOptions { Store = _store!, IncludeOutput = IncludeOutput, Output = output, OnCallingThread = onCallingThread };
        var result = _dual!.IsExternalOnly
            ? await _dual.RunExternalAsync(request, _store!, output, cancel).ConfigureAwait(false)
            : _dual.IsDual
                ? await ExecRunner.RunAsync(request, options, cancel).ConfigureAwait(false)
                : await Requiem.Engine.ActionCache.ActionCacheRunner.RunAsync(request, options, _cacheMode, _cacheMaxAge, cancel).ConfigureAwait(false);
        if (_dual.IsDual) result.DualRun = await _dual.CompareAsync(request, result, _store!, output, cancel).ConfigureAwait(false);
        _queued[result] = output;
        return result;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<ExecResult, QueuedEngineOutput> _queued = new(ReferenceEqualityComparer.Instance);

    private void Emit(ExecResult? result)
    {
        if (result is null) return;
        // Warnings from the engine are replayed here, on the pipeline thread.
        if (_queued.TryRemove(result, out var output)) output.WriteTo(this);
        if (result.DualRun is { } dual) DualEngineSelection.Report(this, dual);
        if (OutFile is not null) _written.Add(result);
        WriteObject(result);
    }

    private ExecRequest? BuildFromParameters()
    {
        var root = WorkingDirectory is null ? SessionState.Path.CurrentFileSystemLocation.ProviderPath : ResolveNewPath(WorkingDirectory);
        var policy = new JsonObject();
        var bound = MyInvocation.BoundParameters;
        if (Strict) policy["mode"] = "strict";
        if (Stochastic) policy["stochastic"] = true;
        if (bound.ContainsKey(nameof(DenyNetwork))) policy["deny_network"] = DenyNetwork.IsPresent;
        if (Filesystem is not null) policy["filesystem"] = Filesystem.ToLowerInvariant();
        if (ReadOnlyPath is not null) policy["readonly_paths"] = ExecInput.ToJsonNode(ReadOnlyPath, "$.policy.readonly_paths");
        if (bound.ContainsKey(nameof(MaxMemoryBytes))) policy["max_memory_bytes"] = MaxMemoryBytes;
        if (bound.ContainsKey(nameof(MaxCpuSeconds))) policy["max_cpu_seconds"] = MaxCpuSeconds;
        if (bound.ContainsKey(nameof(MaxOpenFiles))) policy["max_open_files"] = MaxOpenFiles;
        if (bound.ContainsKey(nameof(MaxProcesses))) policy["max_processes"] = MaxProcesses;
        if (bound.ContainsKey(nameof(MaxOutputFileBytes))) policy["max_output_file_bytes"] = MaxOutputFileBytes;
        if (bound.ContainsKey(nameof(Scheduler))) policy["scheduler_mode"] = Scheduler == SchedulerMode.Repro ? "repro" : "turbo";
        if (EnvAllowlist.Length > 0) policy["env_allowlist"] = ExecInput.ToJsonNode(EnvAllowlist, "$.policy.env_allowlist");
        if (EnvDenylist.Length > 0) policy["env_denylist"] = ExecInput.ToJsonNode(EnvDenylist, "$.policy.env_denylist");
        var o = new JsonObject
        {
            ["command"] = FilePath,
            ["argv"] = ExecInput.ToJsonNode(ArgumentList ?? Array.Empty<string>(), "$.argv"),
            ["workspace_root"] = root,
            ["timeout_ms"] = TimeoutMs,
            ["max_output_bytes"] = MaxOutputBytes,
            ["policy"] = policy,
        };
        if (Environment is not null) o["env"] = ExecInput.ToJsonNode(Environment, "$.env");
        if (Stdin is not null) o["stdin"] = Stdin;
        if (InputPath.Length > 0) o["inputs"] = ExecInput.ToJsonNode(InputPath, "$.inputs");
        if (CapturePath.Length > 0) o["outputs"] = ExecInput.ToJsonNode(CapturePath, "$.outputs");
        return TryRun(() =>
        {
            Requiem.Engine.Json.StrictText.EnsureWellFormed(o, "$");
            return ExecRequestParser.Parse(o.ToJsonString(), Config, FilePath);
        });
    }
}
