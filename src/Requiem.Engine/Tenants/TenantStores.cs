using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;

namespace Requiem.Engine.Tenants;

/// <summary>
/// Where tenants live: each tenant is a store of its own at <c>&lt;cas root&gt;/tenants/&lt;name&gt;</c> (objects, refs,
/// audit log), so a tenant's commands can neither name nor collect another tenant's objects. The tenant in effect is
/// -Tenant, else <c>$REQUIEM_TENANT</c>, else <c>tenant</c> in the config, else none (the store at the CAS root itself).
/// </summary>
public static class TenantStores
{
    public const string DirectoryName = "tenants";

    /// <summary>
    /// The tenant in effect (validated), or null for none. An explicit empty -Tenant means none (whatever the variable
    /// or the config say); an empty variable is ignored.
    /// </summary>
    public static string? Resolve(string? explicitTenant, RequiemConfig config)
    {
        if (explicitTenant is not null) return explicitTenant.Length == 0 ? null : TenantName.Validate(explicitTenant, "-Tenant");
        var env = Environment.GetEnvironmentVariable(TenantName.EnvironmentVariable);
        if (!string.IsNullOrEmpty(env)) return TenantName.Validate(env, "$" + TenantName.EnvironmentVariable);
        if (!string.IsNullOrEmpty(config.Tenant)) return TenantName.Validate(config.Tenant, "tenant in the config");
        return null;
    }

    /// <summary>Where a tenant's store lives under a CAS root (the root itself for no tenant).</summary>
    public static string RootFor(string casRoot, string? tenant) =>
        tenant is null ? Path.GetFullPath(casRoot) : Path.Combine(Path.GetFullPath(casRoot), DirectoryName, TenantName.Validate(tenant));

    /// <summary>Where a tenant's names live in a remote container shared with other tenants: the same relative place as locally.</summary>
    public static string RemotePrefix(string tenant) => $"{DirectoryName}/{TenantName.Validate(tenant)}/";

    /// <summary>The tenant a store root belongs to (<c>&lt;cas root&gt;/tenants/&lt;name&gt;</c> under a store), or null.</summary>
    public static string? TenantOf(string storeRoot)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(storeRoot));
        var name = Path.GetFileName(full);
        var parent = Path.GetDirectoryName(full);
        if (parent is null || Path.GetFileName(parent) != DirectoryName || !TenantName.IsValid(name)) return null;
        var casRoot = Path.GetDirectoryName(parent);
        return casRoot is not null && File.Exists(Path.Combine(casRoot, CasStore.ConfigFileName)) ? name : null;
    }

    /// <summary>
    /// Opens the store of <paramref name="tenant"/> under <paramref name="casRoot"/> (or the root's own store for null),
    /// with the tenant's quota from the config. The CAS root becomes a store first, so that it stays one directory
    /// the module recognises.
    /// </summary>
    public static CasStore Open(string casRoot, string? tenant, HashPrimitive hash, bool create, RequiemConfig config)
    {
        if (tenant is null) return CasStore.Open(casRoot, hash, create);
        var root = RootFor(casRoot, tenant);
        // tenants/<name> linked elsewhere (to another tenant's store, say) would give this tenant that store's objects.
        if (new DirectoryInfo(root).LinkTarget is not null)
            throw new RequiemException("TenantStoreIsLink", ErrorKind.SecurityError,
                $"The store of tenant '{tenant}' ('{root}') is a symbolic link; a tenant's store must be a folder of its own under tenants/.", root);
        CasStore store;
        try
        {
            if (create) CasStore.Open(casRoot, hash, create: true);
            store = CasStore.Open(root, hash, create);
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasNotFound")
        {
            throw new RequiemException("CasNotFound", ErrorKind.ObjectNotFound,
                $"Tenant '{tenant}' has no store yet (there is nothing at '{root}'); a command that stores something creates it.", root, ex);
        }
        if (config.QuotaFor(tenant) is long quota) store.Quota = new TenantQuota(tenant, quota, store.ObjectsDirectory);
        return store;
    }
}
