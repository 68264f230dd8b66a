using Requiem.Engine.Config;

namespace Requiem.Engine.Cas;

/// <summary>
/// Which remote store is in effect: <c>$env:REQUIEM_REMOTE_CONNECTION_STRING</c> and <c>$env:REQUIEM_REMOTE_CONTAINER</c>
/// win over the config's <c>remote</c> section (whose <c>connection_string_env</c> names the variable that holds the
/// secret). The connection string is kept here only to build the client; <see cref="ToString"/> never shows it.
/// </summary>
public sealed class CasRemoteSettings
{
    public const string ConnectionStringVariable = "REQUIEM_REMOTE_CONNECTION_STRING";
    public const string ContainerVariable = "REQUIEM_REMOTE_CONTAINER";
    public const string DefaultContainer = "requiem";

    private readonly string? _connectionString;

    private CasRemoteSettings(string kind, string container, string? connectionString, string source, string? missingVariable)
    {
        Kind = kind;
        Container = container;
        _connectionString = connectionString;
        Source = source;
        MissingVariable = missingVariable;
    }

    public string Kind { get; }
    public string Container { get; }
    /// <summary>Where the settings came from (environment or config), for messages.</summary>
    public string Source { get; }
    /// <summary>Set when a remote is configured but the variable that should hold its connection string is empty.</summary>
    public string? MissingVariable { get; }
    public bool HasCredential => !string.IsNullOrEmpty(_connectionString);

    /// <summary>The settings in effect, or null when no remote store is configured.</summary>
    public static CasRemoteSettings? Resolve(RequiemConfig config)
    {
        var envConnection = Environment.GetEnvironmentVariable(ConnectionStringVariable);
        var envContainer = Environment.GetEnvironmentVariable(ContainerVariable);
        var section = config.Remote;
        if (string.IsNullOrWhiteSpace(envConnection) && section is null) return null;
        var container = !string.IsNullOrWhiteSpace(envContainer) ? envContainer.Trim() : section?.Container ?? DefaultContainer;
        if (!string.IsNullOrWhiteSpace(envConnection))
            return new CasRemoteSettings("azure_blob", container, envConnection.Trim(), $"${ConnectionStringVariable}", null);
        var variable = section!.ConnectionStringEnv ?? ConnectionStringVariable;
        var secret = Environment.GetEnvironmentVariable(variable);
        return new CasRemoteSettings(section.Kind, container, string.IsNullOrWhiteSpace(secret) ? null : secret.Trim(),
            $"remote in the config (connection string from ${variable})", string.IsNullOrWhiteSpace(secret) ? variable : null);
    }

    /// <summary>The backend these settings describe; throws RemoteNotConfigured when the credential variable is empty.</summary>
    public ICasBackend CreateBackend()
    {
        if (_connectionString is null)
            throw new RequiemException("RemoteNotConfigured", ErrorKind.InvalidOperation,
                $"The remote store is configured ({Source}) but ${MissingVariable} is empty: set it to the storage connection string or SAS.", MissingVariable);
        return new AzureBlobCasBackend(_connectionString, Container);
    }

    public override string ToString() => $"{Kind} container '{Container}' ({Source})";
}
