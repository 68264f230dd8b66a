using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
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
            var store = CompletionStore.TryOpen(fakeBoundParameters);
            if (store is null) return results;
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
