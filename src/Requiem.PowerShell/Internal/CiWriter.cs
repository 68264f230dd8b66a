using System.Management.Automation;
using System.Text;
using Requiem.Engine;
using Requiem.Engine.Bench;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Writes a CI report through the host (like Write-Host: the information stream tagged PSHOST, which a CI
/// runner sees on stdout) and the step-summary file — never through the output (pipeline) stream.
/// </summary>
internal static class CiWriter
{
    /// <summary>Returns the provider that was written for (None when not in CI and none was forced).</summary>
    public static CiProvider Write(PSCmdlet cmdlet, object input, CiProvider provider, string? summaryPath)
    {
        if (provider == CiProvider.Auto) provider = CiReporter.Detect(Environment.GetEnvironmentVariable);
        if (provider == CiProvider.None)
        {
            cmdlet.WriteVerbose("Not running under GitHub Actions (GITHUB_ACTIONS=true) or Azure DevOps (TF_BUILD=True): no CI report written.");
            return provider;
        }
        var output = CiReporter.Format(input, provider);
        foreach (var line in output.LogLines) Host(cmdlet, line);
        switch (provider)
        {
            case CiProvider.GitHub:
            {
                var path = summaryPath ?? Environment.GetEnvironmentVariable("GITHUB_STEP_SUMMARY");
                if (string.IsNullOrEmpty(path))
                    cmdlet.WriteVerbose("GITHUB_STEP_SUMMARY is not set: annotations written, no step summary.");
                else
                    Append(path, output.Markdown + "\n");
                break;
            }
            case CiProvider.AzureDevOps:
            {
                var path = summaryPath ?? Path.Combine(Environment.GetEnvironmentVariable("AGENT_TEMPDIRECTORY") ?? Path.GetTempPath(),
                    $"requiem-summary-{Guid.NewGuid():n}.md");
                Append(path, output.Markdown + "\n");
                Host(cmdlet, $"##vso[task.uploadsummary]{path}");
                break;
            }
        }
        return provider;
    }

    /// <summary>
    /// Appends the outcome of <paramref name="inputs"/> to the file named by GITHUB_OUTPUT, when it is set. A later
    /// block for the same names overrides an earlier one. <paramref name="cmdlet"/> is null when called from Dispose,
    /// where nothing may be written to a PowerShell stream.
    /// </summary>
    public static void WriteStepOutputs(PSCmdlet? cmdlet, IEnumerable<object> inputs)
    {
        var path = Environment.GetEnvironmentVariable("GITHUB_OUTPUT");
        if (string.IsNullOrEmpty(path)) return;
        var outputs = CiReporter.Outcome(inputs);
        if (outputs.Count == 0) return;
        Append(path, CiReporter.FormatGitHubOutput(outputs));
        cmdlet?.WriteVerbose($"Step outputs written to {path}: {string.Join(", ", outputs.Select(o => o.Key + "=" + o.Value))}");
    }

    private static void Host(PSCmdlet cmdlet, string line) =>
        cmdlet.WriteInformation(new HostInformationMessage { Message = line, NoNewLine = false }, new[] { "PSHOST" });

    private static void Append(string path, string text)
    {
        try
        {
            File.AppendAllText(path, text, new UTF8Encoding(false));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileWriteError", ErrorKind.WriteError, $"Cannot write the CI file '{path}': {ex.Message}", path, ex);
        }
    }
}

/// <summary>
/// The step outputs of a cmdlet that sees many piped reports: written once, when the cmdlet ends, before a gate's
/// terminating error, or (when an error stopped the pipeline) at dispose — not once per report, which made a long
/// pipeline append its growing outcome again and again.
/// </summary>
internal sealed class StepOutputs
{
    private readonly List<object> _inputs = new();
    private bool _pending;

    public void Add(object input)
    {
        _inputs.Add(input);
        _pending = true;
    }

    public void Flush(PSCmdlet cmdlet)
    {
        if (!_pending) return;
        _pending = false;
        CiWriter.WriteStepOutputs(cmdlet, _inputs);
    }

    /// <summary>From Dispose: nothing may reach a PowerShell stream there, and a write error cannot be reported.</summary>
    public void FlushAtDispose()
    {
        if (!_pending) return;
        _pending = false;
        try { CiWriter.WriteStepOutputs(null, _inputs); }
        catch (RequiemException) { }
    }
}
