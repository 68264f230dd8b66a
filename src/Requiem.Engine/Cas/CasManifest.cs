using System.Text;
using System.Text.Json;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Cas;

/// <summary>
/// A manifest is a CAS object (JSON) that names other objects. Garbage collection follows manifests from refs,
/// so a result or proof stored as a manifest keeps every blob it references alive. Only objects reached as manifests
/// (named by a ref, or listed in a parent's <c>manifests</c>) are ever read as manifests; other objects are data,
/// whatever their bytes look like.
/// </summary>
public sealed class CasManifest
{
    public const string Marker = "requiem_manifest";
    public const string Version = "1";

    /// <summary>What the manifest describes, e.g. <c>exec_result</c>, <c>proof_bundle</c>.</summary>
    public required string Kind { get; init; }
    /// <summary>Digests of the objects this manifest keeps alive.</summary>
    public required IReadOnlyList<string> References { get; init; }
    /// <summary>The references that are manifests themselves (followed by GC and verification); a subset of <see cref="References"/>.</summary>
    public IReadOnlyList<string> Manifests { get; init; } = Array.Empty<string>();
    /// <summary>The document itself (a result, a bundle), stored verbatim.</summary>
    public JsonElement? Body { get; init; }

    public byte[] ToJsonBytes()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString(Marker, Version);
            w.WriteString("kind", Kind);
            w.WriteStartArray("references");
            foreach (var r in References) w.WriteStringValue(r);
            w.WriteEndArray();
            if (Manifests.Count > 0)
            {
                w.WriteStartArray("manifests");
                foreach (var m in Manifests) w.WriteStringValue(m);
                w.WriteEndArray();
            }
            if (Body is { } body)
            {
                w.WritePropertyName("body");
                body.WriteTo(w);
            }
            w.WriteEndObject();
        }
        // Canonical bytes, so that the same manifest always has the same name.
        return CanonicalJson.Canonicalize(Encoding.UTF8.GetString(ms.ToArray()));
    }

    /// <summary>Parses a manifest, or returns null when the bytes are not a valid one (see <see cref="Parse"/>).</summary>
    public static CasManifest? TryParse(ReadOnlySpan<byte> bytes) => Parse(bytes, out _, out _);

    /// <summary>
    /// Parses a manifest. Returns null with <paramref name="status"/> <c>NotManifest</c> when the bytes are not a JSON
    /// object with the marker, or <c>Invalid</c> (and the <paramref name="problem"/>) when they carry the marker but break
    /// the format. Never throws for any input.
    /// </summary>
    public static CasManifest? Parse(ReadOnlySpan<byte> bytes, out CasManifestStatus status, out string? problem)
    {
        var scanner = new CasManifestScanner();
        scanner.Write(bytes);
        scanner.Complete();
        status = scanner.Status;
        problem = scanner.Problem;
        if (status != CasManifestStatus.Manifest) return null;
        JsonElement? body = null;
        if (scanner.HasBody)
        {
            try
            {
                using var doc = JsonDocument.Parse(bytes.ToArray(), new JsonDocumentOptions { MaxDepth = CasManifestScanner.MaxDepth });
                body = doc.RootElement.GetProperty("body").Clone();
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                status = CasManifestStatus.Invalid;
                problem = "body does not parse: " + ex.Message;
                return null;
            }
        }
        return new CasManifest { Kind = scanner.Kind ?? "", References = scanner.References, Manifests = scanner.Manifests, Body = body };
    }
}

/// <summary>What a manifest scan found.</summary>
public enum CasManifestStatus
{
    /// <summary>Not a JSON object carrying the <c>requiem_manifest</c> marker: plain data.</summary>
    NotManifest,
    /// <summary>A well-formed manifest.</summary>
    Manifest,
    /// <summary>Carries the marker but breaks the format (the scanner's <c>Problem</c> says how).</summary>
    Invalid,
}

/// <summary>
/// A write-only sink that reads a manifest as it streams past (e.g. while <see cref="CasStore.CopyFile"/> re-hashes it),
/// keeping only its kind and digests, so a manifest of any size is followed with memory proportional to what it
/// references (plus its longest JSON token). Never throws on malformed input; see <see cref="Status"/>.
/// </summary>
internal sealed class CasManifestScanner : IO.WriteOnlyStream
{
    public const int MaxDepth = 256;
    private const string References_ = "references";
    private const string Manifests_ = "manifests";

    private byte[] _buffer = new byte[64 << 10];
    private int _length;
    private JsonReaderState _state = new(new JsonReaderOptions { MaxDepth = MaxDepth });
    private bool _stopped;
    private bool _sawRoot;
    private bool _rootIsObject;
    private bool _markerSeen;
    private string? _member;
    private readonly HashSet<string> _members = new(StringComparer.Ordinal);

    public List<string> References { get; } = new();
    public List<string> Manifests { get; } = new();
    public string? Kind { get; private set; }
    public bool HasBody { get; private set; }
    public string? Problem { get; private set; }

    public CasManifestStatus Status
    {
        get
        {
            if (!_sawRoot || !_rootIsObject || !_markerSeen) return CasManifestStatus.NotManifest;
            return Problem is null ? CasManifestStatus.Manifest : CasManifestStatus.Invalid;
        }
    }


    public override void Write(ReadOnlySpan<byte> data)
    {
        if (_stopped || data.IsEmpty) return;
        if (_length + data.Length > _buffer.Length)
        {
            var grown = new byte[Math.Max(_buffer.Length * 2, _length + data.Length)];
            _buffer.AsSpan(0, _length).CopyTo(grown);
            _buffer = grown;
        }
        data.CopyTo(_buffer.AsSpan(_length));
        _length += data.Length;
        Parse(final: false);
    }

    /// <summary>Call after the last byte: checks that the document ended where it should.</summary>
    public void Complete()
    {
        if (!_stopped) Parse(final: true);
        _stopped = true;
        if (Status == CasManifestStatus.Manifest)
        {
            var all = new HashSet<string>(References, StringComparer.Ordinal);
            foreach (var m in Manifests)
            {
                if (!all.Contains(m)) { Note($"'{Manifests_}' lists {m}, which is not among the references"); break; }
            }
        }
    }

    private void Parse(bool final)
    {
        var reader = new Utf8JsonReader(_buffer.AsSpan(0, _length), final, _state);
        try
        {
            while (!_stopped && reader.Read()) Handle(ref reader);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException)
        {
            _stopped = true;
            if (_markerSeen) Note("not valid JSON: " + ex.Message);
            return;
        }
        if (_stopped) return;
        var consumed = (int)reader.BytesConsumed;
        _state = reader.CurrentState;
        _buffer.AsSpan(consumed, _length - consumed).CopyTo(_buffer);
        _length -= consumed;
    }

    private void Handle(ref Utf8JsonReader reader)
    {
        var type = reader.TokenType;
        var depth = reader.CurrentDepth;
        if (!_sawRoot)
        {
            _sawRoot = true;
            _rootIsObject = type == JsonTokenType.StartObject;
            if (!_rootIsObject) _stopped = true; // data, not a manifest: nothing more to learn
            return;
        }
        if (depth == 1 && type == JsonTokenType.PropertyName)
        {
            _member = reader.ValueTextEquals(CasManifest.Marker) ? CasManifest.Marker
                : reader.ValueTextEquals("kind") ? "kind"
                : reader.ValueTextEquals(References_) ? References_
                : reader.ValueTextEquals(Manifests_) ? Manifests_
                : reader.ValueTextEquals("body") ? "body"
                : null;
            if (_member is not null && !_members.Add(_member)) Note($"'{_member}' appears twice");
            return;
        }
        if (depth == 1 && type is JsonTokenType.EndArray or JsonTokenType.EndObject) return; // end of a member's value
        if (depth == 1)
        {
            switch (_member)
            {
                case CasManifest.Marker:
                    _markerSeen = true;
                    if (type != JsonTokenType.String || !reader.ValueTextEquals(CasManifest.Version))
                        Note($"'{CasManifest.Marker}' is not \"{CasManifest.Version}\"");
                    break;
                case "kind":
                    if (type != JsonTokenType.String) { Note("'kind' is not a string"); break; }
                    try { Kind = reader.GetString(); }
                    catch (InvalidOperationException) { Note("'kind' is not a valid string"); }
                    break;
                case References_ or Manifests_:
                    if (type != JsonTokenType.StartArray) Note($"'{_member}' is not an array");
                    break;
                case "body":
                    HasBody = true;
                    break;
            }
            return;
        }
        if (depth == 2 && _member is References_ or Manifests_)
        {
            if (type is JsonTokenType.EndArray or JsonTokenType.EndObject) return;
            if (type != JsonTokenType.String || reader.ValueIsEscaped || !IsDigest(reader.ValueSpan))
            {
                Note($"'{_member}' holds an entry that is not a digest");
                return;
            }
            var digest = Encoding.ASCII.GetString(reader.ValueSpan).ToLowerInvariant();
            (_member == References_ ? References : Manifests).Add(digest);
            return;
        }
        if (depth >= 2 && _member is References_ or Manifests_) Note($"'{_member}' holds an entry that is not a digest");
    }

    private static bool IsDigest(ReadOnlySpan<byte> s)
    {
        if (s.Length != Hex.DigestLength) return false;
        foreach (var b in s)
        {
            if (!(b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F')) return false;
        }
        return true;
    }

    private void Note(string problem) => Problem ??= problem;

    public override long Length => 0;
}
