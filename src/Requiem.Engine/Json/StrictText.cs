using System.Text;

namespace Requiem.Engine.Json;

/// <summary>
/// Decodes JSON documents from bytes without substituting U+FFFD: invalid UTF-8 (or UTF-16 after a UTF-16 byte order
/// mark) is refused as <c>InvalidJson</c>, so a request never runs with text it did not contain.
/// </summary>
public static class StrictText
{
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly UnicodeEncoding s_utf16Le = new(bigEndian: false, byteOrderMark: false, throwOnInvalidBytes: true);
    private static readonly UnicodeEncoding s_utf16Be = new(bigEndian: true, byteOrderMark: false, throwOnInvalidBytes: true);

    /// <summary>The text of <paramref name="bytes"/>: UTF-8 (an optional BOM is dropped), or UTF-16 when it starts with a UTF-16 BOM.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes, string what, object? target)
    {
        try
        {
            if (bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) return s_utf8.GetString(bytes[3..]);
            if (bytes.Length >= 2 && bytes[0] == 0xFF && bytes[1] == 0xFE) return s_utf16Le.GetString(bytes[2..]);
            if (bytes.Length >= 2 && bytes[0] == 0xFE && bytes[1] == 0xFF) return s_utf16Be.GetString(bytes[2..]);
            return s_utf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData,
                $"The {what} is not valid UTF-8 text (byte {ex.Index} cannot be decoded); nothing was substituted or run.", target, ex);
        }
    }

    /// <summary>A whole file, decoded as <see cref="Decode"/> does (I/O errors propagate as IOException for the caller to type).</summary>
    public static string ReadFile(string path, string what) => Decode(File.ReadAllBytes(path), what, path);

    /// <summary>
    /// Refuses a string with a lone UTF-16 surrogate (possible in .NET and PowerShell strings, e.g. <c>[char]0xD800</c>):
    /// it has no UTF-8 form, and serialising it would silently replace it with U+FFFD.
    /// </summary>
    public static void EnsureWellFormed(string? value, string where)
    {
        if (value is null) return;
        if (IsWellFormed(value)) return;
        throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"{where} is not valid Unicode text (it holds a lone UTF-16 surrogate).", where);
    }

    /// <summary>Every string (and property name) in <paramref name="node"/>, checked as <see cref="EnsureWellFormed(string?, string)"/> does.</summary>
    public static void EnsureWellFormed(System.Text.Json.Nodes.JsonNode? node, string where)
    {
        switch (node)
        {
            case System.Text.Json.Nodes.JsonObject o:
                foreach (var (k, v) in o)
                {
                    EnsureWellFormed(k, where);
                    EnsureWellFormed(v, where + "." + k);
                }
                break;
            case System.Text.Json.Nodes.JsonArray a:
                for (var i = 0; i < a.Count; i++) EnsureWellFormed(a[i], $"{where}[{i}]");
                break;
            case System.Text.Json.Nodes.JsonValue v when v.TryGetValue<string>(out var s):
                EnsureWellFormed(s, where);
                break;
        }
    }

    private static bool IsWellFormed(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1])) return false;
                i++;
            }
            else if (char.IsLowSurrogate(c)) return false;
        }
        return true;
    }
}
