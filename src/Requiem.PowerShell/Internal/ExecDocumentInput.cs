using System.Management.Automation;
using System.Text.Json.Nodes;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.Engine.Hashing;
using Requiem.Engine.Proof;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Resolves the -Request / -Result arguments of the proof cmdlets to JSON objects. Accepted: a JSON file (path or
/// FileInfo), JSON text, a CAS digest or ref (<c>results/&lt;digest&gt;</c>) in the store, a hashtable, a
/// ConvertFrom-Json object, or an Invoke-RequiemExec result object (PascalCase properties; its stored copy in the
/// CAS is preferred when the store has <c>results/&lt;ResultDigest&gt;</c>).
/// </summary>
internal static class ExecDocumentInput
{
    public const string RequestErrorId = "InvalidExecRequest";
    public const string ResultErrorId = "InvalidExecResult";

    public static JsonObject Resolve(PSCmdlet cmdlet, object? input, CasStore store, bool isResult)
    {
        var what = isResult ? "execution result" : "execution request";
        var errorId = isResult ? ResultErrorId : RequestErrorId;
        var value = input is PSObject pso && pso.BaseObject is not PSCustomObject ? pso.BaseObject : input;
        switch (value)
        {
            case null:
                throw new RequiemException(errorId, ErrorKind.InvalidArgument, $"The {what} is null.", null);
            case FileInfo file:
                return ReadFile(file.FullName, what, errorId);
            case string s:
            {
                var text = s.Trim();
                if (text.StartsWith('{')) return ExecDocuments.ParseObject(text, what, errorId, "(json text)");
                if (Hex.IsDigest(text) || text.StartsWith("results/", StringComparison.Ordinal) || text.StartsWith("requests/", StringComparison.Ordinal))
                {
                    // A digest or ref names a stored document; a file of that name still wins.
                    var maybeFile = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(text);
                    if (File.Exists(maybeFile)) return ReadFile(maybeFile, what, errorId);
                    return ExecDocuments.LoadStoredDocument(store, text, what, errorId);
                }
                var path = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(text);
                return ReadFile(path, what, errorId);
            }
            case JsonObject obj:
                return (JsonObject)obj.DeepClone();
        }
        if (value is not PSObject && value is not System.Collections.IDictionary && JsonInput.SelfJson(value) is { } json)
            return ExecDocuments.ParseObject(json, what, errorId, value.GetType().Name);
        if (isResult && value is not System.Collections.IDictionary && JsonInput.Property(value, "ResultDigest") is string rd && Hex.IsDigest(rd)
            && store.GetRef("results/" + rd.ToLowerInvariant()) is not null)
        {
            return ExecDocuments.LoadStoredDocument(store, "results/" + rd.ToLowerInvariant(), what, errorId);
        }
        var node = JsonInput.ToNode(input, what);
        return node as JsonObject
               ?? throw new RequiemException(errorId, ErrorKind.InvalidArgument, $"The {what} must be an object, a hashtable, JSON text, a JSON file or a CAS digest.", input);
    }

    /// <summary>
    /// When the store holds the engine's own copy of this result (<c>results/&lt;result_digest&gt;</c>) and that copy
    /// verifies, use it: a pipeline object or ConvertFrom-Json output may have lost formatting of fields outside the
    /// digest (started_at), and the stored copy is what the engine recorded.
    /// </summary>
    public static JsonObject PreferStoredResult(CasStore store, JsonObject result)
    {
        if (result["result_digest"] is not JsonValue v || !v.TryGetValue<string>(out var digest) || !ProofBundle.IsContractDigest(digest)) return result;
        if (store.GetRef("results/" + digest) is null) return result;
        try
        {
            var stored = ExecDocuments.LoadStoredDocument(store, "results/" + digest, "execution result", ResultErrorId);
            return ExecDocuments.ComputeResultDigest(store.HashPrimitive, stored) == digest ? stored : result;
        }
        catch (RequiemException)
        {
            return result;
        }
    }

    private static JsonObject ReadFile(string path, string what, string errorId)
    {
        var text = InputFile.ReadAllText(path, "The " + what + " file",
            $" (the {what} may be a JSON file, JSON text, a hashtable, an object or a CAS digest)");
        return ExecDocuments.ParseObject(text, what, errorId, path);
    }
}
