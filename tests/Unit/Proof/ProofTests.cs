using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Proof;
using Xunit;

namespace Requiem.Tests.Proof;

/// <summary>A CAS with a realistic execution result (stdout/stderr/policy/output blobs stored) for proof tests.</summary>
internal sealed class ProofFixture : IDisposable
{
    public static readonly HashPrimitive Hash = HashPrimitive.Select(allowFallback: false);

    public ProofFixture(string stdout = "hello\n", string stderr = "", int seed = 0)
    {
        Root = Path.Combine(Path.GetTempPath(), "requiem-proof-" + Guid.NewGuid().ToString("n"));
        Store = CasStore.Open(Path.Combine(Root, "cas"), Hash);
        var policy = new JsonObject { ["mode"] = "strict", ["deterministic"] = true, ["deny_network"] = true };
        var policyDigest = Store.PutBytes(ExecDocuments.Canonical(policy)).Hash;
        Request = new JsonObject
        {
            ["command"] = "/bin/echo",
            ["argv"] = new JsonArray("hello", $"seed-{seed}"),
            ["workspace_root"] = "/tmp/ws",
            ["outputs"] = new JsonArray("out/report.txt"),
            ["policy"] = policy.DeepClone(),
        };
        var (_, requestDigest) = ExecDocuments.CanonicalRequest(Hash, Request);
        var stdoutDigest = Store.PutBytes(Encoding.UTF8.GetBytes(stdout)).Hash;
        var stderrDigest = Store.PutBytes(Encoding.UTF8.GetBytes(stderr)).Hash;
        var outDigest = Store.PutBytes("report\n"u8).Hash;
        Result = new JsonObject
        {
            ["contract_version"] = "1.1",
            ["engine"] = "requiem",
            ["engine_version"] = "0.1.0",
            ["request_digest"] = requestDigest,
            ["exit_code"] = 0,
            ["signal"] = null,
            ["timed_out"] = false,
            ["stdout_digest"] = stdoutDigest,
            ["stdout_bytes"] = Encoding.UTF8.GetByteCount(stdout),
            ["stdout_truncated"] = false,
            ["stderr_digest"] = stderrDigest,
            ["stderr_bytes"] = Encoding.UTF8.GetByteCount(stderr),
            ["stderr_truncated"] = false,
            ["output_files"] = new JsonArray(new JsonObject { ["path"] = "out/report.txt", ["digest"] = outDigest, ["bytes"] = 7 }),
            ["input_digests"] = new JsonArray(),
            ["policy_digest"] = policyDigest,
            ["sandbox"] = new JsonObject { ["enforced"] = new JsonArray("rlimits"), ["not_enforced"] = new JsonArray("seccomp_bpf") },
            ["determinism_confidence"] = new JsonObject { ["level"] = "high", ["score"] = 1.0, ["reasons"] = new JsonArray() },
            ["duration_ms"] = 5,
            ["started_at"] = "2026-01-01T00:00:00Z",
        };
        Result["result_digest"] = ExecDocuments.ComputeResultDigest(Hash, Result);
    }

    public string Root { get; }
    public CasStore Store { get; }
    public JsonObject Request { get; }
    public JsonObject Result { get; }

    public ProofInfo Prove(SigningKey? key = null) => ProofBuilder.Create(Store, Request, Result, key);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

public class ProofTests
{
    private static readonly HashPrimitive Hash = ProofFixture.Hash;
    private static readonly string[] ReasonPrefixes =
    {
        "bundle", "merkle_root:", "envelope", "signature:", "request_object", "replay_transcript_digest", "output_digests",
        "policy_digest", "input_digests", "result_digest:", "request_digest:", "engine_version:", "contract_version:",
    };

    private static ProofVerification Verify(byte[] file, CasStore? store, params VerificationKey[] keys) =>
        ProofVerifier.Verify(file, new ProofVerifyOptions { Store = store, Keys = keys }, Hash);

    private static void AssertNamedReasons(ProofVerification v, string context)
    {
        Assert.False(v.Valid, "undetected: " + context);
        Assert.NotEmpty(v.Reasons);
        foreach (var r in v.Reasons)
            Assert.True(ReasonPrefixes.Any(p => r.StartsWith(p, StringComparison.Ordinal)), $"reason does not name a component: '{r}' ({context})");
    }

    private static byte[] Blake3(params byte[][] parts)
    {
        using var h = global::Blake3.Hasher.New();
        foreach (var p in parts) h.Update(p);
        var o = new byte[32];
        h.Finalize(o);
        return o;
    }

    private static byte[] Leaf(string label, byte[] value) => Blake3("leaf:"u8.ToArray(), Encoding.UTF8.GetBytes(label), new byte[] { 0 }, value);
    private static byte[] Node(byte[] l, byte[] r) => Blake3("node:"u8.ToArray(), l, r);

    [Fact]
    public void MerkleTreeFollowsTheDocumentedShape()
    {
        var leaves = Enumerable.Range(0, 5).Select(i => new MerkleLeaf($"x/{i}", new[] { (byte)i })).ToList();
        var l = leaves.Select(x => Leaf(x.Label, x.Value)).ToArray();
        Assert.Equal(Convert.ToHexString(l[0]).ToLowerInvariant(), MerkleTree.Root(Hash, leaves.Take(1).ToList()));
        Assert.Equal(Convert.ToHexString(Node(l[0], l[1])).ToLowerInvariant(), MerkleTree.Root(Hash, leaves.Take(2).ToList()));
        // Odd last hash promoted unchanged, never duplicated.
        Assert.Equal(Convert.ToHexString(Node(Node(l[0], l[1]), l[2])).ToLowerInvariant(), MerkleTree.Root(Hash, leaves.Take(3).ToList()));
        Assert.Equal(Convert.ToHexString(Node(Node(Node(l[0], l[1]), Node(l[2], l[3])), l[4])).ToLowerInvariant(), MerkleTree.Root(Hash, leaves));
        // Domain separation: a leaf is not a node of the same bytes.
        Assert.NotEqual(Leaf("a", new byte[64]), Node(new byte[32], new byte[32]));
    }

    [Fact]
    public void BundleIsDeterministicAndItsRootRecomputesFromTheLeafOrder()
    {
        using var f = new ProofFixture();
        var a = f.Prove();
        var b = f.Prove();
        Assert.Equal(a.Json, b.Json);
        var bundle = a.Bundle;
        var labels = bundle.Leaves().Select(x => x.Label).ToArray();
        Assert.Equal(new[]
        {
            "input_digests/0", "output_digests/0", "output_digests/1", "output_digests/2", "policy_digest", "replay_transcript_digest",
            "engine_version", "contract_version", "request_digest", "result_digest", "request_object",
        }, labels);
        Assert.Equal(bundle.RequestDigest, bundle.InputDigests[0]);
        Assert.Equal(f.Result["stdout_digest"]!.GetValue<string>(), bundle.OutputDigests[0]);
        Assert.Equal("", bundle.SignatureStub);
        Assert.True(Verify(Encoding.UTF8.GetBytes(a.Json), f.Store).Valid);
        Assert.Equal(a.ManifestDigest, f.Store.GetRef("proofs/" + a.MerkleRoot));
        var manifest = f.Store.ReadManifest(a.ManifestDigest);
        Assert.Equal(ProofBuilder.ManifestKind, manifest.Kind);
        Assert.Contains(bundle.ReplayTranscriptDigest, manifest.References);
        Assert.Contains(bundle.RequestObject, manifest.References);
        Assert.All(bundle.OutputDigests, d => Assert.Contains(d, manifest.References));
    }

    [Fact]
    public void EverySingleByteChangeOfAnUnsignedBundleIsDetected()
    {
        using var f = new ProofFixture();
        var file = Encoding.UTF8.GetBytes(f.Prove().Json);
        Assert.True(Verify(file, null).Valid);
        var count = 0;
        for (var i = 0; i < file.Length; i++)
        {
            var original = file[i];
            for (var value = 0; value < 256; value++)
            {
                if (value == original) continue;
                file[i] = (byte)value;
                AssertNamedReasons(Verify(file, null), $"byte {i}: 0x{original:x2} -> 0x{value:x2}");
                count++;
            }
            file[i] = original;
        }
        Assert.Equal(file.Length * 255, count);
        // Truncations and an appended byte, too.
        for (var n = 0; n < file.Length - 1; n++) AssertNamedReasons(Verify(file[..n], null), $"truncated to {n}");
        // The one accepted variant: the same canonical bytes without the final LF (documented).
        Assert.True(Verify(file[..^1], null).Valid);
        AssertNamedReasons(Verify(file.Concat(new byte[] { (byte)'\n' }).ToArray(), null), "extra LF");
    }

    [Fact]
    public void EverySingleByteChangeOfASignedEnvelopeIsDetected()
    {
        using var f = new ProofFixture();
        using var key = SigningKey.Generate();
        var pub = key.PublicKey();
        var file = Encoding.UTF8.GetBytes(f.Prove(key).Json);
        Assert.True(Verify(file, f.Store, pub).Valid);
        var values = new byte[] { 0x00, 0x01, 0x20, 0x7f, 0x80, 0xff, (byte)'0', (byte)'a', (byte)'A', (byte)'+', (byte)'/', (byte)'=', (byte)'"', (byte)'\n' };
        for (var i = 0; i < file.Length; i++)
        {
            var original = file[i];
            foreach (var candidate in values.Append((byte)(original ^ 0x01)).Append((byte)(original ^ 0x20)))
            {
                if (candidate == original) continue;
                file[i] = candidate;
                AssertNamedReasons(Verify(file, null, pub), $"byte {i}: 0x{original:x2} -> 0x{candidate:x2}");
            }
            file[i] = original;
        }
    }

    [Fact]
    public void EverySingleByteChangeOfTheSignatureIsDetected()
    {
        using var f = new ProofFixture();
        using var key = SigningKey.Generate();
        var pub = key.PublicKey();
        var envelope = ParseEnvelope(f.Prove(key).Json);
        var sig = envelope.Signatures[0].Sig;
        for (var i = 0; i < sig.Length; i++)
        {
            foreach (var mask in new byte[] { 0x01, 0x80, 0xff })
            {
                var bad = (byte[])sig.Clone();
                bad[i] ^= mask;
                var forged = new DsseEnvelope
                {
                    PayloadType = envelope.PayloadType, Payload = envelope.Payload,
                    Signatures = new[] { new DsseSignature { KeyId = key.KeyId, Sig = bad } },
                };
                var v = Verify(forged.ToCanonicalJson(), f.Store, pub);
                Assert.False(v.Valid, $"signature byte {i} ^ {mask:x2} undetected");
                Assert.Contains(v.Reasons, r => r.StartsWith("signature:", StringComparison.Ordinal));
            }
        }
    }

    [Fact]
    public void EverySingleByteChangeOfAReferencedObjectIsDetectedAndNamed()
    {
        using var f = new ProofFixture();
        var info = f.Prove();
        var file = Encoding.UTF8.GetBytes(info.Json);
        var b = info.Bundle;
        var objects = new (string Digest, string Label)[]
        {
            (b.RequestObject, "request_object"),
            (b.ReplayTranscriptDigest, "replay_transcript_digest"),
            (b.OutputDigests[0], "output_digests[0] (stdout)"),
            (b.OutputDigests[2], "output_digests[2] (output file 'out/report.txt')"),
            (b.PolicyDigest, "policy_digest"),
        };
        foreach (var (digest, label) in objects)
        {
            var path = f.Store.Locate(digest)!.Value.Path;
            var bytes = File.ReadAllBytes(path);
            Assert.NotEmpty(bytes);
            for (var i = 0; i < bytes.Length; i++)
            {
                foreach (var mask in new byte[] { 0x01, 0xff })
                {
                    var changed = (byte[])bytes.Clone();
                    changed[i] ^= mask;
                    File.WriteAllBytes(path, changed);
                    var v = Verify(file, f.Store);
                    AssertNamedReasons(v, $"{label} byte {i}");
                    Assert.Contains(v.Reasons, r => r.StartsWith(label + " " + digest, StringComparison.Ordinal) && r.Contains("corrupt"));
                }
            }
            File.WriteAllBytes(path, bytes);
            // A missing object is named too (one never found damaged: a quarantined one is reported as corrupt).
            Directory.Delete(f.Store.QuarantineDirectory, recursive: true);
            File.Delete(path);
            Assert.Contains(Verify(file, f.Store).Reasons, r => r.StartsWith(label + " " + digest, StringComparison.Ordinal) && r.Contains("missing"));
            File.WriteAllBytes(path, bytes);
        }
        Assert.True(Verify(file, f.Store).Valid);
    }

    [Fact]
    public void ASignatureByAnotherKeyIsRejected()
    {
        using var f = new ProofFixture();
        using var a = SigningKey.Generate();
        using var b = SigningKey.Generate();
        var signedByA = Encoding.UTF8.GetBytes(f.Prove(a).Json);
        Assert.True(Verify(signedByA, f.Store, a.PublicKey()).Valid);
        var v = Verify(signedByA, f.Store, b.PublicKey());
        Assert.False(v.Valid);
        Assert.Contains(v.Reasons, r => r.Contains("is not a trusted key"));

        // B's signature labelled with A's keyid: the keyid matches, the signature does not.
        var env = ParseEnvelope(f.Prove(b).Json);
        var relabelled = new DsseEnvelope
        {
            PayloadType = env.PayloadType, Payload = env.Payload,
            Signatures = new[] { new DsseSignature { KeyId = a.KeyId, Sig = env.Signatures[0].Sig } },
        };
        v = Verify(relabelled.ToCanonicalJson(), f.Store, a.PublicKey());
        Assert.False(v.Valid);
        Assert.Contains(v.Reasons, r => r.Contains("does not verify"));

        // Stripping the envelope (downgrade to unsigned) is refused when a key is given.
        v = Verify(env.Payload, f.Store, a.PublicKey());
        Assert.Contains(v.Reasons, r => r.StartsWith("signature: the bundle is not signed", StringComparison.Ordinal));
    }

    [Fact]
    public void BadInputsToTheBuilderAreTypedErrors()
    {
        using var f = new ProofFixture();
        var altered = (JsonObject)f.Result.DeepClone();
        altered["exit_code"] = 1;
        Assert.Equal("ResultDigestMismatch", Assert.Throws<RequiemException>(() => ProofBuilder.Create(f.Store, f.Request, altered, null)).ErrorId);

        var otherRequest = (JsonObject)f.Request.DeepClone();
        otherRequest["command"] = "/bin/false";
        Assert.Equal("RequestDigestMismatch", Assert.Throws<RequiemException>(() => ProofBuilder.Create(f.Store, otherRequest, f.Result, null)).ErrorId);
        Assert.Equal("RequestNotFound", Assert.Throws<RequiemException>(() => ProofBuilder.Create(f.Store, null, f.Result, null)).ErrorId);

        var noStdout = (JsonObject)f.Result.DeepClone();
        noStdout.Remove("stdout_digest");
        Assert.Equal("InvalidExecResult", Assert.Throws<RequiemException>(() => ProofBuilder.Create(f.Store, f.Request, noStdout, null)).ErrorId);

        var stdoutPath = f.Store.Locate(f.Result["stdout_digest"]!.GetValue<string>())!.Value.Path;
        var saved = File.ReadAllBytes(stdoutPath);
        File.WriteAllBytes(stdoutPath, saved.Select(b => (byte)(b ^ 1)).ToArray());
        var corrupt = Assert.Throws<RequiemException>(() => ProofBuilder.Create(f.Store, f.Request, f.Result, null));
        Assert.Equal("ProofObjectCorrupt", corrupt.ErrorId);
        Assert.Contains("stdout", corrupt.Message);
        File.WriteAllBytes(stdoutPath, saved);

        File.Delete(f.Store.Locate(f.Result["policy_digest"]!.GetValue<string>())!.Value.Path);
        var ex = Assert.Throws<RequiemException>(() => ProofBuilder.Create(f.Store, f.Request, f.Result, null));
        Assert.Equal("ProofObjectMissing", ex.ErrorId);
        Assert.Contains("policy", ex.Message);
    }

    [Fact]
    public void MalformedBundlesAreTypedErrorsWhenParsedAndReasonsWhenVerified()
    {
        foreach (var text in new[] { "", "not json", "[]", "{}", "{\"merkle_root\":1}", "{\"payloadType\":\"x\"}" })
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            Assert.Equal("InvalidProofBundle", Assert.Throws<RequiemException>(() => ProofArchive.ReadDocument(bytes, "t")).ErrorId);
            AssertNamedReasons(Verify(bytes, null), text);
        }
    }

    [Fact]
    public void KeysAreWrittenOwnerOnlyAndMalformedKeysAreTypedErrors()
    {
        var dir = Directory.CreateTempSubdirectory("requiem-keys-").FullName;
        try
        {
            var priv = Path.Combine(dir, "k.pem");
            var pub = Path.Combine(dir, "k.pub.pem");
            var info = SigningKey.CreateKeyPair(priv, pub, force: false);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(priv));
            Assert.StartsWith("-----BEGIN PRIVATE KEY-----", File.ReadAllText(priv));
            Assert.StartsWith("-----BEGIN PUBLIC KEY-----", File.ReadAllText(pub));
            Assert.Equal("KeyFileExists", Assert.Throws<RequiemException>(() => SigningKey.CreateKeyPair(priv, pub, force: false)).ErrorId);
            using (var k = SigningKey.Load(priv)) Assert.Equal(info.KeyId, k.KeyId);
            Assert.Equal(info.KeyId, VerificationKey.Load(pub).KeyId);
            Assert.Equal(info.KeyId, Convert.ToHexString(SHA256.HashData(ECDsa.Create().Also(e => e.ImportFromPem(File.ReadAllText(pub))).ExportSubjectPublicKeyInfo())).ToLowerInvariant());

            string Write(string name, string text) { var p = Path.Combine(dir, name); File.WriteAllText(p, text); return p; }
            using var rsa = RSA.Create(2048);
            using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
            var cases = new (string File, string Id, bool Public)[]
            {
                (Write("garbage.pem", "hello"), "InvalidSigningKey", false),
                (Write("rsa.pem", rsa.ExportPkcs8PrivateKeyPem()), "InvalidSigningKey", false),
                (Write("p384.pem", p384.ExportPkcs8PrivateKeyPem()), "InvalidSigningKey", false),
                (Write("enc.pem", p384.ExportEncryptedPkcs8PrivateKeyPem("pw", new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000))), "InvalidSigningKey", false),
                (pub, "InvalidSigningKey", false),
                (Write("broken.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "InvalidSigningKey", false),
                (priv, "InvalidPublicKey", true),
                (Write("rsa.pub.pem", rsa.ExportSubjectPublicKeyInfoPem()), "InvalidPublicKey", true),
                (Write("p384.pub.pem", p384.ExportSubjectPublicKeyInfoPem()), "InvalidPublicKey", true),
                (Write("garbage.pub.pem", "nope"), "InvalidPublicKey", true),
            };
            foreach (var (file, id, isPublic) in cases)
            {
                var ex = Assert.Throws<RequiemException>(() => { if (isPublic) VerificationKey.Load(file); else SigningKey.Load(file).Dispose(); });
                Assert.True(id == ex.ErrorId, $"{Path.GetFileName(file)}: expected {id}, got {ex.ErrorId}: {ex.Message}");
                Assert.Equal(file, ex.Target);
            }
            Assert.Equal("FileNotFound", Assert.Throws<RequiemException>(() => VerificationKey.Load(Path.Combine(dir, "absent.pem"))).ErrorId);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TrustedKeysFilesInBothFormats()
    {
        var dir = Directory.CreateTempSubdirectory("requiem-trust-").FullName;
        try
        {
            using var a = SigningKey.Generate();
            using var b = SigningKey.Generate();
            var pem = Path.Combine(dir, "trusted.pem");
            File.WriteAllText(pem, a.PublicKeyPem() + "\n" + b.PublicKeyPem() + "\n");
            Assert.Equal(new[] { a.KeyId, b.KeyId }, VerificationKey.LoadTrusted(pem).Select(k => k.KeyId));
            var json = Path.Combine(dir, "trusted.json");
            var doc = new JsonObject { ["trusted_keys"] = new JsonArray(new JsonObject { ["keyid"] = b.KeyId, ["name"] = "ci", ["public_key"] = b.PublicKeyPem() }) };
            File.WriteAllText(json, doc.ToJsonString());
            Assert.Equal(b.KeyId, Assert.Single(VerificationKey.LoadTrusted(json)).KeyId);
            doc["trusted_keys"]![0]!["keyid"] = a.KeyId;
            File.WriteAllText(json, doc.ToJsonString());
            Assert.Equal("InvalidTrustedKeys", Assert.Throws<RequiemException>(() => VerificationKey.LoadTrusted(json)).ErrorId);
            File.WriteAllText(json, "{\"trusted_keys\":[]}");
            Assert.Equal("InvalidTrustedKeys", Assert.Throws<RequiemException>(() => VerificationKey.LoadTrusted(json)).ErrorId);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ArchiveVerifiesInAFreshStoreAndACorruptArchiveImportsNothing()
    {
        using var f = new ProofFixture();
        using var key = SigningKey.Generate();
        var info = f.Prove(key);
        var tar = Path.Combine(f.Root, "proof.tar");
        var exported = ProofArchive.Export(f.Store, Encoding.UTF8.GetBytes(info.Json), tar, force: false);
        Assert.Equal(info.MerkleRoot, exported.MerkleRoot);
        Assert.Equal("ArchiveExists", Assert.Throws<RequiemException>(() => ProofArchive.Export(f.Store, Encoding.UTF8.GetBytes(info.Json), tar, force: false)).ErrorId);

        var fresh = CasStore.Open(Path.Combine(f.Root, "fresh"), Hash);
        var imported = ProofArchive.Import(fresh, tar);
        Assert.Equal(info.MerkleRoot, imported.MerkleRoot);
        var doc = ProofBuilder.LoadStoredDocument(fresh, info.MerkleRoot, out _)!;
        Assert.Equal(info.Json, Encoding.UTF8.GetString(doc));
        Assert.True(Verify(doc, fresh, key.PublicKey()).Valid);

        // Flip one byte of the stdout object inside the tar: import refuses and stores no proof.
        var bytes = File.ReadAllBytes(tar);
        var stdoutOffset = IndexOf(bytes, "hello\n"u8.ToArray());
        Assert.True(stdoutOffset > 0);
        bytes[stdoutOffset] ^= 0x01;
        var bad = Path.Combine(f.Root, "bad.tar");
        File.WriteAllBytes(bad, bytes);
        var other = CasStore.Open(Path.Combine(f.Root, "other"), Hash);
        var ex = Assert.Throws<RequiemException>(() => ProofArchive.Import(other, bad));
        Assert.Equal("ArchiveObjectCorrupt", ex.ErrorId);
        Assert.Equal(info.Bundle.OutputDigests[0], ex.Target);
        Assert.Null(other.GetRef("proofs/" + info.MerkleRoot));
        Assert.Empty(other.EnumerateHashes());

        File.WriteAllText(bad, "not a tar archive at all, just text that is long enough to be read as a header block maybe");
        Assert.Equal("InvalidProofArchive", Assert.Throws<RequiemException>(() => ProofArchive.Import(other, bad)).ErrorId);
    }

    private static int IndexOf(byte[] hay, byte[] needle)
    {
        for (var i = 0; i + needle.Length <= hay.Length; i++)
        {
            if (hay.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        }
        return -1;
    }

    private static DsseEnvelope ParseEnvelope(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var problems = new List<string>();
        return DsseEnvelope.FromElement(doc.RootElement, problems) ?? throw new InvalidOperationException(string.Join("; ", problems));
    }
}

internal static class TestExtensions
{
    public static T Also<T>(this T value, Action<T> action)
    {
        action(value);
        return value;
    }
}
