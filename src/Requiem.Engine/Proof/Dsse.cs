using System.Text;
using System.Text.Json;
using Requiem.Engine.Json;

namespace Requiem.Engine.Proof;

/// <summary>One signature of a DSSE envelope.</summary>
public sealed class DsseSignature
{
    public required string KeyId { get; init; }
    /// <summary>ASN.1 DER ECDSA signature (RFC 3279 Ecdsa-Sig-Value) over SHA-256 of the PAE.</summary>
    public required byte[] Sig { get; init; }
}

/// <summary>
/// A DSSE envelope (https://github.com/secure-systems-lab/dsse, v1.0): <c>{payloadType, payload, signatures:[{keyid, sig}]}</c>,
/// payload and sig in standard base64 with padding. Signatures are over the pre-authentication encoding
/// <c>PAE = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body</c> (LEN = byte length in ASCII decimal).
/// </summary>
public sealed class DsseEnvelope
{
    public static readonly IReadOnlyList<string> FieldNames = new[] { "payloadType", "payload", "signatures" };

    public required string PayloadType { get; init; }
    public required byte[] Payload { get; init; }
    public required IReadOnlyList<DsseSignature> Signatures { get; init; }

    public static byte[] Pae(string payloadType, ReadOnlySpan<byte> payload)
    {
        var type = Encoding.UTF8.GetBytes(payloadType);
        var head = Encoding.ASCII.GetBytes($"DSSEv1 {type.Length} ");
        var mid = Encoding.ASCII.GetBytes($" {payload.Length} ");
        var pae = new byte[head.Length + type.Length + mid.Length + payload.Length];
        head.CopyTo(pae, 0);
        type.CopyTo(pae, head.Length);
        mid.CopyTo(pae, head.Length + type.Length);
        payload.CopyTo(pae.AsSpan(head.Length + type.Length + mid.Length));
        return pae;
    }

    public byte[] Pae() => Pae(PayloadType, Payload);

    /// <summary>Signs a payload with one key and returns the envelope.</summary>
    public static DsseEnvelope Sign(string payloadType, byte[] payload, SigningKey key) => new()
    {
        PayloadType = payloadType,
        Payload = payload,
        Signatures = new[] { new DsseSignature { KeyId = key.KeyId, Sig = key.Sign(Pae(payloadType, payload)) } },
    };

    /// <summary>RFC 8785 canonical JSON of the envelope (members sorted: payload, payloadType, signatures).</summary>
    public byte[] ToCanonicalJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("payloadType", PayloadType);
            w.WriteString("payload", Convert.ToBase64String(Payload));
            w.WriteStartArray("signatures");
            foreach (var s in Signatures)
            {
                w.WriteStartObject();
                w.WriteString("keyid", s.KeyId);
                w.WriteString("sig", Convert.ToBase64String(s.Sig));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return CanonicalJson.Canonicalize(Encoding.UTF8.GetString(ms.ToArray()));
    }

    /// <summary>True when a JSON object looks like an envelope (has <c>payloadType</c> or <c>payload</c>).</summary>
    public static bool LooksLikeEnvelope(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object && (root.TryGetProperty("payloadType", out _) || root.TryGetProperty("payload", out _));

    /// <summary>Parses an envelope, adding a line per problem (unknown field, bad base64, missing signature) to <paramref name="problems"/>.</summary>
    public static DsseEnvelope? FromElement(JsonElement root, List<string> problems)
    {
        var before = problems.Count;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in root.EnumerateObject())
        {
            if (!seen.Add(p.Name)) problems.Add($"envelope: duplicate field '{p.Name}'");
            else if (!FieldNames.Contains(p.Name)) problems.Add($"envelope: unknown field '{p.Name}'");
        }
        string type = "";
        if (!root.TryGetProperty("payloadType", out var t) || t.ValueKind != JsonValueKind.String)
            problems.Add("envelope: payloadType is missing or not a string");
        else type = t.GetString()!;
        byte[]? payload = null;
        if (!root.TryGetProperty("payload", out var pl) || pl.ValueKind != JsonValueKind.String)
            problems.Add("envelope: payload is missing or not a string");
        else payload = StrictBase64(pl.GetString()!, "envelope: payload", problems);
        var sigs = new List<DsseSignature>();
        if (!root.TryGetProperty("signatures", out var arr) || arr.ValueKind != JsonValueKind.Array)
        {
            problems.Add("envelope: signatures is missing or not an array");
        }
        else
        {
            var i = 0;
            foreach (var s in arr.EnumerateArray())
            {
                var where = $"envelope: signatures[{i++}]";
                if (s.ValueKind != JsonValueKind.Object) { problems.Add(where + " is not an object"); continue; }
                foreach (var p in s.EnumerateObject())
                {
                    if (p.Name is not ("keyid" or "sig")) problems.Add($"{where}: unknown field '{p.Name}'");
                }
                var keyid = s.TryGetProperty("keyid", out var k) && k.ValueKind == JsonValueKind.String ? k.GetString()! : null;
                if (keyid is null) { problems.Add(where + ": keyid is missing or not a string"); continue; }
                if (!s.TryGetProperty("sig", out var sg) || sg.ValueKind != JsonValueKind.String) { problems.Add(where + ": sig is missing or not a string"); continue; }
                var sig = StrictBase64(sg.GetString()!, where + ".sig", problems);
                if (sig is not null) sigs.Add(new DsseSignature { KeyId = keyid, Sig = sig });
            }
            if (i == 0) problems.Add("envelope: signatures is empty");
        }
        if (problems.Count > before || payload is null) return null;
        return new DsseEnvelope { PayloadType = type, Payload = payload, Signatures = sigs };
    }

    /// <summary>Standard base64 with padding, and only its canonical spelling (no stray bits), so a changed character is never ignored.</summary>
    private static byte[]? StrictBase64(string s, string what, List<string> problems)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(s);
        }
        catch (FormatException)
        {
            problems.Add(what + " is not valid base64");
            return null;
        }
        if (!string.Equals(Convert.ToBase64String(bytes), s, StringComparison.Ordinal))
        {
            problems.Add(what + " is not canonical base64 (whitespace or non-zero padding bits)");
            return null;
        }
        return bytes;
    }
}
