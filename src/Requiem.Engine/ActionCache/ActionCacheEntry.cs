using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.ActionCache;

/// <summary>A declared output file as an entry records it: path in the workspace, CAS digest, size, executable bit.</summary>
public sealed class ActionCacheOutputFile
{
    public required string Path { get; init; }
    public required string Digest { get; init; }
    public required long Bytes { get; init; }
    public bool Executable { get; init; }

    public override string ToString() => $"{Path} ({Bytes} bytes)";
}

/// <summary>
/// One action-cache entry (docs/CONTRACT.md "Action cache"): the recorded result of a request, the CAS digests of its
/// stdout, stderr and output files, the key components it was stored under (so a miss can be explained) and when it
/// was created. Also the pipeline object of <c>Get-RequiemCacheEntry</c>.
/// </summary>
public sealed class ActionCacheEntry
{
    public const int CurrentVersion = 1;

    public required string Key { get; init; }
    public required DateTime CreatedAt { get; init; }
    /// <summary>The request's <c>command</c> as written (entries of the same command are compared to explain a miss).</summary>
    public required string Command { get; init; }
    /// <summary>The command binary the run resolved and digested.</summary>
    public string? CommandPath { get; init; }
    public required ActionCacheKeyComponents Components { get; init; }
    /// <summary>The CAS object holding the canonical request JSON.</summary>
    public required string RequestBlobDigest { get; init; }
    /// <summary>The <c>exec_result</c> manifest the run stored (ref <c>results/&lt;result_digest&gt;</c>).</summary>
    public string? ManifestDigest { get; init; }
    public required string StdoutDigest { get; init; }
    public required string StderrDigest { get; init; }
    public required IReadOnlyList<ActionCacheOutputFile> OutputFiles { get; init; }
    /// <summary>The recorded result document, exactly as the run produced it (its <c>result_digest</c> covers it).</summary>
    public required JsonObject ResultDocument { get; init; }

    // ---- filled by the reader ----
    /// <summary>When the entry stops being used and stops keeping its objects from garbage collection.</summary>
    public DateTime ExpiresAt { get; set; }
    public bool Expired { get; set; }
    /// <summary>The entry file.</summary>
    public string? Path { get; set; }

    // ---- conveniences for the pipeline view ----
    public int? ExitCode => ResultDocument["exit_code"]?.GetValue<int>();
    public string ResultDigest => ResultDocument["result_digest"]?.GetValue<string>() ?? "";
    public long DurationMs => ResultDocument["duration_ms"]?.GetValue<long>() ?? 0;
    public string RequestDigest => Components.RequestDigest;
    public string CommandDigest => Components.CommandDigest;
    public IReadOnlyList<InputFileDigest> Inputs => Components.Inputs;
    public ActionCachePlatform Platform => Components.Platform;

    /// <summary>The digests this entry keeps alive: stdout, stderr, outputs and the request (data), and the result manifest.</summary>
    public IEnumerable<(string Hash, bool IsManifest)> ReferencedObjects()
    {
        yield return (StdoutDigest, false);
        yield return (StderrDigest, false);
        yield return (RequestBlobDigest, false);
        foreach (var f in OutputFiles) yield return (f.Digest, false);
        if (ManifestDigest is not null) yield return (ManifestDigest, true);
    }

    public ExecResult ToResult() => ExecResult.FromJsonNode(ResultDocument, Key);

    public JsonObject ToJsonNode() => new()
    {
        ["action_cache_entry_version"] = CurrentVersion,
        ["key"] = Key,
        ["created_at"] = CreatedAt.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
        ["command"] = Command,
        ["command_path"] = CommandPath,
        ["key_components"] = Components.ToJsonNode(),
        ["request_blob_digest"] = RequestBlobDigest,
        ["manifest_digest"] = ManifestDigest,
        ["stdout_digest"] = StdoutDigest,
        ["stderr_digest"] = StderrDigest,
        ["output_files"] = new JsonArray(OutputFiles.Select(f => (JsonNode?)new JsonObject
        {
            ["path"] = f.Path, ["digest"] = f.Digest, ["bytes"] = f.Bytes, ["executable"] = f.Executable,
        }).ToArray()),
        ["result"] = ResultDocument.DeepClone(),
    };

    public byte[] ToJsonBytes() => Encoding.UTF8.GetBytes(ToJsonNode().ToJsonString(JsonContract.Indented) + "\n");

    /// <summary>
    /// Parses an entry and checks that it is what its name says: the key recomputed from its components equals
    /// <paramref name="key"/>, the result's <c>result_digest</c> matches the result, and the digests the entry names
    /// are the result's. Anything else is <c>InvalidCacheEntry</c> (a damaged or edited entry is never used).
    /// </summary>
    public static ActionCacheEntry Parse(ReadOnlySpan<byte> bytes, string key, HashPrimitive hash)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(bytes) as JsonObject ?? throw Invalid(key, "it is not a JSON object");
        }
        catch (JsonException ex)
        {
            throw Invalid(key, "it is not valid JSON: " + ex.Message, ex);
        }
        ActionCacheEntry entry;
        try
        {
            if (o["action_cache_entry_version"]?.GetValue<int>() != CurrentVersion)
                throw Invalid(key, $"its action_cache_entry_version is not {CurrentVersion}");
            string S(string name) => o[name]?.GetValue<string>() ?? throw Invalid(key, $"'{name}' is missing");
            var created = DateTime.Parse(S("created_at"), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
            entry = new ActionCacheEntry
            {
                Key = S("key"),
                CreatedAt = created,
                Command = S("command"),
                CommandPath = o["command_path"]?.GetValue<string>(),
                Components = ActionCacheKeyComponents.FromJsonNode(o["key_components"] as JsonObject ?? throw Invalid(key, "'key_components' is missing")),
                RequestBlobDigest = S("request_blob_digest"),
                ManifestDigest = o["manifest_digest"]?.GetValue<string>(),
                StdoutDigest = S("stdout_digest"),
                StderrDigest = S("stderr_digest"),
                OutputFiles = (o["output_files"] as JsonArray ?? throw Invalid(key, "'output_files' is missing")).Select(x => new ActionCacheOutputFile
                {
                    Path = x?["path"]?.GetValue<string>() ?? throw Invalid(key, "an output file has no path"),
                    Digest = x["digest"]?.GetValue<string>() ?? throw Invalid(key, "an output file has no digest"),
                    Bytes = x["bytes"]?.GetValue<long>() ?? throw Invalid(key, "an output file has no size"),
                    Executable = x["executable"]?.GetValue<bool>() ?? false,
                }).ToArray(),
                ResultDocument = o["result"] as JsonObject ?? throw Invalid(key, "'result' is missing"),
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            throw Invalid(key, "a field has the wrong type or shape: " + ex.Message, ex);
        }

        if (entry.Key != key) throw Invalid(key, $"it names the key {entry.Key}");
        var recomputed = entry.Components.ComputeKey(hash);
        if (recomputed != key) throw Invalid(key, $"its key components hash to {recomputed}, not to its key");
        foreach (var (named, _) in entry.ReferencedObjects())
        {
            if (!Hex.IsDigest(named)) throw Invalid(key, $"'{named}' is not a digest");
        }
        foreach (var f in entry.OutputFiles) CheckOutputPath(key, f.Path);
        CheckNoOutputInsideAnother(key, entry.OutputFiles);

        ExecResult result;
        try
        {
            result = entry.ToResult();
        }
        catch (RequiemException ex)
        {
            throw Invalid(key, "its result is not a valid result: " + ex.Message, ex);
        }
        var digest = ExecResult.ComputeDigest(entry.ResultDocument, hash);
        if (digest != result.ResultDigest) throw Invalid(key, $"its result hashes to {digest}, not to its result_digest {result.ResultDigest}");
        if (result.StdoutDigest != entry.StdoutDigest || result.StderrDigest != entry.StderrDigest || result.RequestDigest != entry.Components.RequestDigest
            || result.RequestBlobDigest != entry.RequestBlobDigest
            || !result.OutputFiles.Select(f => (f.Path, f.Digest, f.Bytes)).SequenceEqual(entry.OutputFiles.Select(f => (f.Path, f.Digest, f.Bytes))))
            throw Invalid(key, "the digests it names are not those of its result");
        return entry;
    }

    private static void CheckOutputPath(string key, string path)
    {
        if (path.Length == 0 || path.StartsWith('/') || path.StartsWith('\\') || System.IO.Path.IsPathRooted(path)
            || path.Contains('\0') || path.Split('/', '\\').Any(s => s is ".." or ""))
            throw Invalid(key, $"the output path '{path}' is not a relative path inside the workspace");
    }

    /// <summary>
    /// A run records each file once, and never a file and a file below it; an entry that does could only make a restore
    /// replace its own first file or fail half-way (a file where a folder must be created).
    /// </summary>
    private static void CheckNoOutputInsideAnother(string key, IReadOnlyList<ActionCacheOutputFile> files)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var segmentLists = files.Select(f => f.Path.Split('/', '\\').Where(s => s != ".").ToArray()).ToArray();
        foreach (var segments in segmentLists)
        {
            if (!seen.Add(string.Join('/', segments))) throw Invalid(key, $"the output path '{string.Join('/', segments)}' is named twice");
        }
        foreach (var segments in segmentLists)
        {
            for (var n = 1; n < segments.Length; n++)
            {
                var parent = string.Join('/', segments[..n]);
                if (seen.Contains(parent)) throw Invalid(key, $"the output path '{string.Join('/', segments)}' lies below the output file '{parent}'");
            }
        }
    }

    private static RequiemException Invalid(string key, string why, Exception? inner = null) =>
        new("InvalidCacheEntry", ErrorKind.InvalidData, $"The action-cache entry {key} is not usable: {why}.", key, inner);

    public override string ToString() => $"{Key[..12]} {Command} (exit {ExitCode}, {OutputFiles.Count} output file(s), created {CreatedAt:u})";
}
