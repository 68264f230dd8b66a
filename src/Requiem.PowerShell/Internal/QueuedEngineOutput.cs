using System.Collections.Concurrent;
using System.Management.Automation;
using Requiem.Engine.Diagnostics;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Collects engine messages raised on worker threads (PowerShell refuses writes from any thread but the pipeline's);
/// the cmdlet replays them with <see cref="WriteTo"/> on the pipeline thread.
/// </summary>
internal sealed class QueuedEngineOutput : IEngineOutput
{
    private readonly ConcurrentQueue<(char Kind, string Text)> _messages = new();

    public void Progress(ProgressInfo progress) { }
    public void Verbose(string message) => _messages.Enqueue(('V', message));
    public void Warning(string message) => _messages.Enqueue(('W', message));

    public void WriteTo(Cmdlet cmdlet)
    {
        while (_messages.TryDequeue(out var m))
        {
            if (m.Kind == 'W') cmdlet.WriteWarning(m.Text); else cmdlet.WriteVerbose(m.Text);
        }
    }
}
