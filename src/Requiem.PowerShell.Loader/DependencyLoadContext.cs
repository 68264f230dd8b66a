using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace Requiem.PowerShell.Loader;

/// <summary>
/// The documented "resolver" pattern for dependency isolation: Requiem.PowerShell.dll sits in the module root
/// and loads into the default context; Requiem.Engine and its third-party libraries (ZstdSharp, the Azure SDK) live in
/// <c>dependencies/</c> and load into this private context, so another module's copy of one of them cannot clash with ours.
/// </summary>
internal sealed class DependencyLoadContext : AssemblyLoadContext
{
    private static readonly string s_dependencyDirectory = Path.Combine(
        Path.GetDirectoryName(typeof(DependencyLoadContext).Assembly.Location) ?? AppContext.BaseDirectory, "dependencies");

    private static readonly DependencyLoadContext s_instance = new();
    private static int s_registered;

    private DependencyLoadContext() : base("Requiem.Dependencies", isCollectible: false) { }

    /// <summary>Hooks the default context so that the one assembly it cannot find by itself (the engine) comes from us.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 1) return;
        Default.Resolving += ResolveEngine;
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name)
    {
        // Only the engine is bridged into the default context; its own references resolve inside our context.
        if (!string.Equals(name.Name, "Requiem.Engine", StringComparison.Ordinal)) return null;
        return s_instance.LoadFromAssemblyName(name);
    }

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        // A library the runtime itself provides at the same or a newer version (System.Text.Json, ...) comes from the
        // default context, so the engine and the cmdlets share one copy of types they hand each other.
        if (RuntimeProvides(assemblyName)) return null;
        var candidate = Path.Combine(s_dependencyDirectory, assemblyName.Name + ".dll");
        return File.Exists(candidate) ? LoadFromAssemblyPath(candidate) : null;
    }

    private static readonly Lazy<Dictionary<string, string>> s_platformAssemblies = new(() =>
    {
        var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") is string list)
        {
            foreach (var path in list.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
                map[Path.GetFileNameWithoutExtension(path)] = path;
        }
        return map;
    });

    private static bool RuntimeProvides(AssemblyName name)
    {
        if (name.Name is null || !s_platformAssemblies.Value.TryGetValue(name.Name, out var path)) return false;
        try
        {
            var provided = AssemblyName.GetAssemblyName(path).Version;
            return name.Version is null || (provided is not null && provided >= name.Version);
        }
        catch (Exception ex) when (ex is IOException or BadImageFormatException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

/// <summary>PowerShell's import hook for the nested loader module: registers the resolver before the cmdlets load.</summary>
public sealed class ModuleLoader : IModuleAssemblyInitializer
{
    public void OnImport() => DependencyLoadContext.Register();
}
