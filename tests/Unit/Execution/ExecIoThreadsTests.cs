using Requiem.Engine.Execution;
using Xunit;

namespace Requiem.Tests.Execution;

public sealed class ExecIoThreadsTests
{
    [Fact]
    public async Task RunsEveryItemEvenWhenAllThreadsAreBlockedAndReusesIdleThreads()
    {
        // 16 items that all block until released: each needs its own thread, none may wait behind another.
        using var release = new ManualResetEventSlim(false);
        using var started = new CountdownEvent(16);
        var blocked = Enumerable.Range(0, 16).Select(_ => ExecIoThreads.Run(() => { started.Signal(); release.Wait(); })).ToArray();
        Assert.True(started.Wait(TimeSpan.FromSeconds(10)), "every blocking item got a thread");
        release.Set();
        await Task.WhenAll(blocked).WaitAsync(TimeSpan.FromSeconds(10));

        // Sequential items afterwards run on threads that already exist.
        var ids = new HashSet<int>();
        for (var i = 0; i < 50; i++)
        {
            await ExecIoThreads.Run(() => { lock (ids) ids.Add(Environment.CurrentManagedThreadId); }).WaitAsync(TimeSpan.FromSeconds(10));
        }
        Assert.True(ids.Count <= 25, $"threads were reused ({ids.Count} distinct for 50 items)");
    }

    [Fact]
    public async Task PassesAnExceptionToTheTask()
    {
        var t = ExecIoThreads.Run(() => throw new IOException("pipe broke"));
        await Assert.ThrowsAsync<IOException>(() => t.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}
