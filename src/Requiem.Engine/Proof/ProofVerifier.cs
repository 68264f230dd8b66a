using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Proof;

/// <summary>The outcome of verifying one proof: <see cref="Valid"/> and, when not, every reason naming what failed.</summary>
public sealed class ProofVerification
{
    private readonly List<string> _reasons = new();

    public bool Valid => _reasons.Count == 0;
    public IReadOnlyList<string> Reasons => _reasons;
    public string? Path { get; set; }
    public string? MerkleRoot { get; internal set; }
    public string? RequestDigest { get; internal set; }
    public string? ResultDigest { get; internal set; }
    public bool Signed { get; internal set; }
    public bool SignatureVerified { get; internal set; }
    public IReadOnlyList<string> KeyIds { get; internal set; } = Array.Empty<string>();
    /// <summary>How many CAS objects were read back and re-hashed.</summary>
    public int ObjectsChecked { get; internal set; }
    /// <summary>True when the request was re-executed (-Replay) and compared.</summary>
    public bool Replayed { get; set; }
    /// <summary>The parsed bundle, when it parsed.</summary>
    public ProofBundle? Bundle { get; internal set; }
    /// <summary>The verified request (canonical JSON) from the CAS, for replay.</summary>
    public string? RequestJson { get; internal set; }
    /// <summary>The verified result (canonical JSON) from the CAS, for replay.</summary>
    public string? ResultJson { get; internal set; }

    public void AddReason(string reason) => _reasons.Add(reason);
}

public sealed class ProofVerifyOptions
{
    /// <summary>The store holding the referenced objects; null checks the bundle alone (structure, root, signature).</summary>
    public CasStore? Store { get; init; }
    /// <summary>Keys a signature must verify with; when any are given, an unsigned bundle is invalid.</summary>
    public IReadOnlyList<VerificationKey> Keys { get; init; } = Array.Empty<VerificationKey>();
    public bool RequireSignature { get; init; }
    /// <summary>Require the bytes to be exactly the canonical serialization (files); off for bundles given as objects.</summary>
    public bool RequireCanonical { get; init; } = true;
    /// <summary>Stops re-hashing large objects promptly (Ctrl+C); verification then throws OperationCanceledException.</summary>
    public CancellationToken Cancel { get; init; }
}

/// <summary>
/// Verifies a proof file (bundle or DSSE envelope): canonical form, structure, Merkle root, signature, and every
/// referenced CAS object, cross-checked against the stored request and result. Never throws for a bad proof.
/// </summary>
public static class ProofVerifier
{
    public static ProofVerification Verify(ReadOnlySpan<byte> fileBytes, ProofVerifyOptions options, HashPrimitive hash)
    {
        var v = new ProofVerification();
        var bytes = fileBytes;
        if (bytes.Length > 0 && bytes[^1] == (byte)'\n') bytes = bytes[..^1];

        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            v.AddReason("bundle: not valid UTF-8");
            return v;
        }
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 16 });
            doc = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                doc.Dispose();
                v.AddReason("bundle: trailing data after the JSON document");
                return v;
            }
        }
        catch (JsonException ex)
        {
            v.AddReason("bundle: not valid JSON: " + ex.Message);
            return v;
        }
        using (doc)
        {
            if (options.RequireCanonical) CheckCanonical(bytes, "bundle file", v);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                v.AddReason($"bundle: expected a JSON object, found {root.ValueKind}");
                return v;
            }
            byte[] payload;
            if (DsseEnvelope.LooksLikeEnvelope(root))
            {
                v.Signed = true;
                var problems = new List<string>();
                var envelope = DsseEnvelope.FromElement(root, problems);
                foreach (var p in problems) v.AddReason(p);
                if (envelope is null) return v;
                v.KeyIds = envelope.Signatures.Select(s => s.KeyId).ToArray();
                if (envelope.PayloadType != ProofBundle.PayloadType)
                    v.AddReason($"envelope: payloadType is '{ProofBundle.Shorten(envelope.PayloadType)}', expected '{ProofBundle.PayloadType}'");
                CheckSignatures(envelope, options, v);
                payload = envelope.Payload;
                CheckCanonical(payload, "envelope payload", v);
            }
            else
            {
                if (options.Keys.Count > 0)
                    v.AddReason("signature: the bundle is not signed, but a public key was given (a signed proof is a DSSE envelope)");
                else if (options.RequireSignature)
                    v.AddReason("signature: the bundle is not signed and a signature is required");
                payload = bytes.ToArray();
            }
            VerifyBundle(payload, options, hash, v);
        }
        return v;
    }

    private static void CheckCanonical(ReadOnlySpan<byte> bytes, string what, ProofVerification v)
    {
        try
        {
            var canonical = CanonicalJson.Canonicalize(Encoding.UTF8.GetString(bytes));
            if (!bytes.SequenceEqual(canonical))
                v.AddReason($"{what}: not in canonical form (RFC 8785 JSON, then one LF): its bytes differ from the bytes that were hashed and signed");
        }
        catch (RequiemException ex)
        {
            v.AddReason($"{what}: {ex.Message}");
        }
    }

    private static void CheckSignatures(DsseEnvelope envelope, ProofVerifyOptions options, ProofVerification v)
    {
        if (options.Keys.Count == 0)
        {
            v.AddReason("signature: not verified: the proof is signed but no -PublicKey or -TrustedKeys was given");
            return;
        }
        var pae = envelope.Pae();
        var verified = false;
        var refused = false;
        var failures = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        // Every signature present must be one that a given key verifies, in its one accepted byte form: a second copy,
        // a high-S twin or a signature by an unknown key would be bytes added to the envelope that nothing checks.
        foreach (var sig in envelope.Signatures)
        {
            var id = ProofBundle.Shorten(sig.KeyId);
            if (!seen.Add(sig.KeyId))
            {
                refused = true;
                failures.Add($"signature: keyid '{id}' signs more than once; one signature per key is accepted");
                continue;
            }
            if (EcdsaSignatureForm.Problem(sig.Sig) is { } form)
            {
                refused = true;
                failures.Add($"signature: the signature by keyid '{id}' {form}");
                continue;
            }
            var key = options.Keys.FirstOrDefault(k => k.KeyId == sig.KeyId);
            if (key is null)
            {
                refused = true;
                failures.Add($"signature: keyid '{id}' is not a trusted key (trusted: {string.Join(", ", options.Keys.Select(k => k.KeyId))}); every signature in the envelope must verify with a given key");
            }
            else if (key.Verify(pae, sig.Sig))
            {
                verified = true;
            }
            else
            {
                refused = true;
                failures.Add($"signature: the signature by keyid {sig.KeyId} does not verify over the DSSE PAE (payload, payloadType or signature altered, or signed by another key)");
            }
        }
        v.SignatureVerified = verified && !refused;
        if (!v.SignatureVerified) foreach (var f in failures) v.AddReason(f);
    }

    private static void VerifyBundle(byte[] payload, ProofVerifyOptions options, HashPrimitive hash, ProofVerification v)
    {
        var problems = new List<string>();
        var bundle = ProofBundle.TryParse(payload, problems);
        foreach (var p in problems) v.AddReason(p);
        if (bundle is null) return;
        v.Bundle = bundle;
        v.MerkleRoot = bundle.MerkleRoot;
        v.RequestDigest = bundle.RequestDigest;
        v.ResultDigest = bundle.ResultDigest;

        var root = bundle.ComputeMerkleRoot(hash);
        if (root != bundle.MerkleRoot)
            v.AddReason($"merkle_root: the leaves hash to {root}, not to the bundle's merkle_root {bundle.MerkleRoot} (a digest or version field was altered)");

        if (options.Store is { } store) VerifyObjects(bundle, store, hash, v, options.Cancel);
    }

    /// <summary>Reads a small object the verifier needs to parse (request, result transcript), verified.</summary>
    private static byte[]? ReadObject(CasStore store, string digest, string label, ProofVerification v, string empty, CancellationToken cancel)
    {
        try
        {
            var bytes = store.ReadAllBytes(digest, cancel);
            v.ObjectsChecked++;
            return bytes;
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasObjectNotFound")
        {
            if (digest == empty)
            {
                v.ObjectsChecked++;
                return Array.Empty<byte>();
            }
            v.AddReason($"{label} {digest}: missing from the CAS at '{store.Root}'");
        }
        catch (RequiemException ex)
        {
            v.AddReason($"{label} {digest}: {ex.Message}");
        }
        return null;
    }

    /// <summary>Re-hashes an object as it streams from the store (outputs can be large: memory stays flat).</summary>
    private static void CheckObject(CasStore store, string digest, string label, ProofVerification v, string empty, CancellationToken cancel)
    {
        try
        {
            store.GetInfo(digest, verify: true, cancel);
            v.ObjectsChecked++;
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasObjectNotFound")
        {
            if (digest == empty) v.ObjectsChecked++;
            else v.AddReason($"{label} {digest}: missing from the CAS at '{store.Root}'");
        }
        catch (RequiemException ex)
        {
            v.AddReason($"{label} {digest}: {ex.Message}");
        }
    }

    private static void VerifyObjects(ProofBundle bundle, CasStore store, HashPrimitive hash, ProofVerification v, CancellationToken cancel)
    {
        var empty = ExecDocuments.EmptyObjectDigest(hash);

        var request = ReadObject(store, bundle.RequestObject, "request_object", v, empty, cancel);
        if (request is not null)
        {
            var digest = hash.HashBytes(request, HashDomain.Request);
            if (digest != bundle.RequestDigest)
                v.AddReason($"request_object {bundle.RequestObject}: its req: digest is {digest}, not the bundle's request_digest {bundle.RequestDigest}");
            else
                v.RequestJson = Encoding.UTF8.GetString(request);
        }

        ExecResultView? view = null;
        var transcript = ReadObject(store, bundle.ReplayTranscriptDigest, "replay_transcript_digest", v, empty, cancel);
        if (transcript is not null)
        {
            try
            {
                var json = ExecDocuments.ParseObject(Encoding.UTF8.GetString(transcript), "result transcript", "InvalidExecResult");
                view = ExecDocuments.ReadResult(json);
                var recomputed = ExecDocuments.ComputeResultDigest(hash, json);
                if (recomputed != view.ResultDigest)
                    v.AddReason($"replay_transcript_digest {bundle.ReplayTranscriptDigest}: the stored result hashes to {recomputed}, not to its result_digest {view.ResultDigest}");
                if (view.ResultDigest != bundle.ResultDigest)
                    v.AddReason($"result_digest: the bundle says {bundle.ResultDigest}, the stored result says {view.ResultDigest}");
                if (view.RequestDigest != bundle.RequestDigest)
                    v.AddReason($"request_digest: the bundle says {bundle.RequestDigest}, the stored result was produced by {view.RequestDigest}");
                if (view.PolicyDigest != bundle.PolicyDigest)
                    v.AddReason($"policy_digest: the bundle says {bundle.PolicyDigest}, the stored result says {view.PolicyDigest}");
                if (view.EngineVersion != bundle.EngineVersion)
                    v.AddReason($"engine_version: the bundle says '{bundle.EngineVersion}', the stored result says '{view.EngineVersion}'");
                if (view.ContractVersion != bundle.ContractVersion)
                    v.AddReason($"contract_version: the bundle says '{bundle.ContractVersion}', the stored result says '{view.ContractVersion}'");
                if (!view.OutputDigests().SequenceEqual(bundle.OutputDigests))
                    v.AddReason("output_digests: do not match the stored result's stdout, stderr and output files");
                var inputs = new List<string> { view.RequestDigest };
                inputs.AddRange(view.InputFiles.Select(f => f.Digest));
                if (!inputs.SequenceEqual(bundle.InputDigests))
                    v.AddReason("input_digests: do not match the stored result's request digest and input files");
                v.ResultJson = Encoding.UTF8.GetString(transcript);
            }
            catch (RequiemException ex)
            {
                v.AddReason($"replay_transcript_digest {bundle.ReplayTranscriptDigest}: not an execution result: {ex.Message}");
            }
        }

        var labels = view?.OutputLabels();
        for (var i = 0; i < bundle.OutputDigests.Count; i++)
        {
            var label = labels is not null && i < labels.Count ? $"output_digests[{i}] ({labels[i]})" : $"output_digests[{i}]";
            CheckObject(store, bundle.OutputDigests[i], label, v, empty, cancel);
        }
        CheckObject(store, bundle.PolicyDigest, "policy_digest", v, empty, cancel);
        for (var i = 1; i < bundle.InputDigests.Count; i++)
        {
            // Input files are recorded by digest; they are checked when the store holds them.
            if (store.Contains(bundle.InputDigests[i]))
            {
                var label = view is not null && i - 1 < view.InputFiles.Count ? $"input_digests[{i}] (input file '{view.InputFiles[i - 1].Path}')" : $"input_digests[{i}]";
                CheckObject(store, bundle.InputDigests[i], label, v, empty, cancel);
            }
        }
    }

    /// <summary>Builds the canonical-JSON bytes of a bundle or envelope given as a parsed object (for -Bundle).</summary>
    public static byte[] FromNode(JsonNode node) => CanonicalJson.Canonicalize(node.ToJsonString());
}
