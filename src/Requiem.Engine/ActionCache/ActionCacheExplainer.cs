using System.Text.Json.Nodes;
using Requiem.Engine.Execution;
using Requiem.Engine.Json;

namespace Requiem.Engine.ActionCache;

/// <summary>One key component in which a request differs from a cache entry.</summary>
public sealed class ActionCacheDifference
{
    /// <summary><c>request</c> (a request field), <c>input</c> (a declared input file), <c>command</c> (the binary), <c>platform</c> or <c>hash_algorithm</c>.</summary>
    public required string Component { get; init; }
    /// <summary>Which one: the request field (<c>argv</c>, <c>policy.deny_network</c>), the input's path, the command's path, the platform part.</summary>
    public required string Name { get; init; }
    /// <summary>The entry's value (a digest, or the field's JSON); null when the entry does not have it.</summary>
    public string? Recorded { get; init; }
    /// <summary>The request's value now; null when the request does not have it.</summary>
    public string? Current { get; init; }

    public override string ToString() => Component switch
    {
        "input" when Recorded is null => $"input '{Name}' is new (not declared by the entry's request)",
        "input" when Current is null => $"input '{Name}' is no longer declared",
        "input" => $"input '{Name}' has other content ({ActionCacheKeyComponents.Short(Recorded!)} recorded, {ActionCacheKeyComponents.Short(Current!)} now)",
        "command" => $"the command binary '{Name}' has other content ({ActionCacheKeyComponents.Short(Recorded ?? "")} recorded, {ActionCacheKeyComponents.Short(Current ?? "")} now)",
        "request" => $"request field '{Name}' differs ({Recorded ?? "absent"} recorded, {Current ?? "absent"} now)",
        _ => $"{Component} {Name} differs ({Recorded} recorded, {Current} now)",
    };
}

/// <summary>What the action cache holds for a request (<c>Get-RequiemCacheEntry -Request</c>): a hit, or why it misses.</summary>
public sealed class ActionCacheExplanation
{
    /// <summary>The request's key on this machine now (null when the command binary cannot be read: no key).</summary>
    public string? Key { get; init; }
    /// <summary>An unexpired, valid entry exists under <see cref="Key"/>: a run with <c>-Cache Read|ReadWrite</c> runs nothing.</summary>
    public required bool Hit { get; init; }
    public required string Command { get; init; }
    public ActionCacheKeyComponents? Components { get; init; }
    /// <summary>The entry under <see cref="Key"/>, when there is one (it may have expired).</summary>
    public ActionCacheEntry? Entry { get; init; }
    /// <summary>On a miss: the entry of the same command whose key components differ least (the newest among equals).</summary>
    public ActionCacheEntry? Closest { get; init; }
    /// <summary>How the request differs from <see cref="Closest"/>, component by component.</summary>
    public required ActionCacheDifference[] Differences { get; init; }
    public required string Summary { get; init; }

    public override string ToString() => Summary;
}

/// <summary>Finds the entry for a request, or explains a miss by comparing it with the closest entry of the same command.</summary>
public static class ActionCacheExplainer
{
    public static ActionCacheExplanation Explain(ActionCacheStore cache, ExecPlan plan, CancellationToken cancel = default)
    {
        var request = plan.Request;
        var hash = cache.Store.HashPrimitive;
        var components = ActionCacheRunner.ComputeComponents(plan, hash, cancel);
        if (components is null)
        {
            return new ActionCacheExplanation
            {
                Hit = false, Command = request.Command, Differences = Array.Empty<ActionCacheDifference>(),
                Summary = $"No key: the command binary '{plan.CommandPath}' cannot be read, so this request is never cached.",
            };
        }
        var key = components.ComputeKey(hash);
        ActionCacheEntry? exact = null;
        string? invalid = null;
        try
        {
            exact = cache.TryGet(key);
        }
        catch (RequiemException ex)
        {
            invalid = ex.Message;
        }
        if (exact is { Expired: false })
        {
            return new ActionCacheExplanation
            {
                Key = key, Hit = true, Command = request.Command, Components = components, Entry = exact, Differences = Array.Empty<ActionCacheDifference>(),
                Summary = $"Hit: entry {key} (created {exact.CreatedAt:u}, expires {exact.ExpiresAt:u}) answers this request; nothing would run.",
            };
        }

        ActionCacheEntry? closest = null;
        var best = int.MaxValue;
        foreach (var candidate in cache.EnumerateEntries())
        {
            cancel.ThrowIfCancellationRequested();
            if (candidate.Key == key || !string.Equals(candidate.Command, request.Command, StringComparison.Ordinal)) continue;
            var score = Distance(candidate.Components, components);
            if (score < best || (score == best && candidate.CreatedAt > closest!.CreatedAt))
            {
                best = score;
                closest = candidate;
            }
        }
        var differences = closest is null ? Array.Empty<ActionCacheDifference>() : Compare(closest, components, plan, cache, cancel);
        var why = exact is { Expired: true } ? $"the entry for this key expired at {exact.ExpiresAt:u} (cache.max_age_days)"
            : invalid is not null ? "the entry for this key is not usable: " + invalid
            : "no entry has this key";
        var summary = closest is null
            ? $"Miss: {why}, and the cache holds no other entry of the command '{request.Command}'."
            : $"Miss: {why}. The closest entry of '{request.Command}' is {closest.Key} (created {closest.CreatedAt:u}); it differs in: "
              + string.Join("; ", differences.Select(d => d.ToString())) + ".";
        return new ActionCacheExplanation
        {
            Key = key, Hit = false, Command = request.Command, Components = components, Entry = exact, Closest = closest,
            Differences = differences, Summary = summary,
        };
    }

    /// <summary>How many key components differ (each differing input counts once).</summary>
    public static int Distance(ActionCacheKeyComponents a, ActionCacheKeyComponents b)
    {
        var d = 0;
        if (a.HashAlgorithm != b.HashAlgorithm) d++;
        if (a.RequestDigest != b.RequestDigest) d++;
        if (a.CommandDigest != b.CommandDigest) d++;
        if (a.Platform != b.Platform) d++;
        var x = ByPath(a.Inputs);
        var y = ByPath(b.Inputs);
        foreach (var path in x.Keys.Union(y.Keys))
        {
            if (!x.TryGetValue(path, out var dx) || !y.TryGetValue(path, out var dy) || dx != dy) d++;
        }
        return d;
    }

    private static ActionCacheDifference[] Compare(ActionCacheEntry entry, ActionCacheKeyComponents now, ExecPlan plan, ActionCacheStore cache, CancellationToken cancel)
    {
        var diffs = new List<ActionCacheDifference>();
        var was = entry.Components;
        if (was.HashAlgorithm != now.HashAlgorithm)
            diffs.Add(new ActionCacheDifference { Component = "hash_algorithm", Name = "hash_algorithm", Recorded = was.HashAlgorithm, Current = now.HashAlgorithm });
        if (was.Platform.Os != now.Platform.Os) diffs.Add(new ActionCacheDifference { Component = "platform", Name = "os", Recorded = was.Platform.Os, Current = now.Platform.Os });
        if (was.Platform.Architecture != now.Platform.Architecture)
            diffs.Add(new ActionCacheDifference { Component = "platform", Name = "architecture", Recorded = was.Platform.Architecture, Current = now.Platform.Architecture });
        if (was.Platform.ContractVersion != now.Platform.ContractVersion)
            diffs.Add(new ActionCacheDifference { Component = "platform", Name = "contract_version", Recorded = was.Platform.ContractVersion, Current = now.Platform.ContractVersion });
        if (was.CommandDigest != now.CommandDigest)
            diffs.Add(new ActionCacheDifference { Component = "command", Name = plan.CommandPath, Recorded = was.CommandDigest, Current = now.CommandDigest });
        if (was.RequestDigest != now.RequestDigest) diffs.AddRange(RequestFields(entry, plan.Request, cache, cancel));
        var x = ByPath(was.Inputs);
        var y = ByPath(now.Inputs);
        foreach (var path in x.Keys.Union(y.Keys).Order(StringComparer.Ordinal))
        {
            x.TryGetValue(path, out var dx);
            y.TryGetValue(path, out var dy);
            if (dx != dy) diffs.Add(new ActionCacheDifference { Component = "input", Name = path, Recorded = dx, Current = dy });
        }
        return diffs.ToArray();
    }

    /// <summary>The request fields (policy fields one by one) that differ, read from the entry's request object in the CAS.</summary>
    private static IEnumerable<ActionCacheDifference> RequestFields(ActionCacheEntry entry, ExecRequest request, ActionCacheStore cache, CancellationToken cancel)
    {
        JsonObject? recorded = null;
        try
        {
            recorded = JsonNode.Parse(cache.Store.ReadAllBytes(entry.RequestBlobDigest, cancel)) as JsonObject;
        }
        catch (Exception ex) when (ex is RequiemException or System.Text.Json.JsonException)
        {
        }
        if (recorded is null)
        {
            return new[] { new ActionCacheDifference { Component = "request", Name = "request_digest", Recorded = entry.Components.RequestDigest, Current = request.ComputeDigest(cache.Store.HashPrimitive) } };
        }
        var current = request.ToJsonNode();
        var diffs = new List<ActionCacheDifference>();
        void Fields(JsonObject? a, JsonObject? b, string prefix)
        {
            var names = (a?.Select(p => p.Key) ?? Enumerable.Empty<string>()).Union(b?.Select(p => p.Key) ?? Enumerable.Empty<string>()).Order(StringComparer.Ordinal);
            foreach (var name in names)
            {
                var va = a?[name];
                var vb = b?[name];
                if (prefix.Length == 0 && name == "policy")
                {
                    Fields(va as JsonObject, vb as JsonObject, "policy.");
                    continue;
                }
                var ta = a is not null && a.ContainsKey(name) ? Canonical(va) : null;
                var tb = b is not null && b.ContainsKey(name) ? Canonical(vb) : null;
                if (ta != tb) diffs.Add(new ActionCacheDifference { Component = "request", Name = prefix + name, Recorded = Shorten(ta), Current = Shorten(tb) });
            }
        }
        Fields(recorded, current, "");
        if (diffs.Count == 0) // same fields, other canonical bytes (should not happen): still name the component
            diffs.Add(new ActionCacheDifference { Component = "request", Name = "request_digest", Recorded = entry.Components.RequestDigest, Current = request.ComputeDigest(cache.Store.HashPrimitive) });
        return diffs;
    }

    /// <summary>Digest by path; an input declared twice (e.g. <c>a.txt</c> and <c>./a.txt</c>) is one file.</summary>
    private static Dictionary<string, string> ByPath(IEnumerable<InputFileDigest> inputs)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var i in inputs) map.TryAdd(i.Path, i.Digest);
        return map;
    }

    private static string Canonical(JsonNode? node) =>
        node is null ? "null" : System.Text.Encoding.UTF8.GetString(CanonicalJson.Canonicalize(node.ToJsonString()));

    private static string? Shorten(string? s) => s is { Length: > 200 } ? s[..200] + "…" : s;
}
