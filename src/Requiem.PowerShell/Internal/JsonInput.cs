using System.Collections;
using System.Management.Automation;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Turns what PowerShell users hand to a cmdlet (hashtables, ConvertFrom-Json objects, typed engine objects with
/// PascalCase properties) into contract JSON. Dictionary keys and PSCustomObject property names are kept verbatim
/// (they are already the JSON names, and <c>env</c> keys must not change); properties of typed .NET objects are
/// mapped PascalCase → snake_case (<c>ExitCode</c> → <c>exit_code</c>), enums to snake_case strings.
/// </summary>
internal static class JsonInput
{
    private const int MaxDepth = 64;

    public static JsonNode? ToNode(object? value, string what, int depth = 0)
    {
        if (depth > MaxDepth)
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"The {what} is nested more than {MaxDepth} levels deep (a cycle?).", what);
        switch (value)
        {
            case null:
                return null;
            case PSObject pso when pso.BaseObject is PSCustomObject:
            {
                var obj = new JsonObject();
                foreach (var p in pso.Properties)
                {
                    if (p.MemberType is not (PSMemberTypes.NoteProperty or PSMemberTypes.Property)) continue;
                    obj[p.Name] = ToNode(p.Value, what, depth + 1);
                }
                return obj;
            }
            case PSObject pso:
                return ToNode(pso.BaseObject, what, depth);
            case JsonNode node:
                return node.DeepClone();
            case JsonElement element:
                return JsonNode.Parse(element.GetRawText());
            case string s:
                return JsonValue.Create(s);
            case char c:
                return JsonValue.Create(c.ToString());
            case bool b:
                return JsonValue.Create(b);
            case byte or sbyte or short or ushort or int or long:
                return JsonValue.Create(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
            case uint or ulong:
                return JsonValue.Create(Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture));
            case float f:
                return JsonValue.Create((double)f);
            case double d:
                return JsonValue.Create(d);
            case decimal m:
                return JsonValue.Create(m);
            case Enum e:
                return JsonValue.Create(JsonNamingPolicy.SnakeCaseLower.ConvertName(e.ToString()));
            case DateTime dt:
                return JsonValue.Create(dt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", System.Globalization.CultureInfo.InvariantCulture));
            case DateTimeOffset dto:
                return JsonValue.Create(dto.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", System.Globalization.CultureInfo.InvariantCulture));
            case Guid g:
                return JsonValue.Create(g.ToString());
            case IDictionary dict:
            {
                var obj = new JsonObject();
                foreach (DictionaryEntry entry in dict)
                {
                    var key = entry.Key is PSObject kp ? kp.BaseObject.ToString() : entry.Key?.ToString();
                    if (key is null) continue;
                    obj[key] = ToNode(entry.Value, what, depth + 1);
                }
                return obj;
            }
            case IEnumerable items:
            {
                var arr = new JsonArray();
                foreach (var item in items) arr.Add(ToNode(item, what, depth + 1));
                return arr;
            }
            default:
            {
                var obj = new JsonObject();
                foreach (var p in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
                {
                    if (!p.CanRead || p.GetIndexParameters().Length > 0) continue;
                    obj[JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name)] = ToNode(p.GetValue(value), what, depth + 1);
                }
                return obj;
            }
        }
    }

    /// <summary>The JSON text of an object that offers it itself (a <c>ToJson()</c> method or a <c>Json</c> string property).</summary>
    public static string? SelfJson(object value)
    {
        var type = value.GetType();
        // ToJson() or ToJson(optional parameters...), e.g. ToJson(bool indented = true).
        var method = type.GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .Where(m => m.Name == "ToJson" && m.ReturnType == typeof(string) && m.GetParameters().All(p => p.IsOptional))
            .OrderBy(m => m.GetParameters().Length)
            .FirstOrDefault();
        if (method is not null)
            return (string?)method.Invoke(value, method.GetParameters().Select(p => p.DefaultValue is DBNull ? null : p.DefaultValue).ToArray());
        var prop = type.GetProperty("Json", BindingFlags.Public | BindingFlags.Instance);
        if (prop is not null && prop.PropertyType == typeof(string) && prop.GetIndexParameters().Length == 0) return (string?)prop.GetValue(value);
        return null;
    }

    /// <summary>A property of a PowerShell or .NET object by name (case-insensitive), or null.</summary>
    public static object? Property(object value, string name)
    {
        var pso = value as PSObject ?? PSObject.AsPSObject(value);
        var p = pso.Properties[name];
        var v = p?.Value;
        return v is PSObject inner ? inner.BaseObject : v;
    }
}
