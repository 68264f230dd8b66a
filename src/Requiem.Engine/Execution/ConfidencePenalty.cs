namespace Requiem.Engine.Execution;

/// <summary>One deduction from a run's determinism confidence: a stable reason and the points it costs.</summary>
public sealed record ConfidencePenalty(string Reason, double Deduction)
{
    /// <summary>Files outside the workspace were readable: the result may depend on inputs the request did not declare.</summary>
    public static readonly ConfidencePenalty WorkspaceFilesystem = new(
        "policy.filesystem is workspace: host files outside the workspace are readable, so the result may depend on undeclared inputs", 0.1);

    /// <summary>No file-system isolation at all (policy, or this machine could not apply it).</summary>
    public static readonly ConfidencePenalty HostFilesystem = new(
        "no file-system isolation (policy.filesystem is host, or it could not be enforced): the command can read and write host files outside its workspace", 0.3);

    public static readonly ConfidencePenalty NetworkAllowed = new(
        "policy.deny_network is false: the command could read from the network, an undeclared input", 0.1);

    public static readonly ConfidencePenalty NotDeterministic = new("policy.deterministic is false: the request does not ask for a reproducible run", 0.2);
    public static readonly ConfidencePenalty TimedOut = new("the run timed out, so its outputs depend on timing", 0.3);
    public static readonly ConfidencePenalty HashFallback = new("digests use the SHA-256 fallback, not BLAKE3", 0.2);
    public static readonly ConfidencePenalty Stochastic = new(
        "the request declares stochastic steps (policy.stochastic, e.g. an LLM call): classified best_effort", 0);

    /// <summary>A control the request asked for could not be enforced here (reason: the control and why).</summary>
    public static ConfidencePenalty RequestedControlMissing(string reason) => new(reason, 0.25);
    /// <summary>A control that is always wanted (process_tree_kill, job_objects) could not be enforced here.</summary>
    public static ConfidencePenalty DefaultControlMissing(string reason) => new(reason, 0.1);
    /// <summary>A problem with the request under its policy (a denylisted explicit variable, ...).</summary>
    public static ConfidencePenalty PolicyProblem(string reason) => new(reason, 0.1);
    /// <summary>Something the run did that makes its record less complete (an output not captured, a straggler killed).</summary>
    public static ConfidencePenalty RunProblem(string reason) => new(reason, 0.1);
}
