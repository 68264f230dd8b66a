using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Execution;

/// <summary>
/// The policy part of an execution request (the Requiem CLI's fields plus cpu/fd/process limits and the stochastic flag).
/// Null limits mean "not requested".
/// </summary>
public sealed class ExecPolicy
{
    public string Mode { get; set; } = "permissive";
    public string SchedulerMode { get; set; } = "turbo";
    public bool Deterministic { get; set; } = true;
    public bool DenyNetwork { get; set; }
    public long? MaxMemoryBytes { get; set; }
    public long? MaxCpuSeconds { get; set; }
    public long? MaxOpenFiles { get; set; }
    public long? MaxProcesses { get; set; }
    /// <summary>The largest output file that is captured; null means <see cref="DefaultMaxOutputFileBytes"/>.</summary>
    public long? MaxOutputFileBytes { get; set; }
    public string[] EnvAllowlist { get; set; } = Array.Empty<string>();
    public string[] EnvDenylist { get; set; } = Array.Empty<string>();
    public bool Stochastic { get; set; }
    /// <summary>What the command sees of the host's files: <c>host</c>, <c>workspace</c> (default) or <c>hermetic</c> (see <see cref="Sandbox.FilesystemView"/>).</summary>
    public string Filesystem { get; set; } = Sandbox.FilesystemView.Workspace;
    /// <summary>Host paths visible read-only in <c>hermetic</c> mode (those that exist).</summary>
    public string[] ReadonlyPaths { get; set; } = Sandbox.FilesystemView.DefaultReadonlyPaths;
    /// <summary>Host paths masked by an empty tmpfs in <c>workspace</c> mode (those that exist; <c>~</c> is the caller's home).</summary>
    public string[] HiddenPaths { get; set; } = Sandbox.FilesystemView.DefaultHiddenPaths;
    /// <summary>Install requiem-launch's seccomp-bpf filter (EPERM for mount, unshare, setns, ptrace, bpf, ...).</summary>
    public bool Seccomp { get; set; } = true;

    public const long DefaultMaxOutputFileBytes = 256L << 20;
    public const long MaxMaxOutputFileBytes = 1L << 40;
    /// <summary>Linux's PID_MAX_LIMIT: no machine can have more processes, and pids.max takes nothing larger.</summary>
    public const long MaxMaxProcesses = 4_194_304;

    public bool IsStrict => Mode == "strict";

    public long EffectiveMaxOutputFileBytes => MaxOutputFileBytes ?? DefaultMaxOutputFileBytes;

    public ExecPolicy Clone() => (ExecPolicy)MemberwiseClone();

    public override string ToString() => System.Text.Encoding.UTF8.GetString(CanonicalBytes());

    public JsonObject ToJsonNode()
    {
        var o = ToJsonNodeCore();
        // Present only when the request set it, so the policy and request digests of requests written before this field
        // existed do not change.
        if (MaxOutputFileBytes is { } cap) o["max_output_file_bytes"] = cap;
        return o;
    }

    private JsonObject ToJsonNodeCore() => new()
    {
        ["mode"] = Mode,
        ["scheduler_mode"] = SchedulerMode,
        ["deterministic"] = Deterministic,
        ["deny_network"] = DenyNetwork,
        ["max_memory_bytes"] = MaxMemoryBytes,
        ["max_cpu_seconds"] = MaxCpuSeconds,
        ["max_open_files"] = MaxOpenFiles,
        ["max_processes"] = MaxProcesses,
        ["env_allowlist"] = new JsonArray(EnvAllowlist.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
        ["env_denylist"] = new JsonArray(EnvDenylist.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
        ["stochastic"] = Stochastic,
        ["filesystem"] = Filesystem,
        ["readonly_paths"] = new JsonArray(ReadonlyPaths.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
        ["hidden_paths"] = new JsonArray(HiddenPaths.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
        ["seccomp"] = Seccomp,
    };

    /// <summary>RFC 8785 bytes of the effective policy (what <c>policy_digest</c> names in the CAS).</summary>
    public byte[] CanonicalBytes() => CanonicalJson.Canonicalize(ToJsonNode().ToJsonString());

    /// <summary><see cref="CanonicalBytes"/> from the shared memo (<see cref="CanonicalJson.CanonicalizeShared"/>): never change the array.</summary>
    internal byte[] SharedCanonicalBytes() => CanonicalJson.CanonicalizeShared(ToJsonNode().ToJsonString());
}

/// <summary>
/// An execution request in its normalized form: every default applied (see docs/CONTRACT.md), so that the
/// request digest does not depend on which optional fields the author spelled out.
/// </summary>
public sealed class ExecRequest
{
    public const long DefaultTimeoutMs = 30_000;
    public const long MaxTimeoutMs = 86_400_000;
    public const long DefaultMaxOutputBytes = 1L << 20;
    public const long MaxMaxOutputBytes = 1L << 30;
    public const int MaxArgvCount = 65_536;
    public const int MaxArgvBytes = 1 << 20;
    public const int MaxEnvBytes = 1 << 20;
    public const int MaxStdinBytes = 64 << 20;
    /// <summary>Linux's PATH_MAX less the terminating NUL: the longest path (command, cwd, input, output) a request may name.</summary>
    public const int MaxPathBytes = 4095;

    public string Command { get; set; } = "";
    public string[] Argv { get; set; } = Array.Empty<string>();
    public string WorkspaceRoot { get; set; } = "";
    public string Cwd { get; set; } = ".";
    public SortedDictionary<string, string> Env { get; set; } = new(StringComparer.Ordinal);
    public string? Stdin { get; set; }
    public string[] Inputs { get; set; } = Array.Empty<string>();
    public string[] Outputs { get; set; } = Array.Empty<string>();
    public ExecPolicy Policy { get; set; } = new();
    public long TimeoutMs { get; set; } = DefaultTimeoutMs;
    public long MaxOutputBytes { get; set; } = DefaultMaxOutputBytes;

    public JsonObject ToJsonNode()
    {
        var env = new JsonObject();
        foreach (var (k, v) in Env) env[k] = v;
        return new JsonObject
        {
            ["command"] = Command,
            ["argv"] = new JsonArray(Argv.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["workspace_root"] = WorkspaceRoot,
            ["cwd"] = Cwd,
            ["env"] = env,
            ["stdin"] = Stdin,
            ["inputs"] = new JsonArray(Inputs.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["outputs"] = new JsonArray(Outputs.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["policy"] = Policy.ToJsonNode(),
            ["timeout_ms"] = TimeoutMs,
            ["max_output_bytes"] = MaxOutputBytes,
        };
    }

    public override string ToString() => ToJson();

    public string ToJson(bool indented = false) =>
        ToJsonNode().ToJsonString(indented ? JsonContract.Indented : JsonContract.Options);

    /// <summary>RFC 8785 bytes of the normalized request.</summary>
    public byte[] CanonicalBytes() => CanonicalJson.Canonicalize(ToJsonNode().ToJsonString());

    /// <summary><see cref="CanonicalBytes"/> from the shared memo (<see cref="CanonicalJson.CanonicalizeShared"/>): never change the array.</summary>
    internal byte[] SharedCanonicalBytes() => CanonicalJson.CanonicalizeShared(ToJsonNode().ToJsonString());

    /// <summary><c>request_digest</c>: BLAKE3 of <c>req:</c> ‖ canonical JSON of the normalized request.</summary>
    public string ComputeDigest(HashPrimitive hash) => hash.HashBytes(CanonicalBytes(), HashDomain.Request);

    /// <summary>Re-validates a request built in code (e.g. a typed object from PowerShell) by round-tripping it through the parser.</summary>
    public ExecRequest Validate(RequiemConfig? config = null)
    {
        var node = ToJsonNode();
        StrictText.EnsureWellFormed(node, "$");
        return ExecRequestParser.Parse(node.ToJsonString(JsonContract.Options), config);
    }
}

/// <summary>
/// Parses request JSON strictly: every malformation is a typed <see cref="RequiemException"/> and nothing runs.
/// Error ids: InvalidJson, InvalidRequest, UnknownRequestField, MissingRequestField, InvalidRequestFieldType,
/// InvalidRequestValue, InvalidRequestLimit, ArgvTooLarge, PathTooLong, WorkspaceRootNotAbsolute.
/// </summary>
public static class ExecRequestParser
{
    private static readonly string[] s_topFields =
        { "command", "argv", "workspace_root", "cwd", "env", "stdin", "inputs", "outputs", "policy", "timeout_ms", "max_output_bytes" };

    private static readonly string[] s_policyFields =
        { "mode", "scheduler_mode", "deterministic", "deny_network", "max_memory_bytes", "max_cpu_seconds", "max_open_files",
          "max_processes", "max_output_file_bytes", "env_allowlist", "env_denylist", "stochastic", "filesystem", "readonly_paths",
          "hidden_paths", "seccomp" };

    public static ExecRequest Parse(string json, RequiemConfig? config = null, object? target = null)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException ex)
        {
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "The request is not valid JSON: " + ex.Message, target ?? "request", ex);
        }
        catch (ArgumentException ex)
        {
            // The text holds a lone UTF-16 surrogate, which has no UTF-8 form.
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "The request is not valid Unicode text: " + ex.Message, target ?? "request", ex);
        }
        using (doc) return Parse(doc.RootElement, config);
    }

    /// <summary>Parses request JSON from bytes, refusing invalid UTF-8 (nothing is replaced by U+FFFD).</summary>
    public static ExecRequest Parse(ReadOnlySpan<byte> utf8, RequiemConfig? config = null, object? target = null) =>
        Parse(StrictText.Decode(utf8, "request", target ?? "request"), config, target);

    public static ExecRequest Parse(JsonElement root, RequiemConfig? config = null)
    {
        try
        {
            return ParseElement(root, config);
        }
        catch (InvalidOperationException ex)
        {
            // A string or name with an escaped lone surrogate ("\ud800") is valid JSON syntax but not Unicode text.
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "The request holds a string that is not valid Unicode (a lone surrogate escape): " + ex.Message, "request", ex);
        }
    }

    private static ExecRequest ParseElement(JsonElement root, RequiemConfig? config)
    {
        config ??= new RequiemConfig();
        if (root.ValueKind != JsonValueKind.Object)
            throw new RequiemException("InvalidRequest", ErrorKind.InvalidData, $"A request must be a JSON object, not {root.ValueKind}.", "$");
        CheckFields(root, "$", s_topFields);

        var r = new ExecRequest
        {
            Command = RequiredString(root, "command", "$"),
            Argv = StringArray(root, "argv", "$") ?? Array.Empty<string>(),
            WorkspaceRoot = RequiredString(root, "workspace_root", "$"),
            Cwd = OptString(root, "cwd", "$") ?? ".",
            Stdin = OptString(root, "stdin", "$"),
            Inputs = StringArray(root, "inputs", "$") ?? Array.Empty<string>(),
            Outputs = StringArray(root, "outputs", "$") ?? Array.Empty<string>(),
            TimeoutMs = OptLong(root, "timeout_ms", "$") ?? ExecRequest.DefaultTimeoutMs,
            MaxOutputBytes = OptLong(root, "max_output_bytes", "$") ?? ExecRequest.DefaultMaxOutputBytes,
        };

        if (r.Command.Length == 0) throw Value("$.command", "must not be empty");
        PathLength(r.Command, "$.command");
        PathLength(r.WorkspaceRoot, "$.workspace_root");
        PathLength(r.Cwd, "$.cwd");
        for (var i = 0; i < r.Inputs.Length; i++) PathLength(r.Inputs[i], $"$.inputs[{i}]");
        for (var i = 0; i < r.Outputs.Length; i++) PathLength(r.Outputs[i], $"$.outputs[{i}]");
        NoNul(r.Command, "$.command");
        if (!Path.IsPathFullyQualified(r.WorkspaceRoot))
            throw new RequiemException("WorkspaceRootNotAbsolute", ErrorKind.InvalidArgument,
                $"workspace_root '{r.WorkspaceRoot}' must be an absolute path.", r.WorkspaceRoot);
        NoNul(r.WorkspaceRoot, "$.workspace_root");
        NoNul(r.Cwd, "$.cwd");

        if (r.Argv.Length > ExecRequest.MaxArgvCount)
            throw new RequiemException("ArgvTooLarge", ErrorKind.LimitsExceeded,
                $"argv has {r.Argv.Length} elements; at most {ExecRequest.MaxArgvCount} are allowed.", "$.argv");
        long argvBytes = 0;
        for (var i = 0; i < r.Argv.Length; i++)
        {
            NoNul(r.Argv[i], $"$.argv[{i}]");
            argvBytes += Encoding.UTF8.GetByteCount(r.Argv[i]) + 1;
        }
        if (argvBytes > ExecRequest.MaxArgvBytes)
            throw new RequiemException("ArgvTooLarge", ErrorKind.LimitsExceeded,
                $"argv is {argvBytes} bytes; at most {ExecRequest.MaxArgvBytes} are allowed.", "$.argv");
        if (r.Stdin is not null && Encoding.UTF8.GetByteCount(r.Stdin) > ExecRequest.MaxStdinBytes)
            throw new RequiemException("InvalidRequestLimit", ErrorKind.LimitsExceeded,
                $"stdin is larger than {ExecRequest.MaxStdinBytes} bytes.", "$.stdin");
        for (var i = 0; i < r.Inputs.Length; i++) NoNul(r.Inputs[i], $"$.inputs[{i}]");
        for (var i = 0; i < r.Outputs.Length; i++) NoNul(r.Outputs[i], $"$.outputs[{i}]");

        if (root.TryGetProperty("env", out var env) && env.ValueKind != JsonValueKind.Null)
        {
            if (env.ValueKind != JsonValueKind.Object) throw Type("$.env", "an object of strings", env);
            long envBytes = 0;
            foreach (var p in env.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw Type($"$.env.{p.Name}", "a string", p.Value);
                if (p.Name.Length == 0 || p.Name.Contains('=') || p.Name.Contains('\0'))
                    throw Value($"$.env.{p.Name}", "is not a valid environment variable name");
                var v = p.Value.GetString()!;
                NoNul(v, $"$.env.{p.Name}");
                if (r.Env.ContainsKey(p.Name)) throw Value($"$.env.{p.Name}", "appears twice");
                r.Env[p.Name] = v;
                envBytes += p.Name.Length + v.Length + 2;
            }
            if (envBytes > ExecRequest.MaxEnvBytes)
                throw new RequiemException("InvalidRequestLimit", ErrorKind.LimitsExceeded, $"env is larger than {ExecRequest.MaxEnvBytes} bytes.", "$.env");
        }

        if (r.TimeoutMs is <= 0 or > ExecRequest.MaxTimeoutMs) throw Limit("$.timeout_ms", r.TimeoutMs, $"must be 1..{ExecRequest.MaxTimeoutMs}");
        if (r.MaxOutputBytes is < 0 or > ExecRequest.MaxMaxOutputBytes) throw Limit("$.max_output_bytes", r.MaxOutputBytes, $"must be 0..{ExecRequest.MaxMaxOutputBytes}");

        var policy = new ExecPolicy
        {
            DenyNetwork = config.Sandbox.DenyNetwork,
            MaxMemoryBytes = config.Sandbox.MaxMemoryBytes,
        };
        if (root.TryGetProperty("policy", out var pol) && pol.ValueKind != JsonValueKind.Null)
        {
            if (pol.ValueKind != JsonValueKind.Object) throw Type("$.policy", "an object", pol);
            CheckFields(pol, "$.policy", s_policyFields);
            policy.Mode = OptString(pol, "mode", "$.policy") ?? policy.Mode;
            if (policy.Mode is not ("strict" or "permissive")) throw Value("$.policy.mode", $"'{policy.Mode}' is not 'strict' or 'permissive'");
            policy.SchedulerMode = OptString(pol, "scheduler_mode", "$.policy") ?? policy.SchedulerMode;
            if (policy.SchedulerMode is not ("repro" or "turbo")) throw Value("$.policy.scheduler_mode", $"'{policy.SchedulerMode}' is not 'repro' or 'turbo'");
            policy.Deterministic = OptBool(pol, "deterministic", "$.policy") ?? policy.Deterministic;
            policy.DenyNetwork = OptBool(pol, "deny_network", "$.policy") ?? policy.DenyNetwork;
            policy.Stochastic = OptBool(pol, "stochastic", "$.policy") ?? policy.Stochastic;
            if (pol.TryGetProperty("max_memory_bytes", out _)) policy.MaxMemoryBytes = OptLong(pol, "max_memory_bytes", "$.policy");
            policy.MaxCpuSeconds = OptLong(pol, "max_cpu_seconds", "$.policy");
            policy.MaxOpenFiles = OptLong(pol, "max_open_files", "$.policy");
            policy.MaxProcesses = OptLong(pol, "max_processes", "$.policy");
            policy.MaxOutputFileBytes = OptLong(pol, "max_output_file_bytes", "$.policy");
            policy.EnvAllowlist = StringArray(pol, "env_allowlist", "$.policy") ?? Array.Empty<string>();
            policy.EnvDenylist = StringArray(pol, "env_denylist", "$.policy") ?? Array.Empty<string>();
            policy.Filesystem = OptString(pol, "filesystem", "$.policy") ?? policy.Filesystem;
            if (!Sandbox.FilesystemView.Modes.Contains(policy.Filesystem))
                throw Value("$.policy.filesystem", $"'{policy.Filesystem}' is not 'host', 'workspace' or 'hermetic'");
            policy.ReadonlyPaths = HostPaths(pol, "readonly_paths", allowHome: false) ?? policy.ReadonlyPaths;
            policy.HiddenPaths = HostPaths(pol, "hidden_paths", allowHome: true) ?? policy.HiddenPaths;
            policy.Seccomp = OptBool(pol, "seccomp", "$.policy") ?? policy.Seccomp;
        }
        if (policy.MaxMemoryBytes is { } mem && mem < 1) throw Limit("$.policy.max_memory_bytes", mem, "must be a positive number of bytes");
        if (policy.MaxCpuSeconds is { } cpu && cpu < 1) throw Limit("$.policy.max_cpu_seconds", cpu, "must be at least 1");
        if (policy.MaxOpenFiles is { } fds && fds < 1) throw Limit("$.policy.max_open_files", fds, "must be at least 1");
        if (policy.MaxProcesses is { } procs && procs is < 1 or > ExecPolicy.MaxMaxProcesses)
            throw Limit("$.policy.max_processes", procs, $"must be 1..{ExecPolicy.MaxMaxProcesses}");
        if (policy.MaxOutputFileBytes is { } fileCap && fileCap is < 0 or > ExecPolicy.MaxMaxOutputFileBytes)
            throw Limit("$.policy.max_output_file_bytes", fileCap, $"must be 0..{ExecPolicy.MaxMaxOutputFileBytes}");
        foreach (var name in policy.EnvAllowlist.Concat(policy.EnvDenylist))
        {
            if (name.Length == 0 || name.Contains('=') || name.Contains('\0'))
                throw Value("$.policy.env_allowlist", $"'{name}' is not a variable name or pattern");
        }
        r.Policy = policy;
        return r;
    }

    /// <summary>An array of absolute, normalised host paths below / (no '.', '..', '//', trailing '/'); sorted, duplicates removed.</summary>
    private static string[]? HostPaths(JsonElement pol, string name, bool allowHome)
    {
        var paths = StringArray(pol, name, "$.policy");
        if (paths is null) return null;
        for (var i = 0; i < paths.Length; i++)
        {
            var p = paths[i];
            NoNul(p, $"$.policy.{name}[{i}]");
            if (allowHome && p == "~") continue;
            if (!p.StartsWith('/') || p == "/" || p.EndsWith('/') || p.Contains("//", StringComparison.Ordinal)
                || p.Split('/').Any(seg => seg is "." or ".."))
                throw Value($"$.policy.{name}[{i}]", $"'{p}' is not a normalised absolute path below /{(allowHome ? " (or ~ for the caller's home)" : "")}");
        }
        return paths.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
    }

    private static void CheckFields(JsonElement obj, string where, string[] known)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in obj.EnumerateObject())
        {
            if (!seen.Add(p.Name))
                throw new RequiemException("InvalidRequest", ErrorKind.InvalidData, $"{where}.{p.Name} appears twice.", $"{where}.{p.Name}");
            if (Array.IndexOf(known, p.Name) < 0)
                throw new RequiemException("UnknownRequestField", ErrorKind.InvalidData,
                    $"{where}.{p.Name} is not a request field (known: {string.Join(", ", known)}).", $"{where}.{p.Name}");
        }
    }

    private static string RequiredString(JsonElement obj, string name, string where)
    {
        if (!obj.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null)
            throw new RequiemException("MissingRequestField", ErrorKind.InvalidData, $"{where}.{name} is required.", $"{where}.{name}");
        if (e.ValueKind != JsonValueKind.String) throw Type($"{where}.{name}", "a string", e);
        return e.GetString()!;
    }

    private static string? OptString(JsonElement obj, string name, string where)
    {
        if (!obj.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.String) throw Type($"{where}.{name}", "a string", e);
        return e.GetString();
    }

    private static bool? OptBool(JsonElement obj, string name, string where)
    {
        if (!obj.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind is JsonValueKind.True or JsonValueKind.False) return e.GetBoolean();
        throw Type($"{where}.{name}", "true or false", e);
    }

    private static long? OptLong(JsonElement obj, string name, string where)
    {
        if (!obj.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.Number) throw Type($"{where}.{name}", "a whole number", e);
        if (e.TryGetInt64(out var v)) return v;
        throw new RequiemException("InvalidRequestLimit", ErrorKind.InvalidArgument,
            $"{where}.{name} = {e.GetRawText()} is not a whole number in range.", $"{where}.{name}");
    }

    private static string[]? StringArray(JsonElement obj, string name, string where)
    {
        if (!obj.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.Array) throw Type($"{where}.{name}", "an array of strings", e);
        var len = e.GetArrayLength();
        if (name == "argv" && len > ExecRequest.MaxArgvCount)
            throw new RequiemException("ArgvTooLarge", ErrorKind.LimitsExceeded,
                $"argv has {len} elements; at most {ExecRequest.MaxArgvCount} are allowed.", "$.argv");
        var list = new string[len];
        var i = 0;
        foreach (var item in e.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw Type($"{where}.{name}[{i}]", "a string", item);
            list[i++] = item.GetString()!;
        }
        return list;
    }

    private static void PathLength(string path, string where)
    {
        if (path.Length > ExecRequest.MaxPathBytes || Encoding.UTF8.GetByteCount(path) > ExecRequest.MaxPathBytes)
            throw new RequiemException("PathTooLong", ErrorKind.InvalidArgument,
                $"{where} is longer than {ExecRequest.MaxPathBytes} bytes (PATH_MAX), so no system could open it.", where);
    }

    private static void NoNul(string s, string where)
    {
        if (s.Contains('\0')) throw Value(where, "contains a NUL character");
    }

    private static RequiemException Type(string where, string expected, JsonElement actual) =>
        new("InvalidRequestFieldType", ErrorKind.InvalidData, $"{where} must be {expected}, not {actual.ValueKind} {Short(actual.GetRawText())}.", where);

    private static RequiemException Value(string where, string why) =>
        new("InvalidRequestValue", ErrorKind.InvalidArgument, $"{where} {why}.", where);

    private static RequiemException Limit(string where, long value, string why) =>
        new("InvalidRequestLimit", ErrorKind.InvalidArgument, $"{where} = {value} {why}.", where);

    private static string Short(string s) => s.Length > 40 ? s[..40] + "…" : s;
}
