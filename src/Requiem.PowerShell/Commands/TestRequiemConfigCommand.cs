using System.Management.Automation;
using Requiem.Engine.Config;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Test-RequiemConfig: the Requiem CLI's <c>config validate</c>. Without a path it checks the config in effect — the
/// defaults when there is no config file. -Quiet returns only $true / $false and never writes an error.
/// </summary>
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
        // -Quiet answers only $true / $false: a file that cannot be found or read is a $false, never an error record.
        Action<ErrorRecord> onError = Quiet ? _ => WriteObject(false) : WriteError;
        List<string> files;
        if (ParameterSetName == LiteralPathSet) files = ResolveFileSystemPaths(LiteralPath, literal: true, onError);
        else if (Path is { Length: > 0 }) files = ResolveFileSystemPaths(Path, literal: false, onError);
        else if (!File.Exists(RequiemPaths.ConfigFile) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(RequiemPaths.ConfigVariable)))
        {
            // The contract: no config file means the defaults, and the defaults are a valid config.
            WriteVerbose($"No config file at '{RequiemPaths.ConfigFile}' and ${RequiemPaths.ConfigVariable} is not set: the defaults are in effect.");
            var defaults = ConfigValidator.Defaults(RequiemPaths.ConfigFile);
            WriteObject(Quiet ? defaults.Valid : defaults);
            return;
        }
        else files = new List<string> { RequiemPaths.ConfigFile };

        foreach (var file in files)
        {
            ConfigValidation report;
            try
            {
                report = ConfigValidator.Validate(file);
            }
            catch (Requiem.Engine.RequiemException ex)
            {
                var record = ToErrorRecord(ex);
                if (file == RequiemPaths.ConfigFile && ex.ErrorId == "ConfigNotFound" && Path is null && ParameterSetName == PathSet)
                    record = ToErrorRecord(new Requiem.Engine.RequiemException("ConfigNotFound", Requiem.Engine.ErrorKind.ObjectNotFound,
                        $"${RequiemPaths.ConfigVariable} names '{file}', which does not exist.", file, ex));
                onError(record);
                continue;
            }
            WriteVerbose($"Validated '{report.Path}': {report.Errors.Count} problem(s), {report.Warnings.Count} warning(s).");
            if (!Quiet) foreach (var w in report.Warnings) WriteWarning($"{report.Path}: {w}");
            WriteObject(Quiet ? report.Valid : report);
        }
    }
}
