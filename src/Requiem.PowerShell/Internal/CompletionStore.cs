using System.Collections;
using System.Management.Automation;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;

namespace Requiem.PowerShell.Internal;

/// <summary>The store an argument completer reads: -Cas as typed so far (relative to the current location), else the default store.</summary>
internal static class CompletionStore
{
    /// <summary>The existing store, or null (completion never creates a store).</summary>
    public static CasStore? TryOpen(IDictionary fakeBoundParameters)
    {
        string? explicitRoot = fakeBoundParameters.Contains("Cas") ? fakeBoundParameters["Cas"]?.ToString() : null;
        if (explicitRoot is not null && !Path.IsPathRooted(explicitRoot))
            explicitRoot = Path.Combine(CurrentLocation(), explicitRoot);
        var root = RequiemPaths.ResolveCasRoot(explicitRoot);
        // Completion offers only the tenant's own hashes and refs (-Tenant as typed, else $env:REQUIEM_TENANT / the config).
        var typedTenant = fakeBoundParameters.Contains("Tenant") ? fakeBoundParameters["Tenant"]?.ToString() : null;
        string? tenant;
        try { tenant = Requiem.Engine.Tenants.TenantStores.Resolve(typedTenant, RequiemConfig.LoadDefault()); }
        catch (Requiem.Engine.RequiemException) { return null; }
        root = Requiem.Engine.Tenants.TenantStores.RootFor(root, tenant);
        if (!File.Exists(Path.Combine(root, CasStore.ConfigFileName))) return null;
        return CasStore.Open(root, HashPrimitive.Select(false), create: false);
    }

    // The session's location (Set-Location), which the process's current directory does not follow.
    private static string CurrentLocation()
    {
        try
        {
            var location = ScriptBlock.Create("$ExecutionContext.SessionState.Path.CurrentFileSystemLocation.ProviderPath").Invoke();
            if (location.Count == 1 && location[0]?.BaseObject is string path && path.Length > 0) return path;
        }
        catch (Exception)
        {
            // Outside a runspace: fall back to the process's directory.
        }
        return Environment.CurrentDirectory;
    }
}
