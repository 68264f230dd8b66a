using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Proof;

/// <summary>An output file or input file entry of an execution result.</summary>
public sealed record ExecFileDigest(string Path, string Digest);

/// <summary>The fields of an execution result (docs/CONTRACT.md) that a proof binds, read from its JSON.</summary>
public sealed class ExecResultView
{
    public required JsonObject Json { get; init; }
    public required string RequestDigest { get; init; }
    public required string ResultDigest { get; init; }
    public required string StdoutDigest { get; init; }
    public required string StderrDigest { get; init; }
    public required string PolicyDigest { get; init; }
    public required string EngineVersion { get; init; }
    public required string ContractVersion { get; init; }
    public required IReadOnlyList<ExecFileDigest> OutputFiles { get; init; }
    /// <summary>Input files whose digest is recorded (entries with a null digest are skipped).</summary>
    public required IReadOnlyList<ExecFileDigest> InputFiles { get; init; }

    /// <summary>stdout, stderr, then output files in the result's order — the bundle's <c>output_digests</c>.</summary>
    public IReadOnlyList<string> OutputDigests()
    {
        var list = new List<string> { StdoutDigest, StderrDigest };
        list.AddRange(OutputFiles.Select(f => f.Digest));
        return list;
    }

    /// <summary>A label per output digest: stdout, stderr, output file 'path'.</summary>
    public IReadOnlyList<string> OutputLabels()
    {
        var list = new List<string> { "stdout", "stderr" };
        list.AddRange(OutputFiles.Select(f => $"output file '{f.Path}'"));
        return list;
    }
}

/// <summary>
/// Execution requests and results as JSON documents (the exec contract): canonical bytes, the <c>req:</c> and
/// <c>res:</c> digests, and loading a stored result from the CAS.
/// </summary>
public static class ExecDocuments
{
    /// <summary>BLAKE3 <c>cas:</c> of zero bytes: the name of the empty object (empty stdout), checkable without a store.</summary>
    public static string EmptyObjectDigest(HashPrimitive hash) => hash.HashBytes(ReadOnlySpan<byte>.Empty, HashDomain.Cas);

    public static byte[] Canonical(JsonNode node) => CanonicalJson.Canonicalize(node.ToJsonString());

    /// <summary>Parses JSON text into an object; anything else is <paramref name="errorId"/> (InvalidExecRequest / InvalidExecResult).</summary>
    public static JsonObject ParseObject(string json, string what, string errorId, object? target = null)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new RequiemException(errorId, ErrorKind.InvalidData, $"The {what} is not valid JSON: {ex.Message}", target, ex);
        }
        return node as JsonObject
               ?? throw new RequiemException(errorId, ErrorKind.InvalidData, $"The {what} must be a JSON object.", target);
    }

    /// <summary>Canonical bytes of a request, and its <c>req:</c> digest.</summary>
    public static (byte[] Canonical, string Digest) CanonicalRequest(HashPrimitive hash, JsonObject request)
    {
        byte[] bytes;
        try { bytes = Canonical(request); }
        catch (RequiemException ex) { throw new RequiemException("InvalidExecRequest", ErrorKind.InvalidData, "The request cannot be canonicalized: " + ex.Message, null, ex); }
        return (bytes, hash.HashBytes(bytes, HashDomain.Request));
    }

    /// <summary>The <c>res:</c> digest, exactly as the execution engine defines it (one rule for both).</summary>
    public static string ComputeResultDigest(HashPrimitive hash, JsonObject result) =>
        Execution.ExecResult.ComputeDigest(result, hash);

    /// <summary>Reads the fields a proof needs; a missing or ill-formed one is <c>InvalidExecResult</c> naming the field.</summary>
    public static ExecResultView ReadResult(JsonObject result, object? target = null)
    {
        string Digest(string name)
        {
            var s = Str(name);
            if (!ProofBundle.IsContractDigest(s))
                throw new RequiemException("InvalidExecResult", ErrorKind.InvalidData,
                    $"The result's '{name}' is not a digest (64 lowercase hex characters): '{s}'.", target ?? name);
            return s;
        }

        string Str(string name)
        {
            if (result[name] is JsonValue v && v.TryGetValue<string>(out var s)) return s;
            throw new RequiemException("InvalidExecResult", ErrorKind.InvalidData,
                $"The result has no string field '{name}'; is it an execution result (Invoke-RequiemExec output)?", target ?? name);
        }

        List<ExecFileDigest> Files(string name, bool skipNull)
        {
            var list = new List<ExecFileDigest>();
            var node = result[name];
            if (node is null) return list;
            if (node is not JsonArray arr)
                throw new RequiemException("InvalidExecResult", ErrorKind.InvalidData, $"The result's '{name}' must be an array.", target ?? name);
            var i = 0;
            foreach (var item in arr)
            {
                var path = item?["path"] is JsonValue pv && pv.TryGetValue<string>(out var p) ? p : null;
                var digestNode = item?["digest"];
                if (digestNode is null && skipNull) { i++; continue; }
                var digest = digestNode is JsonValue dv && dv.TryGetValue<string>(out var d) ? d : null;
                if (path is null || !ProofBundle.IsContractDigest(digest))
                    throw new RequiemException("InvalidExecResult", ErrorKind.InvalidData,
                        $"The result's {name}[{i}] needs a 'path' and a 'digest' of 64 lowercase hex characters.", target ?? name);
                list.Add(new ExecFileDigest(path, digest!));
                i++;
            }
            return list;
        }

        return new ExecResultView
        {
            Json = result,
            RequestDigest = Digest("request_digest"),
            ResultDigest = Digest("result_digest"),
            StdoutDigest = Digest("stdout_digest"),
            StderrDigest = Digest("stderr_digest"),
            PolicyDigest = Digest("policy_digest"),
            EngineVersion = Str("engine_version"),
            ContractVersion = Str("contract_version"),
            OutputFiles = Files("output_files", skipNull: false),
            InputFiles = Files("input_digests", skipNull: true),
        };
    }

    /// <summary>
    /// Loads a result stored in the CAS: by ref (<c>results/&lt;digest&gt;</c>), by the digest of a manifest or JSON
    /// object, or by a result digest that has a <c>results/&lt;digest&gt;</c> ref. A manifest yields its body.
    /// </summary>
    public static JsonObject LoadStoredDocument(CasStore store, string reference, string what, string errorId)
    {
        var hash = ResolveStored(store, reference)
                   ?? throw new RequiemException(errorId == "InvalidExecResult" ? "ResultNotFound" : "RequestNotFound", ErrorKind.ObjectNotFound,
                       $"'{reference}' names no {what} in the CAS at '{store.Root}' (neither an object nor a results/ ref).", reference);
        var bytes = store.ReadAllBytes(hash);
        if (CasManifest.TryParse(bytes) is { Body: { } body })
            return ParseObject(body.GetRawText(), what, errorId, reference);
        return ParseObject(Encoding.UTF8.GetString(bytes), what, errorId, reference);
    }

    private static string? ResolveStored(CasStore store, string reference)
    {
        var r = reference.Trim();
        if (r.Contains('/'))
        {
            try { return store.GetRef(r); }
            catch (RequiemException) { return null; }
        }
        if (!Hex.IsDigest(r)) return null;
        r = r.ToLowerInvariant();
        if (store.Contains(r)) return r;
        return store.GetRef("results/" + r);
    }

    /// <summary>
    /// Finds the request blob of a result in the CAS: the object named by the result's <c>request_blob_digest</c>, or a
    /// referenced object of the stored result manifest (<c>results/&lt;result_digest&gt;</c>), whose <c>req:</c> digest is
    /// the result's request digest.
    /// </summary>
    public static byte[]? FindStoredRequest(CasStore store, string resultDigest, string requestDigest, string? requestBlobDigest = null)
    {
        if (requestBlobDigest is not null && ProofBundle.IsContractDigest(requestBlobDigest) && store.Contains(requestBlobDigest))
        {
            try
            {
                var blob = store.ReadAllBytes(requestBlobDigest);
                if (store.HashPrimitive.HashBytes(blob, HashDomain.Request) == requestDigest) return blob;
            }
            catch (RequiemException) { }
        }
        var manifestHash = store.GetRef("results/" + resultDigest);
        if (manifestHash is null) return null;
        CasManifest manifest;
        try { manifest = store.ReadManifest(manifestHash); }
        catch (RequiemException) { return null; }
        foreach (var r in manifest.References)
        {
            var located = store.Locate(r);
            if (located is null) continue;
            if (new FileInfo(located.Value.Path).Length > 16 << 20) continue;
            byte[] bytes;
            try { bytes = store.ReadAllBytes(r); }
            catch (RequiemException) { continue; }
            if (store.HashPrimitive.HashBytes(bytes, HashDomain.Request) == requestDigest) return bytes;
            try
            {
                var canonical = CanonicalJson.Canonicalize(Encoding.UTF8.GetString(bytes));
                if (store.HashPrimitive.HashBytes(canonical, HashDomain.Request) == requestDigest) return canonical;
            }
            catch (RequiemException) { }
        }
        return null;
    }
}
