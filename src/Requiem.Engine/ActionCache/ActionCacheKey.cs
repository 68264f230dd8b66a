using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.ActionCache;

/// <summary>The machine a result is valid for: operating system family, CPU architecture and the JSON contract version.</summary>
public sealed record ActionCachePlatform(string Os, string Architecture, string ContractVersion)
{
    public static ActionCachePlatform Current { get; } = new(
        OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macos" : OperatingSystem.IsLinux() ? "linux" : "other",
        RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
        EngineInfo.ContractVersion);

    public override string ToString() => $"{Os}/{Architecture}, contract {ContractVersion}";
}

/// <summary>
/// What an action-cache key is computed over: the <c>req:</c> digest of the canonical request (policy included), the
/// <c>cas:</c> digest of every declared input file by path, the <c>cas:</c> digest of the resolved command binary, and
/// the platform. <see cref="ComputeKey"/> = BLAKE3(<c>ac:</c> ‖ RFC 8785 canonical JSON of <see cref="ToJsonNode"/>).
/// </summary>
public sealed class ActionCacheKeyComponents
{
    public required string HashAlgorithm { get; init; }
    public required string RequestDigest { get; init; }
    /// <summary>Sorted by path (ordinal), as the run hashes them.</summary>
    public required IReadOnlyList<InputFileDigest> Inputs { get; init; }
    public required string CommandDigest { get; init; }
    public required ActionCachePlatform Platform { get; init; }

    /// <summary>The components of a result that ran (what it recorded is exactly what it ran with); null without a command digest.</summary>
    public static ActionCacheKeyComponents? FromResult(ExecResult result) =>
        result.CommandDigest is null ? null : new ActionCacheKeyComponents
        {
            HashAlgorithm = result.HashAlgorithm,
            RequestDigest = result.RequestDigest,
            Inputs = result.InputDigests,
            CommandDigest = result.CommandDigest,
            Platform = ActionCachePlatform.Current,
        };

    public JsonObject ToJsonNode() => new()
    {
        ["hash_algorithm"] = HashAlgorithm,
        ["request_digest"] = RequestDigest,
        ["input_digests"] = new JsonArray(Inputs.OrderBy(i => i.Path, StringComparer.Ordinal)
            .Select(i => (JsonNode?)new JsonObject { ["path"] = i.Path, ["digest"] = i.Digest }).ToArray()),
        ["command_digest"] = CommandDigest,
        ["platform"] = new JsonObject
        {
            ["os"] = Platform.Os,
            ["architecture"] = Platform.Architecture,
            ["contract_version"] = Platform.ContractVersion,
        },
    };

    /// <summary>The key: lowercase hex BLAKE3 of <c>ac:</c> ‖ the canonical JSON of the components.</summary>
    public string ComputeKey(HashPrimitive hash) =>
        hash.HashBytes(CanonicalJson.Canonicalize(ToJsonNode().ToJsonString()), HashDomain.ActionCache);

    public static ActionCacheKeyComponents FromJsonNode(JsonObject o)
    {
        string S(JsonNode? n, string name) => n?.GetValue<string>() ?? throw new InvalidOperationException($"'{name}' is missing");
        var platform = o["platform"] as JsonObject ?? throw new InvalidOperationException("'platform' is missing");
        return new ActionCacheKeyComponents
        {
            HashAlgorithm = S(o["hash_algorithm"], "hash_algorithm"),
            RequestDigest = S(o["request_digest"], "request_digest"),
            Inputs = (o["input_digests"] as JsonArray ?? throw new InvalidOperationException("'input_digests' is missing"))
                .Select(x => new InputFileDigest { Path = S(x?["path"], "input_digests[].path"), Digest = S(x?["digest"], "input_digests[].digest") })
                .ToArray(),
            CommandDigest = S(o["command_digest"], "command_digest"),
            Platform = new ActionCachePlatform(S(platform["os"], "platform.os"), S(platform["architecture"], "platform.architecture"),
                S(platform["contract_version"], "platform.contract_version")),
        };
    }

    /// <summary>One line for -Verbose: every component, inputs by path.</summary>
    public string Describe(string? commandPath = null)
    {
        var inputs = Inputs.Count == 0 ? "no declared inputs"
            : $"{Inputs.Count} input(s): " + string.Join(", ", Inputs.Take(8).Select(i => $"{i.Path}={Short(i.Digest)}")) + (Inputs.Count > 8 ? ", …" : "");
        return $"request {Short(RequestDigest)}, {inputs}, command {(commandPath is null ? "" : commandPath + "=")}{Short(CommandDigest)}, platform {Platform}";
    }

    internal static string Short(string digest) => digest.Length > 12 ? digest[..12] : digest;
}
