using System.Text.Json;

namespace Requiem.Engine.Config;

/// <summary>
/// The config file (schema version 1.1, the format the Requiem CLI reads). Loaded from <see cref="RequiemPaths.ConfigFile"/> when present;
/// every field has a default so that an absent file means "defaults".
/// </summary>
public sealed class RequiemConfig
{
    public const string CurrentVersion = "1.1";

    public string ConfigVersion { get; init; } = CurrentVersion;
    public HashSection Hash { get; init; } = new();
    public CasSection Cas { get; init; } = new();
    public SandboxSection Sandbox { get; init; } = new();
    public EngineSection Engine { get; init; } = new();
    public CacheSection Cache { get; init; } = new();
    /// <summary>The remote store (absent: none); the environment variables of <see cref="Cas.CasRemoteSettings"/> win over it.</summary>
    public RemoteSection? Remote { get; init; }

    /// <summary>The tenant used when neither -Tenant nor $REQUIEM_TENANT names one (null: none).</summary>
    public string? Tenant { get; init; }
    /// <summary>Per-tenant settings (tenants.&lt;name&gt;), e.g. the byte quota.</summary>
    public IReadOnlyDictionary<string, TenantSection> Tenants { get; init; } = new Dictionary<string, TenantSection>(StringComparer.Ordinal);

    /// <summary>The byte quota of a tenant (tenants.&lt;name&gt;.quota_bytes), or null when it has none.</summary>
    public long? QuotaFor(string tenant) => Tenants.TryGetValue(tenant, out var t) ? t.QuotaBytes : null;

    public sealed class TenantSection
    {
        public long? QuotaBytes { get; init; }
    }

    /// <summary>The file this config came from, or null for built-in defaults.</summary>
    public string? SourcePath { get; init; }

    public sealed class HashSection
    {
        public string Primitive { get; init; } = "blake3";
        public string Backend { get; init; } = "vendored";
        public bool AllowFallback { get; init; }

        /// <summary>At most this many cores hash one large input (null: every core).</summary>
        public int? MaxThreads { get; init; }
    }

    public sealed class CasSection
    {
        public string Version { get; init; } = EngineInfo.CasFormatVersion;
        public string Compression { get; init; } = "identity";
        public int ZstdLevel { get; init; } = 3;
        public string? Path { get; init; }
    }

    public sealed class SandboxSection
    {
        public bool DenyNetwork { get; init; }
        public long? MaxMemoryBytes { get; init; }
    }

    /// <summary>The second engine of a dual run (see Invoke-RequiemExec -Engine external|dual).</summary>
    public sealed class EngineSection
    {
        /// <summary>An engine speaking the Requiem CLI's <c>exec run --request --out</c> contract (absolute path or a name on PATH).</summary>
        public string? ExternalPath { get; init; }
        /// <summary>The share of requests a dual run sends to the external engine when -DualSampleRate is not given (null: all).</summary>
        public double? DualSampleRate { get; init; }
    }

    /// <summary>The action cache (<c>Invoke-RequiemExec -Cache</c>).</summary>
    public sealed class CacheSection
    {
        /// <summary>The default of <c>-Cache</c>: <c>off</c>, <c>read</c> or <c>readwrite</c>.</summary>
        public ActionCache.ActionCacheMode Mode { get; init; } = ActionCache.ActionCacheMode.Off;
        /// <summary>Days after which an entry is no longer used nor kept by garbage collection.</summary>
        public int MaxAgeDays { get; init; } = ActionCache.ActionCacheStore.DefaultMaxAgeDays;
    }

    public sealed class RemoteSection
    {
        public string Kind { get; init; } = "azure_blob";
        public string? Container { get; init; }
        /// <summary>The name of the environment variable holding the connection string or SAS (never the secret itself).</summary>
        public string? ConnectionStringEnv { get; init; }
        /// <summary>Objects downloaded at once when many are needed together (a cache hit's outputs, a -Hash array).</summary>
        public int DownloadParallelism { get; init; } = Requiem.Engine.Cas.CasRemote.DefaultDownloadParallelism;
        /// <summary>The largest remote object blob that is downloaded (a longer one is refused before it fills the disk).</summary>
        public long MaxObjectBytes { get; init; } = Requiem.Engine.Cas.CasRemote.DefaultMaxObjectBytes;
    }

    private static readonly object s_cacheLock = new();
    private static (string Path, DateTime Stamp, RequiemConfig Config)? s_cache;

    /// <summary>Loads the config in effect (cached until the file changes); defaults when there is no file.</summary>
    public static RequiemConfig LoadDefault()
    {
        var path = RequiemPaths.ConfigFile;
        if (!File.Exists(path))
        {
            if (Environment.GetEnvironmentVariable(RequiemPaths.ConfigVariable) is { Length: > 0 })
                throw new RequiemException("ConfigNotFound", ErrorKind.ObjectNotFound,
                    $"${RequiemPaths.ConfigVariable} names '{path}', which does not exist.", path);
            return new RequiemConfig();
        }
        var stamp = File.GetLastWriteTimeUtc(path);
        lock (s_cacheLock)
        {
            if (s_cache is { } c && c.Path == path && c.Stamp == stamp) return c.Config;
        }
        var config = Load(path);
        lock (s_cacheLock) s_cache = (path, stamp, config);
        return config;
    }

    /// <summary>Loads and validates a config file; throws <c>InvalidConfig</c> listing every problem.</summary>
    public static RequiemConfig Load(string path)
    {
        var report = ConfigValidator.Validate(path);
        if (!report.Valid)
            throw new RequiemException("InvalidConfig", ErrorKind.InvalidData,
                $"Config '{path}' is invalid: " + string.Join("; ", report.Errors.Select(e => e.ToString())), path);
        return report.Config!;
    }
}

/// <summary>One problem found in a config file, with the JSON path of the offending field.</summary>
public sealed record ConfigIssue(string Field, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>The result of <c>config validate</c>.</summary>
public sealed class ConfigValidation
{
    public required string Path { get; init; }
    public bool Valid => Errors.Count == 0;
    public required IReadOnlyList<ConfigIssue> Errors { get; init; }
    public required IReadOnlyList<ConfigIssue> Warnings { get; init; }
    public string? ConfigVersion { get; init; }
    /// <summary>True when there is no config file at <see cref="Path"/> and the built-in defaults are in effect.</summary>
    public bool UsingDefaults { get; init; }
    internal RequiemConfig? Config { get; init; }
}

public static class ConfigValidator
{
    /// <summary>The report for "no config file": the defaults, which are valid by definition (docs/CONTRACT.md).</summary>
    public static ConfigValidation Defaults(string path) => new()
    {
        Path = path, Errors = Array.Empty<ConfigIssue>(), Warnings = Array.Empty<ConfigIssue>(),
        ConfigVersion = RequiemConfig.CurrentVersion, UsingDefaults = true, Config = new RequiemConfig(),
    };

    public static ConfigValidation Validate(string path)
    {
        if (Directory.Exists(path))
            throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{path}' is a directory, not a config file.", path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RequiemException("ConfigNotFound", ErrorKind.ObjectNotFound, $"Config file '{path}' does not exist.", path, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot read config '{path}': {ex.Message}", path, ex);
        }
        return ValidateText(text, path);
    }

    public static ConfigValidation ValidateText(string text, string path)
    {
        var errors = new List<ConfigIssue>();
        var warnings = new List<ConfigIssue>();
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException ex)
        {
            errors.Add(new ConfigIssue("$", "not valid JSON: " + ex.Message));
            return new ConfigValidation { Path = path, Errors = errors, Warnings = warnings };
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new ConfigIssue("$", "the config must be a JSON object"));
                return new ConfigValidation { Path = path, Errors = errors, Warnings = warnings };
            }
            CheckDuplicateKeys(root, "$", errors);
            CheckKeys(root, "$", errors, "config_version", "hash", "cas", "sandbox", "engine", "cache", "remote", "tenant", "tenants");
            var version = String(root, "config_version", "$", errors, required: true);
            if (version is not null && version != RequiemConfig.CurrentVersion)
                errors.Add(new ConfigIssue("$.config_version", $"unsupported version '{version}' (this engine reads '{RequiemConfig.CurrentVersion}')"));

            var hash = new RequiemConfig.HashSection();
            if (Section(root, "hash", errors) is { } h)
            {
                CheckKeys(h, "$.hash", errors, "primitive", "backend", "allow_fallback", "max_threads");
                var primitive = String(h, "primitive", "$.hash", errors) ?? "blake3";
                if (primitive != "blake3") errors.Add(new ConfigIssue("$.hash.primitive", $"'{primitive}' is not supported: the only primitive is 'blake3'"));
                var backend = String(h, "backend", "$.hash", errors) ?? "vendored";
                if (backend is not ("vendored" or "managed-simd"))
                    errors.Add(new ConfigIssue("$.hash.backend", $"'{backend}' is not a backend: use 'vendored' (the built-in managed BLAKE3)"));
                var allow = Bool(h, "allow_fallback", "$.hash", errors) ?? false;
                if (allow) warnings.Add(new ConfigIssue("$.hash.allow_fallback", "hash fallback is allowed: if BLAKE3 fails its self-test, digests silently become SHA-256 (flagged in every result)"));
                var maxThreads = Int(h, "max_threads", "$.hash", errors);
                if (maxThreads is < 1 or > 4096) errors.Add(new ConfigIssue("$.hash.max_threads", $"{maxThreads} is out of range 1..4096"));
                hash = new RequiemConfig.HashSection
                {
                    Primitive = primitive, Backend = backend, AllowFallback = allow,
                    MaxThreads = maxThreads is >= 1 and <= 4096 ? (int)maxThreads : null,
                };
            }

            var cas = new RequiemConfig.CasSection();
            if (Section(root, "cas", errors) is { } c)
            {
                CheckKeys(c, "$.cas", errors, "version", "compression", "zstd_level", "path");
                var v = String(c, "version", "$.cas", errors) ?? EngineInfo.CasFormatVersion;
                if (v != EngineInfo.CasFormatVersion) errors.Add(new ConfigIssue("$.cas.version", $"unsupported CAS format '{v}' (this engine uses '{EngineInfo.CasFormatVersion}')"));
                var comp = String(c, "compression", "$.cas", errors) ?? "identity";
                if (comp is not ("identity" or "zstd")) errors.Add(new ConfigIssue("$.cas.compression", $"'{comp}' is not a compression: use 'identity' or 'zstd'"));
                var level = Int(c, "zstd_level", "$.cas", errors) ?? 3;
                if (level is < 1 or > 22) errors.Add(new ConfigIssue("$.cas.zstd_level", $"{level} is out of range 1..22"));
                var p = String(c, "path", "$.cas", errors);
                if (p is not null && !System.IO.Path.IsPathFullyQualified(p)) errors.Add(new ConfigIssue("$.cas.path", $"'{p}' must be an absolute path"));
                cas = new RequiemConfig.CasSection { Version = v, Compression = comp, ZstdLevel = (int)level, Path = p };
            }

            var sandbox = new RequiemConfig.SandboxSection();
            if (Section(root, "sandbox", errors) is { } s)
            {
                CheckKeys(s, "$.sandbox", errors, "deny_network", "max_memory_bytes");
                var deny = Bool(s, "deny_network", "$.sandbox", errors) ?? false;
                var mem = Int(s, "max_memory_bytes", "$.sandbox", errors);
                if (mem is <= 0) errors.Add(new ConfigIssue("$.sandbox.max_memory_bytes", $"{mem} must be a positive number of bytes"));
                else if (mem is < 1 << 20) warnings.Add(new ConfigIssue("$.sandbox.max_memory_bytes", $"{mem} bytes is less than 1 MiB: most programs cannot start"));
                sandbox = new RequiemConfig.SandboxSection { DenyNetwork = deny, MaxMemoryBytes = mem };
            }

            var engine = ValidateEngine(root, errors, warnings);

            var cache = new RequiemConfig.CacheSection();
            if (Section(root, "cache", errors) is { } ac)
            {
                CheckKeys(ac, "$.cache", errors, "mode", "max_age_days");
                var modeText = String(ac, "mode", "$.cache", errors) ?? "off";
                var mode = modeText.ToLowerInvariant() switch
                {
                    "off" => ActionCache.ActionCacheMode.Off,
                    "read" => ActionCache.ActionCacheMode.Read,
                    "readwrite" => ActionCache.ActionCacheMode.ReadWrite,
                    _ => (ActionCache.ActionCacheMode?)null,
                };
                if (mode is null) errors.Add(new ConfigIssue("$.cache.mode", $"'{modeText}' is not a cache mode: use 'off', 'read' or 'readwrite'"));
                var days = Int(ac, "max_age_days", "$.cache", errors) ?? ActionCache.ActionCacheStore.DefaultMaxAgeDays;
                if (days is < 1 or > 3650) errors.Add(new ConfigIssue("$.cache.max_age_days", $"{days} is out of range 1..3650"));
                cache = new RequiemConfig.CacheSection { Mode = mode ?? ActionCache.ActionCacheMode.Off, MaxAgeDays = (int)Math.Clamp(days, 1, 3650) };
            }

            RequiemConfig.RemoteSection? remote = null;
            if (Section(root, "remote", errors) is { } r)
            {
                CheckKeys(r, "$.remote", errors, "kind", "container", "connection_string_env", "download_parallelism", "max_object_bytes");
                var kind = String(r, "kind", "$.remote", errors, required: true);
                if (kind is not null and not "azure_blob") errors.Add(new ConfigIssue("$.remote.kind", $"'{kind}' is not a remote kind: use 'azure_blob'"));
                var container = String(r, "container", "$.remote", errors, required: true);
                if (container is not null)
                {
                    try { Cas.AzureBlobCasBackend.ValidateContainerName(container); }
                    catch (RequiemException ex) { errors.Add(new ConfigIssue("$.remote.container", ex.Message)); }
                }
                var variable = String(r, "connection_string_env", "$.remote", errors, required: true);
                if (variable is not null && (variable.Length == 0 || variable.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch == '_'))))
                    errors.Add(new ConfigIssue("$.remote.connection_string_env", $"'{variable}' is not an environment variable name (letters, digits, '_'); put the secret in that variable, not in the config"));
                var downloads = Int(r, "download_parallelism", "$.remote", errors) ?? Cas.CasRemote.DefaultDownloadParallelism;
                if (downloads is < 1 or > Cas.CasRemote.MaxDownloadParallelism)
                    errors.Add(new ConfigIssue("$.remote.download_parallelism", $"{downloads} is out of range 1..{Cas.CasRemote.MaxDownloadParallelism}"));
                var maxObject = Int(r, "max_object_bytes", "$.remote", errors) ?? Cas.CasRemote.DefaultMaxObjectBytes;
                if (maxObject < 1) errors.Add(new ConfigIssue("$.remote.max_object_bytes", $"{maxObject} is not a size: use a positive number of bytes"));
                remote = new RequiemConfig.RemoteSection
                {
                    Kind = kind ?? "azure_blob", Container = container, ConnectionStringEnv = variable,
                    DownloadParallelism = (int)Math.Clamp(downloads, 1, Cas.CasRemote.MaxDownloadParallelism),
                    MaxObjectBytes = Math.Max(1, maxObject),
                };
            }
            var (tenant, tenants) = ReadTenants(root, errors);

            var config = errors.Count == 0
                ? new RequiemConfig { ConfigVersion = version ?? RequiemConfig.CurrentVersion, Hash = hash, Cas = cas, Sandbox = sandbox, Engine = engine, Cache = cache, Remote = remote, SourcePath = path,
                    Tenant = tenant, Tenants = tenants }
                : null;
            return new ConfigValidation { Path = path, Errors = errors, Warnings = warnings, ConfigVersion = version, Config = config };
        }
    }

    private static RequiemConfig.EngineSection ValidateEngine(JsonElement root, List<ConfigIssue> errors, List<ConfigIssue> warnings)
    {
        if (Section(root, "engine", errors) is not { } e) return new RequiemConfig.EngineSection();
        CheckKeys(e, "$.engine", errors, "external_path", "dual_sample_rate");
        var external = String(e, "external_path", "$.engine", errors);
        if (external is { Length: 0 }) errors.Add(new ConfigIssue("$.engine.external_path", "must not be empty (leave the field out when there is no external engine)"));
        else if (external is not null && external.IndexOfAny(new[] { '/', '\\' }) >= 0)
        {
            if (!System.IO.Path.IsPathFullyQualified(external)) errors.Add(new ConfigIssue("$.engine.external_path", $"'{external}' must be an absolute path (or a command name found on PATH)"));
            else if (!File.Exists(external)) warnings.Add(new ConfigIssue("$.engine.external_path", $"'{external}' does not exist: dual runs will report the external engine as failed"));
        }
        double? rate = null;
        if (e.TryGetProperty("dual_sample_rate", out var r))
        {
            if (r.ValueKind == JsonValueKind.Number && r.TryGetDouble(out var v) && v is >= 0 and <= 1) rate = v;
            else errors.Add(new ConfigIssue("$.engine.dual_sample_rate", $"must be a number from 0 to 1, not {r.GetRawText()}"));
        }
        return new RequiemConfig.EngineSection { ExternalPath = external, DualSampleRate = rate };
    }

    /// <summary>tenant (a valid tenant name) and tenants.&lt;name&gt;.quota_bytes (a positive byte count).</summary>
    private static (string? Tenant, Dictionary<string, RequiemConfig.TenantSection> Tenants) ReadTenants(JsonElement root, List<ConfigIssue> errors)
    {
        var tenant = String(root, "tenant", "$", errors);
        if (tenant is not null && !Tenants.TenantName.IsValid(tenant))
            errors.Add(new ConfigIssue("$.tenant", $"'{tenant}' is not a valid tenant name: use 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit"));
        var tenants = new Dictionary<string, RequiemConfig.TenantSection>(StringComparer.Ordinal);
        if (Section(root, "tenants", errors) is not { } section) return (tenant, tenants);
        foreach (var entry in section.EnumerateObject())
        {
            var where = $"$.tenants.{entry.Name}";
            if (!Tenants.TenantName.IsValid(entry.Name))
            {
                errors.Add(new ConfigIssue(where, $"'{entry.Name}' is not a valid tenant name"));
                continue;
            }
            if (entry.Value.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new ConfigIssue(where, $"must be an object, not {entry.Value.ValueKind}"));
                continue;
            }
            CheckKeys(entry.Value, where, errors, "quota_bytes");
            var quota = Int(entry.Value, "quota_bytes", where, errors);
            if (quota is <= 0) errors.Add(new ConfigIssue(where + ".quota_bytes", $"{quota} must be a positive number of bytes"));
            tenants[entry.Name] = new RequiemConfig.TenantSection { QuotaBytes = quota is > 0 ? quota : null };
        }
        return (tenant, tenants);
    }

    /// <summary>
    /// A key given twice is ambiguous (JSON parsers disagree on which one wins), so it is a problem at its JSON path,
    /// at any depth — not silently the last value.
    /// </summary>
    private static void CheckDuplicateKeys(JsonElement element, string where, List<ConfigIssue> errors)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            var seen = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var p in element.EnumerateObject())
            {
                seen[p.Name] = seen.GetValueOrDefault(p.Name) + 1;
                if (seen[p.Name] == 2)
                    errors.Add(new ConfigIssue($"{where}.{p.Name}", "duplicate key: the field is given more than once; give it once"));
                CheckDuplicateKeys(p.Value, $"{where}.{p.Name}", errors);
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var item in element.EnumerateArray()) CheckDuplicateKeys(item, $"{where}[{i++}]", errors);
        }
    }

    private static void CheckKeys(JsonElement obj, string where, List<ConfigIssue> errors, params string[] known)
    {
        foreach (var p in obj.EnumerateObject())
        {
            if (Array.IndexOf(known, p.Name) < 0)
                errors.Add(new ConfigIssue($"{where}.{p.Name}", "unknown field (known: " + string.Join(", ", known) + ")"));
        }
    }

    private static JsonElement? Section(JsonElement root, string name, List<ConfigIssue> errors)
    {
        if (!root.TryGetProperty(name, out var e)) return null;
        if (e.ValueKind == JsonValueKind.Object) return e;
        errors.Add(new ConfigIssue("$." + name, $"must be an object, not {e.ValueKind}"));
        return null;
    }

    private static string? String(JsonElement obj, string name, string where, List<ConfigIssue> errors, bool required = false)
    {
        if (!obj.TryGetProperty(name, out var e))
        {
            if (required) errors.Add(new ConfigIssue($"{where}.{name}", "is required"));
            return null;
        }
        if (e.ValueKind == JsonValueKind.String) return e.GetString();
        if (e.ValueKind == JsonValueKind.Null && !required) return null;
        errors.Add(new ConfigIssue($"{where}.{name}", $"must be a string, not {e.ValueKind}"));
        return null;
    }

    private static bool? Bool(JsonElement obj, string name, string where, List<ConfigIssue> errors)
    {
        if (!obj.TryGetProperty(name, out var e)) return null;
        if (e.ValueKind is JsonValueKind.True or JsonValueKind.False) return e.GetBoolean();
        errors.Add(new ConfigIssue($"{where}.{name}", $"must be true or false, not {e.ValueKind}"));
        return null;
    }

    private static long? Int(JsonElement obj, string name, string where, List<ConfigIssue> errors)
    {
        if (!obj.TryGetProperty(name, out var e)) return null;
        if (e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var v)) return v;
        errors.Add(new ConfigIssue($"{where}.{name}", $"must be a whole number, not {e.ValueKind} {e.GetRawText()}"));
        return null;
    }
}
