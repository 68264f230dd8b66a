using System.Collections;
using System.Management.Automation;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.Config;
using Requiem.Engine.Execution;

namespace Requiem.PowerShell.Internal;

/// <summary>Turns what a user passes as -Request / -Result (path, JSON text, hashtable, typed object, ConvertFrom-Json output) into engine objects.</summary>
internal static class ExecInput
{
    /// <summary>
    /// A request from a hashtable (the request's snake_case keys), an <see cref="ExecRequest"/>, a PSCustomObject, JSON text, or a
    /// path to a JSON file (resolved by <paramref name="resolvePath"/>). Every malformation is a typed RequiemException.
    /// </summary>
    public static ExecRequest ToRequest(object? input, RequiemConfig config, Func<string, string> resolvePath)
    {
        input = Unwrap(input);
        switch (input)
        {
            case null:
                throw new RequiemException("InvalidRequest", ErrorKind.InvalidArgument, "The request is null.", null);
            case ExecRequest typed:
                return typed.Validate(config);
            case FileInfo file:
                return FromFile(file.FullName, config);
            case string s when s.TrimStart().StartsWith('{') || s.TrimStart().StartsWith('['):
                return ExecRequestParser.Parse(s, config, "request");
            case string path:
                return FromFile(resolvePath(path), config);
            case IDictionary or PSObject:
                var node = ToJsonNode(input, "$")!;
                Requiem.Engine.Json.StrictText.EnsureWellFormed(node, "$");
                var json = node.ToJsonString();
                return ExecRequestParser.Parse(json, config, "request");
            default:
                throw new RequiemException("InvalidRequest", ErrorKind.InvalidArgument,
                    $"A request must be a path, JSON text, a hashtable or an ExecRequest, not {input.GetType().FullName}.", input);
        }
    }

    private static ExecRequest FromFile(string path, RequiemConfig config)
    {
        return ExecRequestParser.Parse(InputFile.ReadAllText(path, "Request file"), config, path);
    }

    public static object? Unwrap(object? o)
    {
        while (o is PSObject ps && ps.BaseObject is not PSCustomObject && !ReferenceEquals(ps.BaseObject, ps)) o = ps.BaseObject;
        return o;
    }

    /// <summary>Converts hashtables / arrays / PSCustomObjects / scalars to JSON, refusing anything that is not JSON-shaped.</summary>
    public static JsonNode? ToJsonNode(object? value, string where)
    {
        value = Unwrap(value);
        switch (value)
        {
            case null: return null;
            case string s: return JsonValue.Create(s);
            case bool b: return JsonValue.Create(b);
            case int i: return JsonValue.Create(i);
            case long l: return JsonValue.Create(l);
            case short or byte or sbyte or ushort or uint: return JsonValue.Create(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
            case ulong ul: return JsonValue.Create(ul);
            case double d when !double.IsFinite(d):
            case float f when !float.IsFinite(f):
                throw new RequiemException("InvalidRequestFieldType", ErrorKind.InvalidData,
                    $"{where} is {value}, which has no JSON form (JSON numbers are finite).", where);
            case double d: return JsonValue.Create(d);
            case float f: return JsonValue.Create((double)f);
            case decimal m: return JsonValue.Create(m);
            case SwitchParameter sw: return JsonValue.Create(sw.IsPresent);
            // ConvertFrom-Json turns ISO 8601 strings into dates; turn them back (shortest round-trip form).
            case DateTime dt: return JsonValue.Create(dt.ToString("yyyy-MM-ddTHH:mm:ss.FFFFFFFK", System.Globalization.CultureInfo.InvariantCulture));
            case DateTimeOffset dto: return JsonValue.Create(dto.ToString("yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz", System.Globalization.CultureInfo.InvariantCulture));
            case ExecRequest r: return r.ToJsonNode();
            case ExecPolicy p: return p.ToJsonNode();
            case IDictionary dict:
                var o = new JsonObject();
                foreach (DictionaryEntry e in dict)
                {
                    var key = e.Key?.ToString() ?? "";
                    if (o.ContainsKey(key))
                        throw new RequiemException("InvalidRequest", ErrorKind.InvalidData, $"{where}.{key} appears twice.", $"{where}.{key}");
                    o[key] = ToJsonNode(e.Value, $"{where}.{key}");
                }
                return o;
            case PSObject ps:
                var obj = new JsonObject();
                foreach (var prop in ps.Properties)
                {
                    if (prop.MemberType is not (PSMemberTypes.NoteProperty or PSMemberTypes.Property)) continue;
                    obj[prop.Name] = ToJsonNode(prop.Value, $"{where}.{prop.Name}");
                }
                return obj;
            case IEnumerable list:
                var a = new JsonArray();
                var n = 0;
                foreach (var item in list) a.Add(ToJsonNode(item, $"{where}[{n++}]"));
                return a;
            default:
                throw new RequiemException("InvalidRequestFieldType", ErrorKind.InvalidData,
                    $"{where} has a value of type {value.GetType().FullName}, which has no JSON form.", where);
        }
    }

    /// <summary>A recorded result: an ExecResult, a result digest, a path to a result JSON file, or ConvertFrom-Json output.</summary>
    public static ExecResult ToResult(object? input, Requiem.Engine.Cas.CasStore store, Func<string, string> resolvePath)
    {
        input = Unwrap(input);
        switch (input)
        {
            case ExecResult r: return r;
            case FileInfo f: return Replay.LoadRecorded(f.FullName, store);
            case string s when Requiem.Engine.Hashing.Hex.IsDigest(s.Trim()): return Replay.LoadRecorded(s.Trim(), store);
            case string s when s.TrimStart().StartsWith('{'): return ExecResult.FromJson(s, "result");
            case string path: return Replay.LoadRecorded(resolvePath(path), store);
            case PSObject or IDictionary:
                if (ToJsonNode(input, "$") is JsonObject o) return ExecResult.FromJsonNode(o, "result");
                break;
        }
        throw new RequiemException("InvalidResult", ErrorKind.InvalidArgument,
            $"A result must be a result object, a result digest or a path to a result JSON file, not {input?.GetType().FullName ?? "null"}.", input);
    }

    /// <summary>The JSON document of a result input, for digest verification (keeps every field as written).</summary>
    public static (JsonObject Document, string Target) ToResultDocument(object? input, Func<string, string> resolvePath)
    {
        input = Unwrap(input);
        string text;
        string target;
        switch (input)
        {
            case ExecResult r:
                return (r.ToJsonNode(), "result");
            case FileInfo f:
                target = f.FullName;
                text = ReadText(target);
                break;
            case string s when s.TrimStart().StartsWith('{'):
                target = "result";
                text = s;
                break;
            case string path:
                target = resolvePath(path);
                text = ReadText(target);
                break;
            case PSObject or IDictionary:
                if (ToJsonNode(input, "$") is JsonObject o) return (o, "result");
                throw new RequiemException("InvalidResult", ErrorKind.InvalidArgument, "The result is not a JSON object.", input);
            default:
                throw new RequiemException("InvalidResult", ErrorKind.InvalidArgument, "A result must be a result object or a path to a result JSON file.", input);
        }
        try
        {
            return (JsonNode.Parse(text) as JsonObject ?? throw new RequiemException("InvalidResult", ErrorKind.InvalidData, "The result is not a JSON object.", target), target);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new RequiemException("InvalidJson", ErrorKind.InvalidData, $"'{target}' is not valid JSON: {ex.Message}", target, ex);
        }
    }

    private static string ReadText(string path) => InputFile.ReadAllText(path, "File");
}
