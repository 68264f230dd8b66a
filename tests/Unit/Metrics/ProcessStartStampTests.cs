using Requiem.Engine.Metrics;
using Xunit;

namespace Requiem.Tests.Metrics;

public sealed class ProcessStartStampTests
{
    [Fact]
    public void IsExactAcrossReadingsAndNullForAMissingProcess()
    {
        var first = MetricsRegistry.ProcessStartStamp(Environment.ProcessId);
        Assert.NotNull(first);
        for (var i = 0; i < 20; i++) Assert.Equal(first, MetricsRegistry.ProcessStartStamp(Environment.ProcessId));
        Assert.Null(MetricsRegistry.ProcessStartStamp(int.MaxValue - 1));
    }
}
