using System.Collections;
using System.Reflection;

namespace Requiem.Engine.Json;

/// <summary>
/// System.Text.Json (net8.0) binds JSON <c>null</c> to properties and list items the contract types declare non-nullable.
/// This walks a deserialized document and names the first such null, so a document like <c>"runs": [null]</c> is a
/// typed error at load time instead of a NullReferenceException deep in a comparison.
/// </summary>
public static class NullGuard
{
    private static readonly NullabilityInfoContext s_context = new();
    private static readonly Dictionary<Type, (PropertyInfo Property, NullabilityInfo Nullability, string JsonName)[]> s_properties = new();

    /// <summary>The JSON path of the first null where the type says none may be (e.g. <c>$.cases[0].runs[2]</c>), or null.</summary>
    public static string? FindNull(object root) => Walk(root, "$", 0);

    private static string? Walk(object value, string path, int depth)
    {
        if (depth > 64) return null;
        var type = value.GetType();
        if (type.Assembly != typeof(NullGuard).Assembly) return null;
        foreach (var (property, nullability, jsonName) in Properties(type))
        {
            var child = property.GetValue(value);
            var where = path + "." + jsonName;
            if (child is null)
            {
                if (nullability.ReadState == NullabilityState.NotNull) return where;
                continue;
            }
            if (WalkValue(child, nullability, where, depth) is { } found) return found;
        }
        return null;
    }

    private static string? WalkValue(object child, NullabilityInfo nullability, string where, int depth)
    {
        switch (child)
        {
            case string:
                return null;
            case IDictionary dict:
            {
                var valueInfo = nullability.GenericTypeArguments.Length == 2 ? nullability.GenericTypeArguments[1] : null;
                foreach (DictionaryEntry e in dict)
                {
                    var at = $"{where}[\"{e.Key}\"]";
                    if (e.Value is null)
                    {
                        if (valueInfo?.ReadState == NullabilityState.NotNull) return at;
                        continue;
                    }
                    if (valueInfo is not null && WalkValue(e.Value, valueInfo, at, depth + 1) is { } found) return found;
                }
                return null;
            }
            case IList list:
            {
                var itemInfo = nullability.ElementType ?? (nullability.GenericTypeArguments.Length == 1 ? nullability.GenericTypeArguments[0] : null);
                for (var i = 0; i < list.Count; i++)
                {
                    var at = $"{where}[{i}]";
                    if (list[i] is not { } item)
                    {
                        if (itemInfo?.ReadState == NullabilityState.NotNull) return at;
                        continue;
                    }
                    if (itemInfo is not null && WalkValue(item, itemInfo, at, depth + 1) is { } found) return found;
                }
                return null;
            }
            default:
                return Walk(child, where, depth + 1);
        }
    }

    // The names and members the contract's serializer options bind (JsonContract.Options), so renames, ignores and the
    // naming policy are never re-derived here.
    private static (PropertyInfo, NullabilityInfo, string)[] Properties(Type type)
    {
        lock (s_properties)
        {
            if (s_properties.TryGetValue(type, out var cached)) return cached;
            var list = new List<(PropertyInfo, NullabilityInfo, string)>();
            var info = JsonContract.Options.GetTypeInfo(type);
            if (info.Kind == System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Object)
            {
                foreach (var jp in info.Properties)
                {
                    if (jp.Set is null || jp.AttributeProvider is not PropertyInfo p || p.GetIndexParameters().Length > 0) continue;
                    list.Add((p, s_context.Create(p), jp.Name));
                }
            }
            return s_properties[type] = list.ToArray();
        }
    }
}
