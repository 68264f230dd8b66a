namespace Requiem.Engine.Diagnostics;

/// <summary>
/// The narrow channel through which long-running engine work talks to its host (a cmdlet, a test, a bench).
/// Implementations must be cheap: the engine calls <see cref="Progress"/> from hot loops, already throttled.
/// </summary>
public interface IEngineOutput
{
    void Progress(ProgressInfo progress);
    void Verbose(string message);
    void Warning(string message);
}

/// <summary>One progress report. <see cref="Total"/> is -1 when unknown.</summary>
public readonly record struct ProgressInfo(string Activity, string Status, long Done, long Total)
{
    public int Percent => Total > 0 ? (int)Math.Clamp(Done * 100 / Total, 0, 100) : -1;
}

/// <summary>An output that drops everything (engine default when no host listens).</summary>
public sealed class NullEngineOutput : IEngineOutput
{
    public static readonly NullEngineOutput Instance = new();
    public void Progress(ProgressInfo progress) { }
    public void Verbose(string message) { }
    public void Warning(string message) { }
}

/// <summary>
/// Lets a hot loop ask "should I report progress now?" a few times a second without a clock call per item:
/// the clock is read only every <c>checkEvery</c> calls.
/// </summary>
public sealed class ProgressThrottle
{
    private readonly long _intervalTicks;
    private readonly int _checkEvery;
    private long _nextTick;
    private int _calls;

    public ProgressThrottle(TimeSpan interval, int checkEvery = 64)
    {
        _intervalTicks = (long)(interval.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        _checkEvery = Math.Max(1, checkEvery);
        _nextTick = System.Diagnostics.Stopwatch.GetTimestamp() + _intervalTicks;
    }

    /// <summary>Default: at most four updates a second.</summary>
    public static ProgressThrottle Default() => new(TimeSpan.FromMilliseconds(250));

    public bool ShouldReport()
    {
        if (++_calls < _checkEvery) return false;
        _calls = 0;
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (now < _nextTick) return false;
        _nextTick = now + _intervalTicks;
        return true;
    }
}
