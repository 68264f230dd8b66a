using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Requiem.Engine.Json;

/// <summary>
/// RFC 8785 JSON Canonicalization Scheme (JCS): object members sorted by UTF-16 code units, no whitespace,
/// numbers in ECMAScript shortest form, strings with the minimal escapes. Duplicate member names are refused.
/// </summary>
public static class CanonicalJson
{
    private static readonly JsonDocumentOptions s_parseOptions = new() { MaxDepth = 128 };

    /// <summary>Canonical UTF-8 bytes of a JSON text.</summary>
    public static byte[] Canonicalize(string json)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, s_parseOptions);
        }
        catch (JsonException ex)
        {
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "Not valid JSON: " + ex.Message, null, ex);
        }
        using (doc) return Canonicalize(doc.RootElement);
    }

    /// <summary>Canonical UTF-8 bytes of a parsed element.</summary>
    public static byte[] Canonicalize(JsonElement element)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        Write(element, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Canonical UTF-8 bytes of any value System.Text.Json can serialize with the given options.</summary>
    public static byte[] Serialize<T>(T value, JsonSerializerOptions options)
    {
        using var doc = JsonSerializer.SerializeToDocument(value, options);
        return Canonicalize(doc.RootElement);
    }

    public static string CanonicalizeToString(string json) => Encoding.UTF8.GetString(Canonicalize(json));

    /// <summary>
    /// <see cref="Canonicalize(string)"/> for texts that recur — a rerun of the same request canonicalises the same
    /// request, policy and result texts again (a parse, a sort and a write each) — remembered by text (at
    /// most 128 texts of up to 8 Ki characters; the memo starts over when full). The array is shared between callers: read it, never change it.
    /// </summary>
    internal static byte[] CanonicalizeShared(string json)
    {
        if (json.Length > SharedMaxChars) return Canonicalize(json);
        if (s_shared.TryGetValue(json, out var bytes)) return bytes;
        bytes = Canonicalize(json);
        if (s_shared.Count >= SharedMaxEntries) s_shared.Clear();
        s_shared[json] = bytes;
        return bytes;
    }

    private const int SharedMaxChars = 8 * 1024;
    private const int SharedMaxEntries = 128;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> s_shared = new(StringComparer.Ordinal);

    private static void Write(JsonElement e, IBufferWriter<byte> w)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                WriteObject(e, w);
                break;
            case JsonValueKind.Array:
                WriteRaw(w, "["u8);
                var first = true;
                foreach (var item in e.EnumerateArray())
                {
                    if (!first) WriteRaw(w, ","u8);
                    first = false;
                    Write(item, w);
                }
                WriteRaw(w, "]"u8);
                break;
            case JsonValueKind.String:
                WriteString(e.GetString()!, w);
                break;
            case JsonValueKind.Number:
                WriteAscii(w, FormatNumber(e.GetDouble()));
                break;
            case JsonValueKind.True:
                WriteRaw(w, "true"u8);
                break;
            case JsonValueKind.False:
                WriteRaw(w, "false"u8);
                break;
            case JsonValueKind.Null:
                WriteRaw(w, "null"u8);
                break;
            default:
                throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"Unexpected JSON value kind {e.ValueKind}.");
        }
    }

    private static void WriteObject(JsonElement e, IBufferWriter<byte> w)
    {
        var members = new List<JsonProperty>();
        foreach (var p in e.EnumerateObject()) members.Add(p);
        members.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        WriteRaw(w, "{"u8);
        for (var i = 0; i < members.Count; i++)
        {
            if (i > 0)
            {
                if (string.Equals(members[i - 1].Name, members[i].Name, StringComparison.Ordinal))
                    throw new RequiemException("DuplicateJsonMember", ErrorKind.InvalidData,
                        $"JSON object has the member '{members[i].Name}' more than once; canonical JSON forbids duplicates.", members[i].Name);
                WriteRaw(w, ","u8);
            }
            WriteString(members[i].Name, w);
            WriteRaw(w, ":"u8);
            Write(members[i].Value, w);
        }
        WriteRaw(w, "}"u8);
    }

    private static void WriteString(string s, IBufferWriter<byte> w)
    {
        var sb = new StringBuilder(s.Length + 2);
        sb.Append('"');
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else if (char.IsSurrogate(c))
                    {
                        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                        {
                            sb.Append(c).Append(s[++i]);
                        }
                        else
                        {
                            throw new RequiemException("InvalidJson", ErrorKind.InvalidData,
                                "JSON string contains a lone surrogate; canonical JSON requires valid Unicode.", s);
                        }
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        sb.Append('"');
        var text = sb.ToString();
        var span = w.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        var n = Encoding.UTF8.GetBytes(text, span);
        w.Advance(n);
    }

    /// <summary>ECMAScript Number.prototype.toString for finite doubles (RFC 8785 section 3.2.2.3).</summary>
    public static string FormatNumber(double value)
    {
        if (double.IsNaN(value) || double.IsInfinity(value))
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, "NaN and Infinity cannot be represented in canonical JSON.", value);
        if (value == 0) return "0";

        var negative = value < 0;
        // Shortest round-trip digits: "R" gives them, but in .NET's own layout; normalise to digits + exponent.
        var shortest = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        ParseDigits(shortest, out var digits, out var pointPos);

        var k = digits.Length;
        var n = pointPos; // value = 0.digits × 10^n
        var sb = new StringBuilder(32);
        if (negative) sb.Append('-');
        if (k <= n && n <= 21)
        {
            sb.Append(digits).Append('0', n - k);
        }
        else if (0 < n && n <= 21)
        {
            sb.Append(digits, 0, n).Append('.').Append(digits, n, k - n);
        }
        else if (-6 < n && n <= 0)
        {
            sb.Append("0.").Append('0', -n).Append(digits);
        }
        else
        {
            var exp = n - 1;
            sb.Append(digits[0]);
            if (k > 1) sb.Append('.').Append(digits, 1, k - 1);
            sb.Append('e').Append(exp >= 0 ? '+' : '-').Append(Math.Abs(exp).ToString(CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>Splits "123.45", "1.5E-07" or "1E+21" into significant digits (no leading/trailing zeros) and the decimal point position.</summary>
    private static void ParseDigits(string s, out string digits, out int pointPos)
    {
        var exp = 0;
        var ePos = s.IndexOfAny(new[] { 'E', 'e' });
        var mantissa = s;
        if (ePos >= 0)
        {
            exp = int.Parse(s.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            mantissa = s[..ePos];
        }
        var dot = mantissa.IndexOf('.');
        var intPart = dot >= 0 ? mantissa[..dot] : mantissa;
        var fracPart = dot >= 0 ? mantissa[(dot + 1)..] : "";
        var all = intPart + fracPart;
        var point = intPart.Length + exp;
        var lead = 0;
        while (lead < all.Length - 1 && all[lead] == '0') { lead++; point--; }
        all = all[lead..].TrimEnd('0');
        if (all.Length == 0) all = "0";
        digits = all;
        pointPos = point;
    }

    private static void WriteRaw(IBufferWriter<byte> w, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(w.GetSpan(bytes.Length));
        w.Advance(bytes.Length);
    }

    private static void WriteAscii(IBufferWriter<byte> w, string s)
    {
        var span = w.GetSpan(s.Length);
        for (var i = 0; i < s.Length; i++) span[i] = (byte)s[i];
        w.Advance(s.Length);
    }
}
