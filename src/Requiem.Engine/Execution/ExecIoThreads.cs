using System.Collections.Concurrent;

namespace Requiem.Engine.Execution;

/// <summary>
/// Long-lived threads for the blocking pipe reads and writes of running commands (two or three per run). They do not
/// belong on the thread pool (blocked reads would starve it on a 2-core machine), and starting new threads for every
/// run costs more than the short runs themselves in a Turbo batch. Idle threads wait for work and end after
/// <see cref="IdleTimeout"/>.
/// </summary>
internal static class ExecIoThreads
{
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(20);

    private static readonly BlockingCollection<(Action Body, TaskCompletionSource Done)> s_work = new(new ConcurrentQueue<(Action, TaskCompletionSource)>());
    /// <summary>Threads waiting for work that no queued item has claimed yet.</summary>
    private static int s_idle;

    public static Task Run(Action body)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        s_work.Add((body, done));
        // Claim an idle thread for this item, or start one. Every claim matches one queued item, so a claimed thread
        // always finds work (see Worker).
        while (true)
        {
            var idle = Volatile.Read(ref s_idle);
            if (idle == 0)
            {
                new Thread(Worker, 256 * 1024) { IsBackground = true, Name = "requiem-exec-io" }.Start();
                break;
            }
            if (Interlocked.CompareExchange(ref s_idle, idle - 1, idle) == idle) break;
        }
        return done.Task;
    }

    private static void Worker()
    {
        while (true)
        {
            if (s_work.TryTake(out var item, IdleTimeout))
            {
                try
                {
                    item.Body();
                    item.Done.SetResult();
                }
                catch (Exception ex)
                {
                    item.Done.SetException(ex);
                }
                Interlocked.Increment(ref s_idle);
                continue;
            }
            // Timed out: leave only if no queued item has claimed this thread meanwhile.
            var idle = Volatile.Read(ref s_idle);
            if (idle > 0 && Interlocked.CompareExchange(ref s_idle, idle - 1, idle) == idle) return;
        }
    }
}
