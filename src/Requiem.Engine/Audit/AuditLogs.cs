using Requiem.Engine.Hashing;
using Requiem.Engine.Tenants;

namespace Requiem.Engine.Audit;

/// <summary>Finding audit logs under a CAS root.</summary>
public static class AuditLogs
{
    /// <summary>The log of every tenant store under <paramref name="casRoot"/> (tenants/&lt;name&gt;), by name.</summary>
    public static IReadOnlyList<AuditLog> OfTenants(string casRoot, HashPrimitive hash)
    {
        var dir = Path.Combine(casRoot, TenantStores.DirectoryName);
        if (!Directory.Exists(dir)) return Array.Empty<AuditLog>();
        return Directory.EnumerateDirectories(dir)
            .Select(Path.GetFileName)
            .Where(TenantName.IsValid)
            .OrderBy(n => n, StringComparer.Ordinal)
            .Select(n => new AuditLog(Path.Combine(dir, n!), hash, n))
            .ToList();
    }
}
