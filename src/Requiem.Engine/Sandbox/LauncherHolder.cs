using System.Diagnostics;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// A requiem-launch holder (<c>--hold-netns</c>, <c>--hold-view</c>): started with its standard streams on pipes; it
/// reports on stdout, ends with "ready", and keeps what it made until its stdin reaches EOF.
/// </summary>
internal static class LauncherHolder
{
    /// <summary>How long a holder has to report ready.</summary>
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(5);

    public static Process Start(string launcher, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(launcher)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new IOException("the holder did not start");
    }

    /// <summary>The holder's next stdout line, or null when it ended its output or <paramref name="deadline"/> passed first.</summary>
    public static string? ReadLine(Process holder, DateTime deadline)
    {
        var line = holder.StandardOutput.ReadLineAsync();
        var left = deadline - DateTime.UtcNow;
        return line.Wait(left > TimeSpan.Zero ? left : TimeSpan.Zero) ? line.Result : null;
    }
}
