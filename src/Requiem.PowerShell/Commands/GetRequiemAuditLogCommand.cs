using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Audit;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Get-RequiemAuditLog: the entries of a store's audit log (one per state change), oldest first, filtered by time and
/// action. The store is the tenant's with -Tenant (or $env:REQUIEM_TENANT / the config); -AllTenants reads the store's
/// own log and every tenant's, merged by time.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RequiemAuditLog", DefaultParameterSetName = OneSet)]
[OutputType(typeof(AuditEntry))]
public sealed class GetRequiemAuditLogCommand : RequiemStoreCmdlet
{
    private const string OneSet = "One";
    private const string AllSet = "AllTenants";

    /// <summary>Only entries appended at or after this time.</summary>
    [Parameter]
    public DateTime? After { get; set; }

    /// <summary>Only entries appended before this time.</summary>
    [Parameter]
    public DateTime? Before { get; set; }

    /// <summary>Only these actions (wildcards allowed, e.g. 'ref.*').</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[]? Action { get; set; }

    /// <summary>The store's own log and every tenant's log under it, merged by time (instead of one tenant's).</summary>
    [Parameter(ParameterSetName = AllSet)]
    public SwitchParameter AllTenants { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    protected override void EndProcessingCore()
    {
        var store = OpenStore(Cas, create: false);
        if (AllTenants && Engine.Tenants.TenantStores.TenantOf(store.Root) is { } tenant)
            ThrowTerminatingError(NewError("TenantAndAllTenants", ErrorCategory.InvalidArgument,
                $"-AllTenants reads every tenant's log from the CAS root, but tenant '{tenant}' is in effect (-Tenant, $env:REQUIEM_TENANT or the config); add -Tenant '' to read from the root.", tenant));
        var logs = new List<AuditLog> { AuditLog.For(store) };
        if (AllTenants) logs.AddRange(Run(() => AuditLogs.OfTenants(store.Root, store.HashPrimitive)));
        var patterns = Action?.Select(a => new WildcardPattern(a, WildcardOptions.IgnoreCase)).ToArray();
        var after = After?.ToUniversalTime();
        var before = Before?.ToUniversalTime();
        var entries = logs.SelectMany(log => log.ReadEntries((line, why) =>
            WriteWarning($"{log.LogPath} line {line} is not an audit entry ({why}); Test-RequiemAuditLog reports what is wrong.")));
        if (logs.Count > 1) entries = entries.ToList().OrderBy(e => e.Time).ThenBy(e => e.Tenant, StringComparer.Ordinal).ThenBy(e => e.Seq);
        try
        {
            foreach (var e in entries)
            {
                if (after is { } a && e.Time < a) continue;
                if (before is { } b && e.Time >= b) continue;
                if (patterns is not null && !patterns.Any(p => p.IsMatch(e.Action))) continue;
                WriteObject(e);
            }
        }
        catch (RequiemException ex)
        {
            // e.g. AuditFileNotRegular: something planted at the log's name is never read through.
            ThrowTerminatingError(ToErrorRecord(ex));
        }
    }
}
