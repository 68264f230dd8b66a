using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using Requiem.Engine.Cas;
using Requiem.Engine.Config;
using Requiem.Engine.Hashing;

namespace Requiem.PowerShell.Internal;

/// <summary>Tab completion of object hashes (-Hash): the hashes in the store (-Cas, else the default store) that start with what was typed.</summary>
public sealed class CasHashCompleter : IArgumentCompleter
{
    private const int Limit = 200;

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var results = new List<CompletionResult>();
        try
        {
            var prefix = (wordToComplete ?? "").Trim('\'', '"').ToLowerInvariant();
            if (!Hex.IsHex(prefix)) return results;
            string? explicitRoot = fakeBoundParameters.Contains("Cas") ? fakeBoundParameters["Cas"]?.ToString() : null;
            if (explicitRoot is not null && !Path.IsPathRooted(explicitRoot))
                explicitRoot = Path.Combine(Environment.CurrentDirectory, explicitRoot);
            var root = RequiemPaths.ResolveCasRoot(explicitRoot);
            if (!File.Exists(Path.Combine(root, CasStore.ConfigFileName))) return results;
            var store = CasStore.Open(root, HashPrimitive.Select(false), create: false);
            foreach (var hash in store.FindByPrefix(prefix, Limit))
            {
                var info = store.GetInfo(hash, verify: false);
                results.Add(new CompletionResult(hash, hash, CompletionResultType.ParameterValue,
                    $"{hash} ({info.Encoding}, {info.StoredSize} bytes stored, {info.LastWriteTimeUtc:u})"));
            }
        }
        catch (Exception)
        {
            // Completion must never throw: no store, no completions.
        }
        return results;
    }
}
