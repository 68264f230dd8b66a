using System.Reflection;

namespace Requiem.Engine;

/// <summary>Versions that appear in results, proofs and health reports.</summary>
public static class EngineInfo
{
    /// <summary>The engine's own version (assembly informational version without build metadata).</summary>
    public static string EngineVersion { get; } = ReadVersion();

    /// <summary>Version of the JSON contract (requests, results, bundles) described in docs/CONTRACT.md.</summary>
    public const string ContractVersion = "1.1";

    /// <summary>The CAS on-disk format this engine reads and writes.</summary>
    public const string CasFormatVersion = "v2";

    public const string EngineName = "requiem";

    private static string ReadVersion()
    {
        var v = typeof(EngineInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                ?? typeof(EngineInfo).Assembly.GetName().Version?.ToString() ?? "0.0.0";
        var plus = v.IndexOf('+');
        return plus >= 0 ? v[..plus] : v;
    }
}
