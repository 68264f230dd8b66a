using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Bench;

/// <summary>
/// A bench spec (docs/CONTRACT.md "Bench spec"): one or more cases, warm-up runs, measured runs (count and/or
/// minimum time), optional prepare/cleanup command lines.
/// </summary>
public sealed class BenchSpec
{
    public const string CurrentVersion = "1";

    public string BenchSpecVersion { get; init; } = CurrentVersion;
    public string? Name { get; init; }
    /// <summary>Unmeasured runs before the measured ones (per case).</summary>
    public int Warmup { get; init; } = 1;
    /// <summary>Minimum number of measured runs per case.</summary>
    public int Runs { get; init; } = 10;
    /// <summary>Keep measuring until this much measured wall time has passed (and at least <see cref="Runs"/> runs).</summary>
    public double MinTimeSeconds { get; init; }
    /// <summary>Upper bound on measured runs when <see cref="MinTimeSeconds"/> asks for more.</summary>
    public int MaxRuns { get; init; } = 1000;
    /// <summary>Kill a run (its whole process group) after this many milliseconds; null = no limit.</summary>
    public long? TimeoutMs { get; init; }
    /// <summary>Shell command line run before every run (warm-up and measured) of every case, not measured.</summary>
    public string? Prepare { get; init; }
    /// <summary>Shell command line run once after the last run of every case, not measured.</summary>
    public string? Cleanup { get; init; }
    public required List<BenchCase> Cases { get; init; }

    /// <summary>Checks the spec; throws <c>InvalidBenchSpec</c> naming the offending field.</summary>
    public BenchSpec Validate()
    {
        if (BenchSpecVersion != CurrentVersion) throw Invalid($"bench_spec_version must be \"{CurrentVersion}\", not \"{BenchSpecVersion}\".", "bench_spec_version");
        if (Warmup < 0) throw Invalid("warmup must be 0 or more.", "warmup");
        if (Runs < 1) throw Invalid("runs must be at least 1.", "runs");
        if (MinTimeSeconds < 0 || double.IsNaN(MinTimeSeconds)) throw Invalid("min_time_seconds must be 0 or more.", "min_time_seconds");
        if (MaxRuns < Runs) throw Invalid("max_runs must be at least runs.", "max_runs");
        if (TimeoutMs is <= 0) throw Invalid("timeout_ms must be positive.", "timeout_ms");
        if (Cases is null || Cases.Count == 0) throw Invalid("A bench spec needs at least one case.", "cases");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Cases.Count; i++)
        {
            var c = Cases[i];
            if (c is null) throw Invalid($"cases[{i}] is null.", $"cases[{i}]");
            if (string.IsNullOrWhiteSpace(c.Name)) throw Invalid($"cases[{i}] needs a name.", $"cases[{i}].name");
            if (!names.Add(c.Name)) throw Invalid($"Two cases are named '{c.Name}'.", c.Name);
            var hasLine = !string.IsNullOrEmpty(c.CommandLine);
            var hasCommand = !string.IsNullOrEmpty(c.Command);
            if (hasLine == hasCommand) throw Invalid($"Case '{c.Name}' needs exactly one of command_line (a shell command line) or command (+ argv).", c.Name);
            if (hasLine && c.Argv is { Count: > 0 }) throw Invalid($"Case '{c.Name}': argv goes with command, not with command_line.", c.Name);
            if (c.Warmup is < 0) throw Invalid($"Case '{c.Name}': warmup must be 0 or more.", c.Name);
            if (c.Runs is < 1) throw Invalid($"Case '{c.Name}': runs must be at least 1.", c.Name);
            if (c.TimeoutMs is <= 0) throw Invalid($"Case '{c.Name}': timeout_ms must be positive.", c.Name);
            foreach (var f in c.OutputFiles ?? new List<string>())
                if (string.IsNullOrWhiteSpace(f)) throw Invalid($"Case '{c.Name}': output_files has an empty entry.", c.Name);
        }
        return this;
    }

    private static RequiemException Invalid(string message, object? target) =>
        new("InvalidBenchSpec", ErrorKind.InvalidData, "Invalid bench spec: " + message, target);

    /// <summary>Canonical JSON bytes of the spec (RFC 8785).</summary>
    public byte[] ToCanonicalJson() => CanonicalJson.Serialize(this, JsonContract.Options);

    /// <summary>The spec digest: plain BLAKE3 (no domain prefix) of the spec's canonical JSON.</summary>
    public string ComputeDigest(HashPrimitive hash) => hash.HashBytes(ToCanonicalJson(), HashDomain.None);

    public static BenchSpec Parse(string json, object? target = null) =>
        JsonContract.Deserialize<BenchSpec>(json, "bench spec", target).Validate();

    /// <summary>A one-case spec for a shell command line (Invoke-RequiemBench -Command).</summary>
    public static BenchSpec ForCommandLine(string commandLine, string? name, int runs, int warmup, double minTimeSeconds = 0,
        string? prepare = null, string? cleanup = null, string? cwd = null, Dictionary<string, string?>? env = null, long? timeoutMs = null) =>
        new BenchSpec
        {
            Warmup = warmup,
            Runs = runs,
            MinTimeSeconds = minTimeSeconds,
            MaxRuns = Math.Max(1000, runs),
            Prepare = prepare,
            Cleanup = cleanup,
            TimeoutMs = timeoutMs,
            Cases = new List<BenchCase> { new() { Name = string.IsNullOrEmpty(name) ? commandLine : name, CommandLine = commandLine, Cwd = cwd, Env = env } },
        }.Validate();

    /// <summary>
    /// Builds a spec from a PowerShell-ish object graph (dictionaries, lists, scalars). Keys may be snake_case
    /// (<c>min_time_seconds</c>) or PascalCase (<c>MinTimeSeconds</c>); both map to the JSON field.
    /// </summary>
    public static BenchSpec FromObjectGraph(object graph)
    {
        var node = ToNode(graph, "spec", convertKeys: true);
        return Parse(node?.ToJsonString() ?? "null", "spec");
    }

    /// <summary>JSON text of a plain object graph (dictionaries, lists, scalars), keys kept as they are.</summary>
    public static string GraphToJson(object? graph) => ToNode(graph, "$", convertKeys: false)?.ToJsonString() ?? "null";

    private static JsonNode? ToNode(object? value, string path, bool convertKeys)
    {
        switch (value)
        {
            case null: return null;
            case string s: return JsonValue.Create(s);
            case bool b: return JsonValue.Create(b);
            case int or long or short or byte or sbyte or uint or ushort: return JsonValue.Create(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
            case double or float or decimal: return JsonValue.Create(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture));
            case JsonElement e: return JsonNode.Parse(e.GetRawText());
            case DateTime dt: return JsonValue.Create(new DateTimeOffset(dt.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(dt, DateTimeKind.Utc) : dt));
            case DateTimeOffset dto: return JsonValue.Create(dto);
            case System.Collections.IDictionary d:
            {
                var o = new JsonObject();
                foreach (System.Collections.DictionaryEntry kv in d)
                {
                    var key = convertKeys ? ToSnake(kv.Key?.ToString() ?? "") : kv.Key?.ToString() ?? "";
                    if (o.ContainsKey(key)) throw Invalid($"'{kv.Key}' is given twice at {path}.", kv.Key);
                    o[key] = convertKeys && key == "env" ? ToEnvNode(kv.Value, path + ".env") : ToNode(kv.Value, path + "." + key, convertKeys);
                }
                return o;
            }
            case System.Collections.IEnumerable list:
            {
                var a = new JsonArray();
                var i = 0;
                foreach (var item in list) a.Add(ToNode(item, $"{path}[{i++}]", convertKeys));
                return a;
            }
            default:
                throw Invalid($"A value of type {value.GetType().Name} at {path} cannot be part of a bench spec.", path);
        }
    }

    // Environment variable names are kept as written (PATH stays PATH).
    private static JsonNode? ToEnvNode(object? value, string path)
    {
        if (value is not System.Collections.IDictionary d) return ToNode(value, path, convertKeys: false);
        var o = new JsonObject();
        foreach (System.Collections.DictionaryEntry kv in d) o[kv.Key?.ToString() ?? ""] = kv.Value is null ? null : JsonValue.Create(kv.Value.ToString());
        return o;
    }

    internal static string ToSnake(string key)
    {
        if (key.Contains('_') || key.All(c => !char.IsUpper(c))) return key.ToLowerInvariant();
        var sb = new StringBuilder();
        for (var i = 0; i < key.Length; i++)
        {
            var c = key[i];
            if (char.IsUpper(c) && i > 0 && (char.IsLower(key[i - 1]) || (i + 1 < key.Length && char.IsLower(key[i + 1])))) sb.Append('_');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}

/// <summary>One case of a bench spec: a shell command line, or an exec-request-style program + argv.</summary>
public sealed class BenchCase
{
    public required string Name { get; init; }
    /// <summary>A shell command line (/bin/sh -c on Unix, cmd /d /s /c on Windows).</summary>
    public string? CommandLine { get; init; }
    /// <summary>The program, as in an exec request (found on PATH when it has no slash).</summary>
    public string? Command { get; init; }
    /// <summary>The program's arguments (not including the program itself), as in an exec request.</summary>
    public List<string>? Argv { get; init; }
    /// <summary>Environment variables set (value) or removed (null) on top of the inherited environment.</summary>
    public Dictionary<string, string?>? Env { get; init; }
    /// <summary>Working directory; relative paths resolve against the directory the bench was started from.</summary>
    public string? Cwd { get; init; }
    /// <summary>Files (relative to cwd) whose content is part of each run's result digest.</summary>
    public List<string>? OutputFiles { get; init; }
    public string? Prepare { get; init; }
    public string? Cleanup { get; init; }
    public int? Warmup { get; init; }
    public int? Runs { get; init; }
    public long? TimeoutMs { get; init; }

    /// <summary>The argv vector to launch (argv[0] = program).</summary>
    public IReadOnlyList<string> ToArgv() =>
        CommandLine is { Length: > 0 } line ? ProcessMeasure.ShellArgv(line) : new[] { Command! }.Concat(Argv ?? new List<string>()).ToArray();

    /// <summary>How the case reads to a person: the command line, or the argv joined with spaces.</summary>
    public string Display() => CommandLine ?? string.Join(' ', new[] { Command! }.Concat(Argv ?? new List<string>()));
}
