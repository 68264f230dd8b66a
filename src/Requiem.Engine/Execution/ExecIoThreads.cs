namespace Requiem.Engine.Execution;

/// <summary>
/// Long-lived threads for the blocking pipe reads and writes of running commands (two or three per run). They do not
/// belong on the thread pool (blocked reads would starve it on a 2-core machine), and starting new threads for every
/// run costs more than the short runs themselves in a Turbo batch. Idle threads wait for work and end after
/// <see cref="IdleTimeout"/>.
/// </summary>
/// <remarks>
/// Each item is handed to one idle thread directly (or to a new thread), so no item ever waits behind another's
/// blocking read. An idle thread waits on its own event without spinning: a spinning wait (as in BlockingCollection)
/// burnt a few hundred sched_yield calls per run on every finished thread, on the cores the run's own result
/// recording needs.
/// </remarks>
internal static class ExecIoThreads
{
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(20);

    private sealed class Worker
    {
        public readonly ManualResetEventSlim Wake = new(false, spinCount: 0);
        public Action? Body;
        public TaskCompletionSource? Done;
    }

    private static readonly object s_gate = new();
    /// <summary>Threads waiting for work, most recently idle last (it is the one most likely still cached).</summary>
    private static readonly List<Worker> s_idle = new();

    public static Task Run(Action body)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Worker? worker = null;
        lock (s_gate)
        {
            if (s_idle.Count > 0)
            {
                worker = s_idle[^1];
                s_idle.RemoveAt(s_idle.Count - 1);
            }
        }
        if (worker is null)
        {
            var fresh = new Worker { Body = body, Done = done };
            new Thread(() => Loop(fresh), 256 * 1024) { IsBackground = true, Name = "requiem-exec-io" }.Start();
        }
        else
        {
            worker.Body = body;
            worker.Done = done;
            worker.Wake.Set();
        }
        return done.Task;
    }

    private static void Loop(Worker worker)
    {
        while (true)
        {
            var body = worker.Body!;
            var done = worker.Done!;
            worker.Body = null;
            worker.Done = null;
            try
            {
                body();
                done.SetResult();
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
            worker.Wake.Reset();
            lock (s_gate) s_idle.Add(worker);
            if (worker.Wake.Wait(IdleTimeout)) continue;
            lock (s_gate)
            {
                // Timed out: leave unless a Run claimed this thread meanwhile (its item is then on the way).
                if (s_idle.Remove(worker))
                {
                    worker.Wake.Dispose();
                    return;
                }
            }
            worker.Wake.Wait();
        }
    }
}
