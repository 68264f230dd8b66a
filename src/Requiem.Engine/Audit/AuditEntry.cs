using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Audit;

/// <summary>Who made a change: the OS user, the machine, and the process.</summary>
public sealed class AuditActor
{
    public required string User { get; init; }
    public required string Host { get; init; }
    public required int Pid { get; init; }
    public required string Process { get; init; }

    private static AuditActor? s_current;

    /// <summary>This process (read once: none of it changes while the process runs).</summary>
    public static AuditActor Current => s_current ??= new AuditActor
    {
        User = Environment.UserName,
        Host = HostName(),
        Pid = Environment.ProcessId,
        Process = CurrentProcessName(),
    };

    // Environment.MachineName is empty in some containers (no uname nodename); the DNS host name is the same thing there.
    private static string HostName()
    {
        if (!string.IsNullOrEmpty(Environment.MachineName)) return Environment.MachineName;
        try
        {
            var dns = System.Net.Dns.GetHostName();
            if (!string.IsNullOrEmpty(dns)) return dns;
            return OperatingSystem.IsLinux() && File.Exists("/etc/hostname") ? File.ReadAllText("/etc/hostname").Trim() : "";
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or UnauthorizedAccessException) { return ""; }
    }

    private static string CurrentProcessName()
    {
        try
        {
            using var p = System.Diagnostics.Process.GetCurrentProcess();
            return p.ProcessName;
        }
        catch (InvalidOperationException)
        {
            return "";
        }
    }

    public override string ToString() => $"{User}@{Host} ({Process} {Pid})";
}

/// <summary>
/// One line of an audit log: a state change of one store. <see cref="Hash"/> is BLAKE3 over <c>audit:</c> ‖ the
/// canonical JSON (RFC 8785) of the entry without its <c>hash</c> member, and <see cref="Prev"/> is the previous
/// entry's hash, so that changing, removing or moving any entry breaks the chain (docs/CONTRACT.md).
/// </summary>
public sealed class AuditEntry
{
    public const int CurrentFormat = 1;

    public int Format { get; init; } = CurrentFormat;
    public required long Seq { get; init; }
    /// <summary>When the entry was appended (UTC).</summary>
    public required DateTime Time { get; init; }
    public required AuditActor Actor { get; init; }
    /// <summary>The tenant whose store this is; null for the store itself (no tenant).</summary>
    public string? Tenant { get; init; }
    public required string Action { get; init; }
    public required IReadOnlyList<string> Digests { get; init; }
    /// <summary>Action-specific facts (a ref name, counts); values are strings, numbers, booleans or lists of them.</summary>
    public required IReadOnlyDictionary<string, object?> Details { get; init; }
    /// <summary>The previous entry's hash; null for the first entry.</summary>
    public string? Prev { get; init; }
    public required string Hash { get; init; }
    /// <summary>The 1-based line of the log this entry was read from (0 for an entry just appended).</summary>
    public long Line { get; init; }

    internal const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    /// <summary>The entry as a JSON object with the contract's snake_case names; without <c>hash</c> when it is being hashed.</summary>
    internal static JsonObject ToNode(int format, long seq, DateTime time, AuditActor actor, string? tenant, string action,
        IReadOnlyList<string> digests, IReadOnlyDictionary<string, object?> details, string? prev, string? hash)
    {
        var o = new JsonObject
        {
            ["v"] = format,
            ["seq"] = seq,
            ["time"] = time.ToUniversalTime().ToString(TimeFormat, CultureInfo.InvariantCulture),
            ["actor"] = new JsonObject
            {
                ["user"] = actor.User, ["host"] = actor.Host, ["pid"] = actor.Pid, ["process"] = actor.Process,
            },
            ["tenant"] = tenant,
            ["action"] = action,
            ["digests"] = new JsonArray(digests.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
            ["details"] = JsonSerializer.SerializeToNode(details, JsonContract.Options) ?? new JsonObject(),
            ["prev"] = prev,
        };
        if (hash is not null) o["hash"] = hash;
        return o;
    }

    /// <summary>The entry hash: <c>audit:</c> ‖ canonical JSON of the entry object without its hash member.</summary>
    internal static string ComputeHash(HashPrimitive hash, JsonObject withoutHash) =>
        hash.HashBytes(CanonicalJson.Canonicalize(withoutHash.ToJsonString()), HashDomain.Audit);

    /// <summary>The canonical JSON line of this entry (what the log holds, without the newline).</summary>
    public string ToJsonLine() =>
        Encoding.UTF8.GetString(CanonicalJson.Canonicalize(
            ToNode(Format, Seq, Time, Actor, Tenant, Action, Digests, Details, Prev, Hash).ToJsonString()));

    /// <summary>Reads an entry from a parsed line; null (with the reason) when a required member is missing or of the wrong type.</summary>
    internal static AuditEntry? FromJson(JsonElement e, long line, out string? problem)
    {
        problem = null;
        try
        {
            if (e.ValueKind != JsonValueKind.Object) { problem = "the line is not a JSON object"; return null; }
            var actor = e.GetProperty("actor");
            var prev = e.GetProperty("prev");
            var tenant = e.TryGetProperty("tenant", out var t) ? t : default;
            var details = e.TryGetProperty("details", out var d) && d.ValueKind == JsonValueKind.Object
                ? d.EnumerateObject().ToDictionary(p => p.Name, p => ToClr(p.Value), StringComparer.Ordinal)
                : new Dictionary<string, object?>(StringComparer.Ordinal);
            return new AuditEntry
            {
                Format = e.GetProperty("v").GetInt32(),
                Seq = e.GetProperty("seq").GetInt64(),
                Time = DateTime.ParseExact(e.GetProperty("time").GetString()!, TimeFormat, CultureInfo.InvariantCulture,
                    DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                Actor = new AuditActor
                {
                    User = actor.GetProperty("user").GetString() ?? "",
                    Host = actor.GetProperty("host").GetString() ?? "",
                    Pid = actor.GetProperty("pid").GetInt32(),
                    Process = actor.GetProperty("process").GetString() ?? "",
                },
                Tenant = tenant.ValueKind == JsonValueKind.String ? tenant.GetString() : null,
                Action = e.GetProperty("action").GetString() ?? "",
                Digests = e.GetProperty("digests").EnumerateArray().Select(x => x.GetString() ?? "").ToArray(),
                Details = details,
                Prev = prev.ValueKind == JsonValueKind.Null ? null : prev.GetString(),
                Hash = e.GetProperty("hash").GetString() ?? "",
                Line = line,
            };
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentNullException)
        {
            problem = "a member is missing or has the wrong type: " + ex.Message;
            return null;
        }
    }

    private static object? ToClr(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Number => v.TryGetInt64(out var n) ? n : v.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => v.EnumerateArray().Select(ToClr).ToArray(),
        JsonValueKind.Object => v.EnumerateObject().ToDictionary(p => p.Name, p => ToClr(p.Value), StringComparer.Ordinal),
        _ => null,
    };
}
