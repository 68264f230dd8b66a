using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using Requiem.Engine.Bench;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Tab completion of ref names in the store (-Cas, else the default store) that start with what was typed (wildcards
/// allowed). For -BaselineRef and -SaveRef, which name a saved bench baseline, the names under bench/ without that prefix.
/// </summary>
public sealed class CasRefCompleter : IArgumentCompleter
{
    private const int Limit = 200;

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var results = new List<CompletionResult>();
        try
        {
            var store = CompletionStore.TryOpen(fakeBoundParameters);
            if (store is null) return results;
            var benchOnly = parameterName is "BaselineRef" or "SaveRef";
            var typed = (wordToComplete ?? "").Trim('\'', '"');
            var pattern = new WildcardPattern(typed + "*", WildcardOptions.IgnoreCase);
            foreach (var (name, hash) in store.EnumerateRefs())
            {
                if (benchOnly && !name.StartsWith(BenchReportIo.RefPrefix, StringComparison.Ordinal)) continue;
                var shown = benchOnly ? name[BenchReportIo.RefPrefix.Length..] : name;
                if (!pattern.IsMatch(shown)) continue;
                results.Add(new CompletionResult(shown, shown, CompletionResultType.ParameterValue, $"{name} -> {hash}"));
                if (results.Count == Limit) break;
            }
        }
        catch (Exception)
        {
            // Completion must never throw: no store, no completions.
        }
        return results;
    }
}
