using System.Management.Automation;
using Requiem.Engine.Metrics;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>The output shape of Get-RequiemMetric.</summary>
public enum MetricFormat
{
    Object,
    Json,
    Prometheus,
}

/// <summary>Get-RequiemMetric: the Requiem CLI's <c>metrics --format json|prom</c>.</summary>
[Cmdlet(VerbsCommon.Get, "RequiemMetric")]
[OutputType(typeof(MetricsSnapshot), typeof(string))]
public sealed class GetRequiemMetricCommand : RequiemCmdlet
{
    /// <summary>Object (default), Json (snake_case document) or Prometheus (text exposition format 0.0.4).</summary>
    [Parameter(Position = 0)]
    public MetricFormat Format { get; set; } = MetricFormat.Object;

    protected override void EndProcessingCore()
    {
        var totals = MetricsRegistry.ReadTotals();
        switch (Format)
        {
            case MetricFormat.Json: WriteObject(totals.ToJson()); break;
            case MetricFormat.Prometheus: WriteObject(totals.ToPrometheus()); break;
            default: WriteObject(totals); break;
        }
    }
}
