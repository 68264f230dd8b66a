using System.Text;
using System.Text.Json;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Proof;

/// <summary>
/// A proof bundle (docs/CONTRACT.md, "Proof bundle"): the Requiem CLI's fields plus what an offline verifier needs.
/// Serialized as RFC 8785 canonical JSON; every field is either a Merkle leaf, the root itself, or a fixed constant,
/// so that no byte of a bundle can change without verification noticing.
/// </summary>
public sealed record ProofBundle
{
    public const string CurrentVersion = "1";
    public const string PayloadType = "application/vnd.requiem.proof+json";

    /// <summary>Every field of a bundle, in the order the contract documents them.</summary>
    public static readonly IReadOnlyList<string> FieldNames = new[]
    {
        "proof_version", "merkle_root", "input_digests", "output_digests", "policy_digest", "replay_transcript_digest",
        "signature_stub", "engine_version", "contract_version", "request_digest", "result_digest", "request_object",
    };

    public string ProofVersion { get; init; } = CurrentVersion;
    public required string MerkleRoot { get; init; }
    /// <summary>The request digest (<c>req:</c>) first, then the digests of the request's input files.</summary>
    public required IReadOnlyList<string> InputDigests { get; init; }
    /// <summary>stdout, stderr, then each output file (sorted by path) — CAS names.</summary>
    public required IReadOnlyList<string> OutputDigests { get; init; }
    public required string PolicyDigest { get; init; }
    /// <summary>The CAS name of the canonical JSON of the whole execution result (the transcript a replay compares against).</summary>
    public required string ReplayTranscriptDigest { get; init; }
    /// <summary>Always empty: kept for compatibility with the Requiem CLI; real signatures live in the DSSE envelope.</summary>
    public string SignatureStub { get; init; } = "";
    public required string EngineVersion { get; init; }
    public required string ContractVersion { get; init; }
    /// <summary>The <c>req:</c> digest of the canonical request (equals <c>input_digests[0]</c>).</summary>
    public required string RequestDigest { get; init; }
    /// <summary>The <c>res:</c> digest of the result.</summary>
    public required string ResultDigest { get; init; }
    /// <summary>The CAS name of the canonical request JSON.</summary>
    public required string RequestObject { get; init; }

    /// <summary>The Merkle leaves, in the fixed, documented order.</summary>
    public IReadOnlyList<MerkleLeaf> Leaves()
    {
        var leaves = new List<MerkleLeaf>(InputDigests.Count + OutputDigests.Count + 7);
        for (var i = 0; i < InputDigests.Count; i++) leaves.Add(new MerkleLeaf($"input_digests/{i}", Convert.FromHexString(InputDigests[i])));
        for (var i = 0; i < OutputDigests.Count; i++) leaves.Add(new MerkleLeaf($"output_digests/{i}", Convert.FromHexString(OutputDigests[i])));
        leaves.Add(new MerkleLeaf("policy_digest", Convert.FromHexString(PolicyDigest)));
        leaves.Add(new MerkleLeaf("replay_transcript_digest", Convert.FromHexString(ReplayTranscriptDigest)));
        leaves.Add(new MerkleLeaf("engine_version", Encoding.UTF8.GetBytes(EngineVersion)));
        leaves.Add(new MerkleLeaf("contract_version", Encoding.UTF8.GetBytes(ContractVersion)));
        leaves.Add(new MerkleLeaf("request_digest", Convert.FromHexString(RequestDigest)));
        leaves.Add(new MerkleLeaf("result_digest", Convert.FromHexString(ResultDigest)));
        leaves.Add(new MerkleLeaf("request_object", Convert.FromHexString(RequestObject)));
        return leaves;
    }

    public string ComputeMerkleRoot(HashPrimitive hash) => MerkleTree.Root(hash, Leaves());

    /// <summary>RFC 8785 canonical JSON of the bundle (no trailing newline).</summary>
    public byte[] ToCanonicalJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("proof_version", ProofVersion);
            w.WriteString("merkle_root", MerkleRoot);
            WriteArray(w, "input_digests", InputDigests);
            WriteArray(w, "output_digests", OutputDigests);
            w.WriteString("policy_digest", PolicyDigest);
            w.WriteString("replay_transcript_digest", ReplayTranscriptDigest);
            w.WriteString("signature_stub", SignatureStub);
            w.WriteString("engine_version", EngineVersion);
            w.WriteString("contract_version", ContractVersion);
            w.WriteString("request_digest", RequestDigest);
            w.WriteString("result_digest", ResultDigest);
            w.WriteString("request_object", RequestObject);
            w.WriteEndObject();
        }
        return CanonicalJson.Canonicalize(Encoding.UTF8.GetString(ms.ToArray()));
    }

    private static void WriteArray(Utf8JsonWriter w, string name, IReadOnlyList<string> items)
    {
        w.WriteStartArray(name);
        foreach (var s in items) w.WriteStringValue(s);
        w.WriteEndArray();
    }

    /// <summary>Parses a bundle strictly; throws <c>InvalidProofBundle</c> naming every problem found.</summary>
    public static ProofBundle Parse(ReadOnlySpan<byte> json, object? target = null)
    {
        var problems = new List<string>();
        var bundle = TryParse(json, problems);
        if (bundle is null)
            throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData,
                "Not a valid proof bundle: " + string.Join("; ", problems), target);
        return bundle;
    }

    /// <summary>Parses a bundle, adding one line per problem (missing/unknown/ill-typed field, bad digest) to <paramref name="problems"/>.</summary>
    public static ProofBundle? TryParse(ReadOnlySpan<byte> json, List<string> problems)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            problems.Add("bundle: not valid UTF-8");
            return null;
        }
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 16 });
            doc = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                doc.Dispose();
                problems.Add("bundle: trailing data after the JSON object");
                return null;
            }
        }
        catch (JsonException ex)
        {
            problems.Add("bundle: not valid JSON: " + ex.Message);
            return null;
        }
        using (doc)
        {
            return FromElement(doc.RootElement, problems);
        }
    }

    public static ProofBundle? FromElement(JsonElement root, List<string> problems)
    {
        var before = problems.Count;
        if (root.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"bundle: expected a JSON object, found {root.ValueKind}");
            return null;
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in root.EnumerateObject())
        {
            if (!seen.Add(p.Name)) problems.Add($"bundle: duplicate field '{p.Name}'");
            else if (!FieldNames.Contains(p.Name)) problems.Add($"bundle: unknown field '{p.Name}'");
        }

        string Text(string name, bool digest)
        {
            if (!root.TryGetProperty(name, out var e)) { problems.Add($"bundle: missing field '{name}'"); return ""; }
            if (e.ValueKind != JsonValueKind.String) { problems.Add($"bundle: field '{name}' must be a string, found {e.ValueKind}"); return ""; }
            var s = e.GetString()!;
            if (digest && !IsContractDigest(s)) problems.Add($"bundle: field '{name}' is not a digest (64 lowercase hex characters): '{Shorten(s)}'");
            return s;
        }

        List<string> Digests(string name)
        {
            var list = new List<string>();
            if (!root.TryGetProperty(name, out var e)) { problems.Add($"bundle: missing field '{name}'"); return list; }
            if (e.ValueKind != JsonValueKind.Array) { problems.Add($"bundle: field '{name}' must be an array, found {e.ValueKind}"); return list; }
            var i = 0;
            foreach (var item in e.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String || !IsContractDigest(item.GetString()))
                    problems.Add($"bundle: {name}[{i}] is not a digest (64 lowercase hex characters)");
                else list.Add(item.GetString()!);
                i++;
            }
            return list;
        }

        var version = Text("proof_version", false);
        if (root.TryGetProperty("proof_version", out var pv) && pv.ValueKind == JsonValueKind.String && version != CurrentVersion)
            problems.Add($"bundle: unsupported proof_version '{Shorten(version)}' (this engine reads '{CurrentVersion}')");
        var merkle = Text("merkle_root", true);
        var inputs = Digests("input_digests");
        var outputs = Digests("output_digests");
        var policy = Text("policy_digest", true);
        var transcript = Text("replay_transcript_digest", true);
        var stub = Text("signature_stub", false);
        if (stub.Length != 0) problems.Add("bundle: signature_stub must be empty (signatures live in the DSSE envelope)");
        var engine = Text("engine_version", false);
        var contract = Text("contract_version", false);
        var requestDigest = Text("request_digest", true);
        var resultDigest = Text("result_digest", true);
        var requestObject = Text("request_object", true);
        if (root.TryGetProperty("input_digests", out var inArr) && inArr.ValueKind == JsonValueKind.Array && inArr.GetArrayLength() == 0)
            problems.Add("bundle: input_digests is empty (the request digest must come first)");
        if (root.TryGetProperty("output_digests", out var outArr) && outArr.ValueKind == JsonValueKind.Array && outArr.GetArrayLength() < 2)
            problems.Add("bundle: output_digests must list at least stdout and stderr");
        if (problems.Count > before) return null;
        if (inputs[0] != requestDigest)
        {
            problems.Add("bundle: input_digests[0] is not the request_digest");
            return null;
        }
        return new ProofBundle
        {
            ProofVersion = version,
            MerkleRoot = merkle,
            InputDigests = inputs,
            OutputDigests = outputs,
            PolicyDigest = policy,
            ReplayTranscriptDigest = transcript,
            SignatureStub = stub,
            EngineVersion = engine,
            ContractVersion = contract,
            RequestDigest = requestDigest,
            ResultDigest = resultDigest,
            RequestObject = requestObject,
        };
    }

    /// <summary>Exactly 64 lowercase hex characters: the only digest spelling a bundle may contain.</summary>
    public static bool IsContractDigest(string? s)
    {
        if (s is not { Length: Hex.DigestLength }) return false;
        foreach (var c in s)
        {
            if (!(c is >= '0' and <= '9' or >= 'a' and <= 'f')) return false;
        }
        return true;
    }

    internal static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";
}
