using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Requiem.Engine.Json;

/// <summary>The one set of serializer options for every contract document: snake_case, enums as snake_case strings.</summary>
public static class JsonContract
{
    public static readonly JsonSerializerOptions Options = Create(indented: false);
    public static readonly JsonSerializerOptions Indented = Create(indented: true);

    private static JsonSerializerOptions Create(bool indented)
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DictionaryKeyPolicy = null,
            WriteIndented = indented,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            DefaultIgnoreCondition = JsonIgnoreCondition.Never,
            ReadCommentHandling = JsonCommentHandling.Disallow,
            AllowTrailingCommas = false,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            NumberHandling = JsonNumberHandling.Strict,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    /// <summary>Deserializes a contract document, turning every parse/shape failure into a typed engine error.</summary>
    public static T Deserialize<T>(string json, string what, object? target = null)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, Options)
                   ?? throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"The {what} is JSON null.", target);
        }
        catch (JsonException ex)
        {
            var where = ex.Path is { Length: > 0 } ? $" at {ex.Path}" : "";
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"The {what} is not valid{where}: {ex.Message}", target ?? ex.Path, ex);
        }
    }
}
