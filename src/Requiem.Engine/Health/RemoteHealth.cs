using Requiem.Engine.Cas;
using Requiem.Engine.Config;

namespace Requiem.Engine.Health;

/// <summary>Whether a remote store is configured and answers (health's <c>remote</c>); never shows the credential.</summary>
public sealed class RemoteHealth
{
    public required bool Configured { get; init; }
    /// <summary>True when the remote answered a read-only listing; null when none is configured or it has no credential.</summary>
    public bool? Reachable { get; init; }
    public string? Kind { get; init; }
    public string? Container { get; init; }
    /// <summary>The backend's description (endpoint and container).</summary>
    public string? Remote { get; init; }
    public required string Detail { get; init; }

    public static RemoteHealth Check(RequiemConfig config, CancellationToken cancel = default)
    {
        CasRemoteSettings? settings;
        try { settings = CasRemoteSettings.Resolve(config); }
        catch (RequiemException ex) { return new RemoteHealth { Configured = true, Reachable = false, Detail = ex.Message }; }
        if (settings is null) return new RemoteHealth { Configured = false, Detail = "no remote store is configured: the local store is the only one" };
        if (!settings.HasCredential)
            return new RemoteHealth { Configured = true, Kind = settings.Kind, Container = settings.Container, Detail = $"configured, but ${settings.MissingVariable} is empty" };
        try
        {
            var backend = settings.CreateBackend();
            _ = backend.List(CasLayout.RefsFolder + "/", cancel).Take(1).ToList();
            return new RemoteHealth { Configured = true, Reachable = true, Kind = settings.Kind, Container = settings.Container, Remote = backend.Description, Detail = "reachable" };
        }
        catch (CasBackendUnavailableException ex)
        {
            return new RemoteHealth { Configured = true, Reachable = false, Kind = settings.Kind, Container = settings.Container, Detail = ex.Message };
        }
        catch (RequiemException ex)
        {
            return new RemoteHealth { Configured = true, Reachable = false, Kind = settings.Kind, Container = settings.Container, Detail = ex.Message };
        }
    }
}
