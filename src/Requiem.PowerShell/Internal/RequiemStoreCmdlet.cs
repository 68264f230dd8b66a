using System.Management.Automation;
using Requiem.Engine.Audit;
using Requiem.Engine.Cas;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// A Requiem cmdlet that opens a store: it takes -Tenant, which selects the tenant's own store under the CAS root
/// (tenants/&lt;name&gt;), its refs and its audit log, and labels the metrics it counts. Without -Tenant,
/// $env:REQUIEM_TENANT, then <c>tenant</c> in the config apply.
/// </summary>
public abstract class RequiemStoreCmdlet : RequiemCmdlet
{
    /// <summary>The tenant whose store to use (1 to 63 of a-z 0-9 _ -); an empty string means no tenant.</summary>
    [Parameter]
    [AllowEmptyString]
    public string? Tenant { get; set; }

    /// <summary>
    /// Appends an entry to the store's audit log after a state change. A log that cannot be written is a
    /// non-terminating error (<c>AuditWriteError</c>): the change itself has already happened.
    /// </summary>
    protected void Audit(CasStore store, string action, IEnumerable<string> digests, IReadOnlyDictionary<string, object?>? details = null) =>
        TryRun(() => AuditLog.Append(store, action, digests, details));
}
