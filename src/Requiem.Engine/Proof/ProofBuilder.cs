using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;

namespace Requiem.Engine.Proof;

/// <summary>What New-RequiemProof (and Import-RequiemProof) report about a stored proof.</summary>
public sealed record ProofInfo
{
    public required string MerkleRoot { get; init; }
    public required bool Signed { get; init; }
    /// <summary>The keyids of the envelope's signatures (empty when unsigned).</summary>
    public required IReadOnlyList<string> KeyIds { get; init; }
    public required string RequestDigest { get; init; }
    public required string ResultDigest { get; init; }
    /// <summary>The CAS name of the <c>proof_bundle</c> manifest; the ref <c>proofs/&lt;merkle_root&gt;</c> points at it.</summary>
    public required string ManifestDigest { get; init; }
    /// <summary>The objects the manifest keeps alive.</summary>
    public required IReadOnlyList<string> References { get; init; }
    /// <summary>The written file, when there is one.</summary>
    public string? Path { get; init; }
    /// <summary>The bundle itself (the Requiem CLI's fields).</summary>
    public required ProofBundle Bundle { get; init; }
    /// <summary>The exact file text: canonical JSON of the bundle (unsigned) or the DSSE envelope (signed), plus one LF.</summary>
    public required string Json { get; init; }

    public string RefName => "proofs/" + MerkleRoot;

    public override string ToString() => Json.TrimEnd('\n');
}

/// <summary>Builds a proof bundle from an execution request and result and stores it in the CAS as a GC root.</summary>
public static class ProofBuilder
{
    public const string ManifestKind = "proof_bundle";

    /// <summary>
    /// Creates and stores a proof. <paramref name="request"/> may be null when the result's stored manifest references
    /// the request. Errors: InvalidExecResult, ResultDigestMismatch, RequestDigestMismatch, RequestNotFound, ProofObjectMissing.
    /// </summary>
    public static ProofInfo Create(CasStore store, JsonObject? request, JsonObject result, SigningKey? key, string? outFile = null)
    {
        var hash = store.HashPrimitive;
        if (hash.IsFallback)
            throw new RequiemException("HashUnavailableBlake3", ErrorKind.ResourceUnavailable, "Proof bundles are BLAKE3-only; the SHA-256 fallback cannot make proofs.");
        var view = ExecDocuments.ReadResult(result);
        var recomputed = ExecDocuments.ComputeResultDigest(hash, result);
        if (recomputed != view.ResultDigest)
            throw new RequiemException("ResultDigestMismatch", ErrorKind.InvalidData,
                $"The result's result_digest is {view.ResultDigest}, but its content hashes to {recomputed} (res: over the canonical result without " +
                "result_digest, duration_ms and started_at): the result was altered or converted lossily.", view.ResultDigest);

        byte[]? requestBytes = null;
        string? givenDigest = null;
        if (request is not null)
        {
            var (canonical, digest) = ExecDocuments.CanonicalRequest(hash, request);
            givenDigest = digest;
            if (digest == view.RequestDigest) requestBytes = canonical;
        }
        var blobDigest = result["request_blob_digest"] is JsonValue bv && bv.TryGetValue<string>(out var bd) ? bd : null;
        requestBytes ??= ExecDocuments.FindStoredRequest(store, view.ResultDigest, view.RequestDigest, blobDigest);
        if (requestBytes is null)
        {
            if (givenDigest is not null)
                throw new RequiemException("RequestDigestMismatch", ErrorKind.InvalidData,
                    $"The request hashes to {givenDigest} (req: over its canonical JSON) but the result was produced by request {view.RequestDigest}; " +
                    "give the request exactly as the engine recorded it.", givenDigest);
            throw new RequiemException("RequestNotFound", ErrorKind.ObjectNotFound,
                $"No -Request was given and the CAS at '{store.Root}' holds no request with digest {view.RequestDigest} for this result.", view.RequestDigest);
        }

        var empty = ExecDocuments.EmptyObjectDigest(hash);
        var labels = view.OutputLabels();
        var outputs = view.OutputDigests();
        for (var i = 0; i < outputs.Count; i++) RequireObject(store, outputs[i], labels[i], empty);
        RequireObject(store, view.PolicyDigest, "policy", empty);

        var requestObject = store.PutBytes(requestBytes).Hash;
        var transcript = store.PutBytes(ExecDocuments.Canonical(result)).Hash;

        var inputs = new List<string> { view.RequestDigest };
        inputs.AddRange(view.InputFiles.Select(f => f.Digest));
        var draft = new ProofBundle
        {
            MerkleRoot = new string('0', Hex.DigestLength),
            InputDigests = inputs,
            OutputDigests = outputs,
            PolicyDigest = view.PolicyDigest,
            ReplayTranscriptDigest = transcript,
            EngineVersion = view.EngineVersion,
            ContractVersion = view.ContractVersion,
            RequestDigest = view.RequestDigest,
            ResultDigest = view.ResultDigest,
            RequestObject = requestObject,
        };
        var bundle = draft with { MerkleRoot = draft.ComputeMerkleRoot(hash) };

        var payload = bundle.ToCanonicalJson();
        byte[] document;
        var keyIds = new List<string>();
        if (key is not null)
        {
            var envelope = DsseEnvelope.Sign(ProofBundle.PayloadType, payload, key);
            document = envelope.ToCanonicalJson();
            keyIds.Add(key.KeyId);
        }
        else
        {
            document = payload;
        }

        var references = new List<string> { requestObject, transcript, view.PolicyDigest };
        references.AddRange(outputs);
        references.AddRange(view.InputFiles.Select(f => f.Digest).Where(store.Contains));
        references = references.Distinct(StringComparer.Ordinal).ToList();
        var manifestHash = StoreManifest(store, document, references, bundle.MerkleRoot);

        var text = Encoding.UTF8.GetString(document) + "\n";
        string? written = null;
        if (outFile is not null)
        {
            WriteFile(outFile, text);
            written = System.IO.Path.GetFullPath(outFile);
        }
        Metrics.MetricsRegistry.Add(Metrics.Counter.ProofGenerated);
        return new ProofInfo
        {
            MerkleRoot = bundle.MerkleRoot,
            Signed = key is not null,
            KeyIds = keyIds,
            RequestDigest = view.RequestDigest,
            ResultDigest = view.ResultDigest,
            ManifestDigest = manifestHash,
            References = references,
            Path = written,
            Bundle = bundle,
            Json = text,
        };
    }

    /// <summary>Stores the bundle/envelope as a <c>proof_bundle</c> manifest and points <c>proofs/&lt;root&gt;</c> at it.</summary>
    public static string StoreManifest(CasStore store, byte[] document, IReadOnlyList<string> references, string merkleRoot)
    {
        using var doc = JsonDocument.Parse(document);
        var manifest = new CasManifest { Kind = ManifestKind, References = references, Body = doc.RootElement.Clone() };
        var manifestHash = store.PutManifest(manifest).Hash;
        // A ref write costs a file create and rename; re-proving the same thing leaves the ref alone.
        if (store.GetRef("proofs/" + merkleRoot) != manifestHash) store.SetRef("proofs/" + merkleRoot, manifestHash);
        return manifestHash;
    }

    /// <summary>The proof file text stored under <c>proofs/&lt;merkleRoot&gt;</c> (canonical JSON + LF), or null.</summary>
    public static byte[]? LoadStoredDocument(CasStore store, string merkleRoot, out IReadOnlyList<string> references)
    {
        references = Array.Empty<string>();
        var manifestHash = store.GetRef("proofs/" + merkleRoot);
        if (manifestHash is null) return null;
        var manifest = store.ReadManifest(manifestHash);
        if (manifest.Kind != ManifestKind || manifest.Body is not { } body)
            throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData, $"proofs/{merkleRoot} does not point at a proof_bundle manifest.", merkleRoot);
        references = manifest.References;
        var canonical = Json.CanonicalJson.Canonicalize(body);
        var withLf = new byte[canonical.Length + 1];
        canonical.CopyTo(withLf, 0);
        withLf[^1] = (byte)'\n';
        return withLf;
    }

    private static void RequireObject(CasStore store, string digest, string label, string empty)
    {
        if (store.Contains(digest))
        {
            // Never vouch for evidence that is already damaged: read it back and re-hash it.
            try { store.CopyTo(digest, Stream.Null); }
            catch (RequiemException ex) when (ex.ErrorId == "CasObjectCorrupt")
            {
                throw new RequiemException("ProofObjectCorrupt", ErrorKind.InvalidData,
                    $"The result's {label} ({digest}) is corrupt in the CAS at '{store.Root}': {ex.Message}", digest, ex);
            }
            return;
        }
        if (digest == empty)
        {
            store.PutBytes(ReadOnlySpan<byte>.Empty);
            return;
        }
        throw new RequiemException("ProofObjectMissing", ErrorKind.ObjectNotFound,
            $"The result's {label} ({digest}) is not in the CAS at '{store.Root}'; a proof can only bind objects the store holds " +
            "(use the -Cas store the command ran with).", digest);
    }

    public static void WriteFile(string path, string text)
    {
        IO.AtomicFile.WriteAllText(path, text, "ProofWriteError");
    }
}
