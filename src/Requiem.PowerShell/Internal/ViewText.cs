using System.Text;
using Requiem.Engine.Execution;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Cell text for the default views in Formats/*.format.ps1xml. The views are laid out for 80 columns: a long path
/// keeps its end (the file name) rather than its start, and free text is wrapped at word boundaries, because the
/// table itself would cut a path's file name off and split words across lines.
/// </summary>
public static class ViewText
{
    /// <summary>
    /// The path relative to <paramref name="currentDirectory"/> when it lies below it, else the full path; longer than
    /// <paramref name="width"/>, its start is replaced by "…". Null or empty gives <paramref name="missing"/>.
    /// </summary>
    public static string Path(string? path, string? currentDirectory, int width, string missing = "")
    {
        if (string.IsNullOrEmpty(path)) return missing;
        var shown = path;
        if (!string.IsNullOrEmpty(currentDirectory) && System.IO.Path.IsPathRooted(path))
        {
            var relative = System.IO.Path.GetRelativePath(currentDirectory, path);
            if (relative != "." && !relative.StartsWith("..", StringComparison.Ordinal) && !System.IO.Path.IsPathRooted(relative))
                shown = relative;
        }
        return KeepEnd(shown, width);
    }

    /// <summary>The request's command line as a user would type it: program name, then arguments (quoted when needed).</summary>
    public static string Command(ExecRequest? request)
    {
        if (request is null) return "";
        var text = new StringBuilder(System.IO.Path.IsPathRooted(request.Command) ? System.IO.Path.GetFileName(request.Command) : request.Command);
        foreach (var arg in request.Argv) text.Append(' ').Append(Quote(arg));
        return text.ToString();
    }

    /// <summary>The command of the first result that has its request (an exec result, or either side of a replay).</summary>
    public static string Command(ExecResult? first, ExecResult? second) => Command(first?.Request ?? second?.Request);

    /// <summary>Text wrapped at word boundaries into lines of at most <paramref name="width"/> characters.</summary>
    public static string Wrap(string? text, int width)
    {
        if (string.IsNullOrEmpty(text)) return "";
        var lines = new List<string>();
        foreach (var paragraph in text.Replace("\r\n", "\n").Split('\n'))
        {
            var line = new StringBuilder();
            foreach (var word in paragraph.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (line.Length > 0 && line.Length + 1 + word.Length > width)
                {
                    lines.Add(line.ToString());
                    line.Clear();
                }
                if (line.Length > 0) line.Append(' ');
                line.Append(word);
            }
            lines.Add(line.ToString());
        }
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>The text cut after a word to fit <paramref name="width"/> characters, "…" marking the cut.</summary>
    public static string Shorten(string? text, int width)
    {
        if (string.IsNullOrEmpty(text) || text.Length <= width) return text ?? "";
        var cut = text.LastIndexOf(' ', Math.Max(0, width - 2));
        return (cut > 0 ? text[..cut] : text[..(width - 1)]).TrimEnd(' ', ',', ';', ':', '—') + "…";
    }

    private static string KeepEnd(string text, int width) =>
        width > 1 && text.Length > width ? "…" + text.Substring(text.Length - (width - 1)) : text;

    private static string Quote(string arg) =>
        arg.Length > 0 && !arg.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"' or '`' or '$' or ';' or '&' or '|')
            ? arg
            : "'" + arg.Replace("'", "''") + "'";
}
