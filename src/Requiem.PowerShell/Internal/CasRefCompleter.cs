using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using Requiem.Engine.Bench;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Tab completion of ref names in the store (-Cas, else the default store) that start with what was typed (wildcards
/// allowed). For -BaselineRef and -SaveRef, which name a saved bench baseline, the names under bench/ without that prefix.
/// Names come from the file names under refs/ only (no ref file is opened: a Tab press in a store with many refs, or
/// with something planted there, must not read them), starting in the folder the typed text already names, and the
/// walk stops after <see cref="Limit"/> matches or <see cref="MaxVisited"/> entries.
/// </summary>
public sealed class CasRefCompleter : IArgumentCompleter
{
    private const int Limit = 200;
    private const int MaxVisited = 20_000;

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
            var prefix = benchOnly ? BenchReportIo.RefPrefix : "";
            foreach (var name in RefNames(store.Layout.RefsDirectory, prefix + typed))
            {
                if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var shown = name[prefix.Length..];
                if (!pattern.IsMatch(shown)) continue;
                results.Add(new CompletionResult(shown, shown, CompletionResultType.ParameterValue, "ref " + name));
                if (results.Count == Limit) break;
            }
        }
        catch (Exception)
        {
            // Completion must never throw: no store, no completions.
        }
        return results;
    }

    /// <summary>
    /// Ref names (relative paths under <paramref name="refsDirectory"/>, '/'-separated, in name order) below the deepest
    /// folder that <paramref name="typed"/> names literally before any wildcard; at most <see cref="MaxVisited"/> entries.
    /// </summary>
    internal static IEnumerable<string> RefNames(string refsDirectory, string typed)
    {
        var literal = typed;
        var wildcard = literal.IndexOfAny(new[] { '*', '?', '[', '`' });
        if (wildcard >= 0) literal = literal[..wildcard];
        var slash = literal.LastIndexOf('/');
        var startName = slash > 0 ? literal[..slash] : "";
        // Only a plain ref-name folder narrows the walk (no '..', no rooted path); anything else starts at refs/.
        if (startName.Split('/').Any(s => s.Length == 0 || s.StartsWith('.')) || startName.Contains('\\')) startName = "";
        var start = startName.Length > 0 ? Path.Combine(refsDirectory, startName) : refsDirectory;
        if (!Directory.Exists(start)) start = refsDirectory; // e.g. typed in another case on a case-sensitive file system
        if (!Directory.Exists(start)) yield break;

        var visited = 0;
        var pending = new Stack<string>();
        pending.Push(start);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            List<FileSystemInfo> entries;
            try
            {
                entries = new DirectoryInfo(dir).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            var subfolders = new List<string>();
            foreach (var entry in entries)
            {
                if (++visited > MaxVisited) yield break;
                if (entry.Name.StartsWith('.')) continue; // never a ref name
                if ((entry.Attributes & FileAttributes.Directory) != 0)
                {
                    if ((entry.Attributes & FileAttributes.ReparsePoint) == 0) subfolders.Add(entry.FullName); // never follow a linked folder
                    continue;
                }
                yield return Path.GetRelativePath(refsDirectory, entry.FullName).Replace('\\', '/');
            }
            for (var i = subfolders.Count - 1; i >= 0; i--) pending.Push(subfolders[i]);
        }
    }
}
