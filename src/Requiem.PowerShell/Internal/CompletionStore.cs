using System.Collections;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;

namespace Requiem.PowerShell.Internal;

/// <summary>The store an argument completer reads: -Cas as typed so far (relative to the current folder), else the default store.</summary>
internal static class CompletionStore
{
    /// <summary>The existing store, or null (completion never creates a store).</summary>
    public static CasStore? TryOpen(IDictionary fakeBoundParameters)
    {
        string? explicitRoot = fakeBoundParameters.Contains("Cas") ? fakeBoundParameters["Cas"]?.ToString() : null;
        if (explicitRoot is not null && !Path.IsPathRooted(explicitRoot))
            explicitRoot = Path.Combine(Environment.CurrentDirectory, explicitRoot);
        var root = RequiemPaths.ResolveCasRoot(explicitRoot);
        if (!File.Exists(Path.Combine(root, CasStore.ConfigFileName))) return null;
        return CasStore.Open(root, HashPrimitive.Select(false), create: false);
    }
}
