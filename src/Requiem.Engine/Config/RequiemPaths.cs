namespace Requiem.Engine.Config;

/// <summary>Default locations, so that nothing needs configuring (brief, decision 6).</summary>
public static class RequiemPaths
{
    public const string CasVariable = "REQUIEM_CAS";
    public const string ConfigVariable = "REQUIEM_CONFIG";

    /// <summary><c>$XDG_DATA_HOME/requiem</c>, <c>~/.local/share/requiem</c>, or <c>%LOCALAPPDATA%\Requiem</c>.</summary>
    public static string DataDirectory
    {
        get
        {
            if (OperatingSystem.IsWindows())
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "Requiem");
            var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            if (!string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)) return Path.Combine(xdg, "requiem");
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "requiem");
        }
    }

    /// <summary>The config file in use: <c>$REQUIEM_CONFIG</c>, else <c>config.json</c> in the data directory.</summary>
    public static string ConfigFile
    {
        get
        {
            var env = Environment.GetEnvironmentVariable(ConfigVariable);
            return string.IsNullOrEmpty(env) ? Path.Combine(DataDirectory, "config.json") : Path.GetFullPath(env);
        }
    }

    /// <summary>
    /// The CAS root to use: an explicit path (-Cas) wins, then <c>$REQUIEM_CAS</c>, then <c>cas.path</c> in the config,
    /// then <c>&lt;data&gt;/cas</c>.
    /// </summary>
    public static string ResolveCasRoot(string? explicitPath, RequiemConfig? config = null)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath)) return Path.GetFullPath(explicitPath);
        var env = Environment.GetEnvironmentVariable(CasVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        config ??= RequiemConfig.LoadDefault();
        if (!string.IsNullOrWhiteSpace(config.Cas.Path)) return Path.GetFullPath(config.Cas.Path);
        return Path.Combine(DataDirectory, "cas");
    }
}
