namespace Requiem.Engine.Audit;

/// <summary>The action names the module writes into audit logs (docs/CONTRACT.md, "Audit log").</summary>
public static class AuditActions
{
    /// <summary>An execution was recorded in the store (its result manifest and ref written).</summary>
    public const string ExecRecorded = "exec.recorded";
    /// <summary>Objects were added to the store by a put (only objects that were new are listed).</summary>
    public const string CasPut = "cas.put";
    public const string RefSet = "ref.set";
    public const string RefRemoved = "ref.removed";
    /// <summary>A garbage collection that removed something; digests are the removed objects.</summary>
    public const string GcRun = "gc.run";
    public const string ProofCreated = "proof.created";
    public const string ProofImported = "proof.imported";
    /// <summary>An action cache entry was written (called by the action cache).</summary>
    public const string CacheWritten = "cache.written";
    /// <summary>
    /// Written by the log itself before an append when the head anchor was missing or unreadable while the log had
    /// entries: the log keeps the evidence that its anchor was lost, and verification reports it.
    /// </summary>
    public const string AnchorReset = "audit.anchor_reset";
}
