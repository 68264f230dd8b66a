namespace Requiem.Engine.Hashing;

/// <summary>
/// Test hook: counts the threads that hash at the same time for the code that installed the probe. It flows with the
/// execution context into the pool threads that code starts (store verification's workers, the subtree helpers of a
/// large input), so tests running side by side do not see each other. A thread counts once however deeply its hashing
/// nests (a verification worker that hashes a large object subtree-parallel is one thread, its helpers are more).
/// </summary>
internal sealed class HashConcurrencyProbe : IDisposable
{
    private static readonly AsyncLocal<HashConcurrencyProbe?> s_current = new();
    [ThreadStatic] private static int t_depth;

    private int _active;
    private int _peak;
    private int _helpersStarted;

    private HashConcurrencyProbe() { }

    /// <summary>Installs a probe for the calling code (and what it starts) until disposed.</summary>
    public static HashConcurrencyProbe Install() => s_current.Value = new HashConcurrencyProbe();

    /// <summary>The most threads seen hashing at once.</summary>
    public int Peak => Volatile.Read(ref _peak);

    /// <summary>Subtree helper tasks started (each may find no work left when it runs).</summary>
    public int HelpersStarted => Volatile.Read(ref _helpersStarted);

    /// <summary>The calling thread starts hashing; pair with <see cref="Exit"/>. Costs one async-local read when no probe is installed.</summary>
    public static HashConcurrencyProbe? Enter()
    {
        var probe = s_current.Value;
        if (probe is null) return null;
        if (t_depth++ == 0)
        {
            var active = Interlocked.Increment(ref probe._active);
            int peak;
            while ((peak = Volatile.Read(ref probe._peak)) < active && Interlocked.CompareExchange(ref probe._peak, active, peak) != peak) { }
        }
        return probe;
    }

    public static void Exit(HashConcurrencyProbe? probe)
    {
        if (probe is null) return;
        if (--t_depth == 0) Interlocked.Decrement(ref probe._active);
    }

    public static void CountHelpers(int helpers)
    {
        if (helpers > 0 && s_current.Value is { } probe) Interlocked.Add(ref probe._helpersStarted, helpers);
    }

    public void Dispose()
    {
        if (ReferenceEquals(s_current.Value, this)) s_current.Value = null;
    }
}
