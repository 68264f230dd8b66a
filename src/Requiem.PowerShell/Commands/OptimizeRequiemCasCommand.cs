using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Optimize-RequiemCas: garbage collection (the Requiem CLI's <c>cas gc</c>). Marks from refs through manifests and removes
/// unreferenced objects and stale temp files older than -GracePeriod. -WhatIf is the dry run.
/// </summary>
[Cmdlet(VerbsCommon.Optimize, "RequiemCas", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(CasGcReport))]
public sealed class OptimizeRequiemCasCommand : RequiemStoreCmdlet
{
    private const int ProgressId = 1;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    [Parameter]
    public TimeSpan GracePeriod { get; set; } = CasGcOptions.DefaultGracePeriod;

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessingCore()
    {
        if (GracePeriod < TimeSpan.Zero)
        {
            ThrowTerminatingError(ToErrorRecord(new Requiem.Engine.RequiemException("InvalidGracePeriod", Requiem.Engine.ErrorKind.InvalidArgument,
                $"-GracePeriod {GracePeriod} is negative.", GracePeriod)));
        }
        var store = OpenStore(Cas, create: false);
        var whatIf = IsWhatIf();
        var confirmAsked = MyInvocation.BoundParameters.TryGetValue("Confirm", out var c) && c is SwitchParameter sp && sp.IsPresent;
        var output = CreateEngineOutput(ProgressId);
        var report = Run(() => store.CollectGarbage(new CasGcOptions
        {
            GracePeriod = GracePeriod,
            DryRun = whatIf,
            Output = output,
            Cancel = CancellationToken,
            RootProviders = new ICasGcRootProvider[] { CasRefRootProvider.Instance, new Requiem.Engine.ActionCache.ActionCacheGcRoots(TimeSpan.FromDays(Config.Cache.MaxAgeDays)) },
            ShouldRemove = item =>
            {
                var target = item.Hash is null
                    ? $"temp file {item.Path} ({item.StoredSize} bytes, {item.Age.TotalDays:0.#} days old)"
                    : $"object {item.Hash} ({item.StoredSize} bytes, {item.Age.TotalDays:0.#} days old)";
                var action = item.Hash is null ? "Remove stale CAS temp file" : "Remove unreferenced CAS object";
                if (Force && !confirmAsked && !whatIf) return true;
                return ShouldProcess(target, action);
            },
        }));
        CompleteProgress(ProgressId, "Optimize-RequiemCas");
        if (!report.DryRun)
        {
            var removed = report.Candidates.Where(c => c.Removed).ToList();
            Audit(store, Requiem.Engine.Audit.AuditActions.GcRun, removed.Where(c => c.Hash is not null).Select(c => c.Hash!).Distinct(StringComparer.Ordinal),
                new Dictionary<string, object?>
                {
                    ["removed_objects"] = removed.Count(c => c.Hash is not null), ["removed_temp_files"] = removed.Count(c => c.Hash is null),
                    ["bytes_freed"] = report.BytesFreed, ["grace_period_seconds"] = (long)report.GracePeriod.TotalSeconds,
                });
        }
        foreach (var m in report.Missing) WriteWarning($"{m.Hash} is referenced by {m.ReferencedBy} but is not in the store.");
        WriteObject(report);
    }

    private bool IsWhatIf()
    {
        if (MyInvocation.BoundParameters.TryGetValue("WhatIf", out var w)) return w is SwitchParameter s && s.IsPresent;
        var pref = SessionState.PSVariable.GetValue("WhatIfPreference");
        return pref switch
        {
            bool b => b,
            SwitchParameter s => s.IsPresent,
            _ => LanguagePrimitives.IsTrue(pref),
        };
    }
}
