using System.Management.Automation;
using Requiem.Engine.Config;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Test-RequiemConfig: the Requiem CLI's <c>config validate</c>.</summary>
[Cmdlet(VerbsDiagnostic.Test, "RequiemConfig", DefaultParameterSetName = PathSet)]
[OutputType(typeof(ConfigValidation), typeof(bool))]
public sealed class TestRequiemConfigCommand : RequiemCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>Config files to validate; defaults to the config in effect ($env:REQUIEM_CONFIG or the data directory's config.json).</summary>
    [Parameter(Position = 0, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Path { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>Return only $true or $false.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void ProcessRecord()
    {
        List<string> files;
        if (ParameterSetName == LiteralPathSet) files = ResolveFileSystemPaths(LiteralPath, literal: true);
        else if (Path is { Length: > 0 }) files = ResolveFileSystemPaths(Path, literal: false);
        else files = new List<string> { RequiemPaths.ConfigFile };

        foreach (var file in files)
        {
            var report = TryRun(() => ConfigValidator.Validate(file));
            if (report is null)
            {
                if (Quiet) WriteObject(false);
                continue;
            }
            foreach (var w in report.Warnings) WriteWarning($"{report.Path}: {w}");
            WriteObject(Quiet ? report.Valid : report);
        }
    }
}
