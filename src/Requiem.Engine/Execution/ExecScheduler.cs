namespace Requiem.Engine.Execution;

/// <summary>How a batch of requests is dispatched: results are always returned in input order.</summary>
public enum SchedulerMode
{
    /// <summary>Strict FIFO, one worker: request n+1 starts after request n finished.</summary>
    Repro,
    /// <summary>A pool of workers (ThrottleLimit); results still come back in input order.</summary>
    Turbo,
}

/// <summary>One request's outcome in a batch: a result, or the typed error that stopped it.</summary>
public sealed class ExecOutcome
{
    public required int Index { get; init; }
    public ExecResult? Result { get; init; }
    public Exception? Error { get; init; }
}

public static class ExecScheduler
{
    /// <summary>
    /// Runs every job and yields outcomes in input order on the caller's thread (so a cmdlet can WriteObject).
    /// Repro runs each job on the calling thread in order; Turbo keeps up to <paramref name="throttle"/> jobs running.
    /// </summary>
    public static IEnumerable<ExecOutcome> Run(IReadOnlyList<Func<CancellationToken, Task<ExecResult>>> jobs, SchedulerMode mode, int throttle, CancellationToken cancel)
    {
        if (RunsOnCallingThread(mode, jobs.Count, throttle))
        {
            for (var i = 0; i < jobs.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                yield return Execute(i, jobs[i], cancel).GetAwaiter().GetResult();
            }
            yield break;
        }

        using var gate = new SemaphoreSlim(throttle);
        var tasks = new Task<ExecOutcome>[jobs.Count];
        for (var i = 0; i < jobs.Count; i++)
        {
            var index = i;
            tasks[i] = Task.Run(async () =>
            {
                await gate.WaitAsync(cancel).ConfigureAwait(false);
                try { return await Execute(index, jobs[index], cancel).ConfigureAwait(false); }
                finally { gate.Release(); }
            }, CancellationToken.None);
        }
        for (var i = 0; i < tasks.Length; i++)
        {
            ExecOutcome outcome;
            try
            {
                outcome = tasks[i].GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                Task.WaitAll(tasks.Where(t => !t.IsCompleted).ToArray<Task>(), TimeSpan.FromSeconds(10));
                throw;
            }
            yield return outcome;
        }
    }

    /// <summary>Whether <see cref="Run"/> runs the jobs one after another on the calling thread (which then blocks for each).</summary>
    public static bool RunsOnCallingThread(SchedulerMode mode, int jobs, int throttle) =>
        mode == SchedulerMode.Repro || jobs <= 1 || throttle <= 1;

    private static async Task<ExecOutcome> Execute(int index, Func<CancellationToken, Task<ExecResult>> job, CancellationToken cancel)
    {
        try
        {
            return new ExecOutcome { Index = index, Result = await job(cancel).ConfigureAwait(false) };
        }
        catch (RequiemException ex)
        {
            return new ExecOutcome { Index = index, Error = ex };
        }
    }
}
