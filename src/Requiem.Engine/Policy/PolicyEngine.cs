using Requiem.Engine.Config;
using Requiem.Engine.Execution;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.Policy;

/// <summary>One control of the effective policy, with how (and whether) this machine enforces it.</summary>
public sealed class PolicyControl
{
    public required string Control { get; init; }
    public required string Setting { get; init; }
    /// <summary>enforced / partial / unsupported (probed), or "off" when the policy does not ask for it.</summary>
    public required string Enforcement { get; init; }
    public required string Mechanism { get; init; }
    public required string Detail { get; init; }
}

/// <summary>The Requiem CLI's <c>policy explain</c>: effective defaults (built-in + config sandbox.*) and every control.</summary>
public sealed class PolicyExplanation
{
    public required ExecPolicy EffectivePolicy { get; init; }
    public required string? ConfigPath { get; init; }
    public required long DefaultTimeoutMs { get; init; }
    public required long DefaultMaxOutputBytes { get; init; }
    public required IReadOnlyList<PolicyControl> Controls { get; init; }
    public required string StochasticClassification { get; init; }
    public required string ConfidenceRule { get; init; }
}

/// <summary>The Requiem CLI's <c>llm explain</c>: how LLM / stochastic workflows are treated.</summary>
public sealed class LlmModeExplanation
{
    public required string Mode { get; init; }
    public required string Declaration { get; init; }
    public required string ConfidenceLevel { get; init; }
    public required string Description { get; init; }
}

/// <summary>The Requiem CLI's <c>policy check</c>: a request checked against the policy and this machine.</summary>
public sealed class PolicyCheckResult
{
    public required bool Valid { get; init; }
    public required string[] Violations { get; init; }
    public required string[] Warnings { get; init; }
    public string? RequestDigest { get; init; }
    public string? Mode { get; init; }
    public string[] WouldEnforce { get; init; } = Array.Empty<string>();
    public string[] WouldNotEnforce { get; init; } = Array.Empty<string>();
    public DeterminismConfidence? ExpectedConfidence { get; init; }
}

public static class PolicyEngine
{
    public const string StochasticRule =
        "A request that declares policy.stochastic = true (an LLM call, sampling, random seeds it does not pin) is classified " +
        "best_effort: its determinism_confidence level is best_effort and its score at most 0.3, whatever the sandbox enforced. " +
        "Replays of such requests are expected to differ and are reported, not treated as errors.";

    public const string HighRule =
        "high only for a hermetic run (policy.filesystem = hermetic, enforced) with deny_network, every requested control " +
        "enforced, nothing stochastic declared, policy.deterministic true and the run finished within timeout_ms; each reason " +
        "in determinism_confidence.reasons names what lowered the score (workspace file system -0.1, no file-system isolation " +
        "-0.3, network allowed -0.1, requested control missing -0.25, always-wanted control missing -0.1, timeout -0.3, " +
        "deterministic=false -0.2). Below 0.5 the level is best_effort, otherwise medium.";

    public static PolicyExplanation Explain(RequiemConfig config, SandboxProbe? probe = null)
    {
        probe ??= SandboxProbe.Current;
        var p = new ExecPolicy { DenyNetwork = config.Sandbox.DenyNetwork, MaxMemoryBytes = config.Sandbox.MaxMemoryBytes };
        var list = new List<PolicyControl>();
        void Add(string control, string setting, bool on)
        {
            var cap = probe.Capabilities.FirstOrDefault(c => c.Name == control);
            list.Add(new PolicyControl
            {
                Control = control,
                Setting = setting,
                Enforcement = on ? cap?.Status ?? "unsupported" : "off",
                Mechanism = cap?.Mechanism ?? "none",
                Detail = cap?.Detail ?? "",
            });
        }
        Add(Sandbox.Controls.WorkspaceConfinement, $"filesystem {p.Filesystem} (default; not with host)", p.Filesystem != Sandbox.FilesystemView.Host);
        Add(Sandbox.Controls.CleanEnvironment, "env_allowlist [] / env_denylist [] (nothing inherited; TZ=UTC, LC_ALL=C)", true);
        Add(Sandbox.Controls.StdinClosed, "unless the request gives stdin", true);
        Add(Sandbox.Controls.OutputLimit, $"max_output_bytes {ExecRequest.DefaultMaxOutputBytes} (default); output files: regular, one link, " +
            $"max_output_file_bytes {ExecPolicy.DefaultMaxOutputFileBytes} (default)", true);
        Add(Sandbox.Controls.Timeout, $"timeout_ms {ExecRequest.DefaultTimeoutMs} (default)", true);
        Add(Sandbox.Controls.ProcessTreeKill, "always", true);
        Add(Sandbox.Controls.NetworkIsolation, $"deny_network {(p.DenyNetwork ? "true" : "false")}", p.DenyNetwork);
        Add(Sandbox.Controls.MemoryLimit, p.MaxMemoryBytes is { } m ? $"max_memory_bytes {m}" : "max_memory_bytes unset", p.MaxMemoryBytes is not null);
        Add(Sandbox.Controls.CpuLimit, "max_cpu_seconds unset (per request)", false);
        Add(Sandbox.Controls.OpenFilesLimit, "max_open_files unset (per request)", false);
        Add(Sandbox.Controls.ProcessLimit, "max_processes unset (per request)", false);
        if (probe.Platform == "windows") Add(Sandbox.Controls.JobObjects, "always", true);
        Add(Sandbox.Controls.SeccompBpf, $"seccomp {(p.Seccomp ? "true" : "false")} (default true)", p.Seccomp);
        Add(Sandbox.Controls.FilesystemIsolation, $"filesystem {p.Filesystem} (default)", p.Filesystem != Sandbox.FilesystemView.Host);
        return new PolicyExplanation
        {
            EffectivePolicy = p,
            ConfigPath = config.SourcePath,
            DefaultTimeoutMs = ExecRequest.DefaultTimeoutMs,
            DefaultMaxOutputBytes = ExecRequest.DefaultMaxOutputBytes,
            Controls = list,
            StochasticClassification = StochasticRule,
            ConfidenceRule = HighRule,
        };
    }

    public static IReadOnlyList<LlmModeExplanation> ExplainLlm() => new[]
    {
        new LlmModeExplanation
        {
            Mode = "deterministic", Declaration = "policy.stochastic = false (default), policy.deterministic = true",
            ConfidenceLevel = "high when every requested control is enforced",
            Description = "Plain commands. Same request → same result digest; a replay mismatch is a finding.",
        },
        new LlmModeExplanation
        {
            Mode = "stochastic", Declaration = "policy.stochastic = true",
            ConfidenceLevel = "best_effort (score ≤ 0.3)",
            Description = "LLM calls or other sampling. Runs in the same sandbox and is recorded in the CAS the same way; the " +
                          "result is marked best_effort so gates do not expect identical replays. Pin seeds / use cached " +
                          "responses as inputs to move such a step back to deterministic.",
        },
        new LlmModeExplanation
        {
            Mode = "non_deterministic", Declaration = "policy.deterministic = false",
            ConfidenceLevel = "medium at most",
            Description = "The author says the command is not expected to reproduce (timestamps, ordering). Recorded and " +
                          "replayable; differences are reported.",
        },
    };

    /// <summary>Checks a parsed request against its policy and this machine without running anything.</summary>
    public static PolicyCheckResult Check(ExecRequest request, Hashing.HashPrimitive hash, SandboxProbe? probe = null)
    {
        probe ??= SandboxProbe.Current;
        var violations = new List<string>();
        var warnings = new List<string>();
        var policy = request.Policy;
        foreach (var n in policy.EnvAllowlist.Where(a => ExecPlan.Matches(policy.EnvDenylist, a.TrimEnd('*'))))
            warnings.Add($"'{n}' is on both env_allowlist and env_denylist: the denylist wins");
        ExecPlan? plan = null;
        try
        {
            plan = ExecPlan.Create(request, probe);
        }
        catch (RequiemException ex)
        {
            violations.Add($"{ex.ErrorId}: {ex.Message}");
        }
        if (plan is not null)
        {
            foreach (var v in plan.Violations)
            {
                if (policy.IsStrict) violations.Add(v); else warnings.Add(v);
            }
            foreach (var r in plan.Reasons) warnings.Add(r);
        }
        if (policy.Stochastic) warnings.Add("the request declares stochastic steps: results will be best_effort");
        return new PolicyCheckResult
        {
            Valid = violations.Count == 0,
            Violations = violations.ToArray(),
            Warnings = warnings.Distinct().ToArray(),
            RequestDigest = request.ComputeDigest(hash),
            Mode = policy.Mode,
            WouldEnforce = plan?.Enforced.ToArray() ?? Array.Empty<string>(),
            WouldNotEnforce = plan?.NotEnforced.ToArray() ?? Array.Empty<string>(),
            ExpectedConfidence = plan is null ? null : ExecRunner.Confidence(plan, false, hash.IsFallback, Array.Empty<string>(), Array.Empty<string>()),
        };
    }
}
