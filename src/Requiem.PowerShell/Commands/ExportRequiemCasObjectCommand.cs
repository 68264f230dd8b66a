using System.Management.Automation;
using System.Text;
using Requiem.Engine;
using Requiem.Engine.Cas;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>
/// Export-RequiemCasObject: writes an object's verified bytes to a file (temp file beside the destination, verify,
/// flush, rename: never a partial or unverified destination), or to the pipeline as bytes (-AsByteStream) or text (-Raw).
/// </summary>
[Cmdlet(VerbsData.Export, "RequiemCasObject", DefaultParameterSetName = DestinationSet, SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo), ParameterSetName = new[] { DestinationSet })]
[OutputType(typeof(byte[]), ParameterSetName = new[] { ByteStreamSet })]
[OutputType(typeof(string), ParameterSetName = new[] { RawSet })]
public sealed class ExportRequiemCasObjectCommand : RequiemStoreCmdlet
{
    private const string DestinationSet = "Destination";
    private const string ByteStreamSet = "AsByteStream";
    private const string RawSet = "Raw";
    private const string TempMarker = ".requiem-tmp";

    private CasStore? _store;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CasHashCompleter))]
    [ValidateNotNullOrEmpty]
    public string Hash { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ParameterSetName = DestinationSet)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ByteStreamSet)]
    public SwitchParameter AsByteStream { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = RawSet)]
    public SwitchParameter Raw { get; set; }

    [Parameter(ParameterSetName = DestinationSet)]
    public SwitchParameter NoClobber { get; set; }

    [Parameter(ParameterSetName = DestinationSet)]
    public SwitchParameter PassThru { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Cas { get; set; }

    /// <summary>Files this invocation wrote, with the object each holds (a second object must not replace the first).</summary>
    private readonly Dictionary<string, string> _written = new(StringComparer.Ordinal);

    protected override void BeginProcessing() => _store = OpenStore(Cas, create: false);

    protected override void ProcessRecord()
    {
        var store = _store!;
        var hash = TryRun(() => store.ResolveHash(Hash));
        if (hash is null) return;

        if (ParameterSetName != DestinationSet)
        {
            var bytes = TryRun(() => store.ReadAllBytes(hash, CancellationToken));
            if (bytes is null) return;
            if (AsByteStream) WriteObject(bytes, enumerateCollection: false);
            else
            {
                using var reader = new StreamReader(new MemoryStream(bytes), new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true);
                WriteObject(reader.ReadToEnd());
            }
            return;
        }

        var destination = ResolveNewPath(Destination);
        // A folder receives each object under its full hash, so many piped hashes can share one -Destination.
        if (Directory.Exists(destination)) destination = System.IO.Path.Combine(destination, hash);
        if (_written.TryGetValue(destination, out var earlier) && earlier != hash)
        {
            WriteError(RequiemCmdlet.ToErrorRecord(new RequiemException("DestinationReused", ErrorKind.InvalidArgument,
                $"Object {hash} would overwrite object {earlier} exported to '{destination}' by this command; give a folder as -Destination to keep each.", hash)));
            return;
        }
        if (Directory.Exists(destination))
        {
            WriteError(RequiemCmdlet.ToErrorRecord(new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument,
                $"The destination '{destination}' is a directory.", Destination)));
            return;
        }
        var dir = System.IO.Path.GetDirectoryName(destination);
        if (dir is null || !Directory.Exists(dir))
        {
            WriteError(RequiemCmdlet.ToErrorRecord(new RequiemException("DirectoryNotFound", ErrorKind.ObjectNotFound,
                $"The folder of the destination '{destination}' does not exist.", Destination)));
            return;
        }
        if (NoClobber && File.Exists(destination))
        {
            WriteError(RequiemCmdlet.ToErrorRecord(new RequiemException("DestinationExists", ErrorKind.ResourceExists,
                $"The destination '{destination}' exists and -NoClobber was given.", Destination)));
            return;
        }
        if (!ShouldProcess(destination, $"Export CAS object {hash}")) return;

        var tmp = System.IO.Path.Combine(dir, "." + System.IO.Path.GetFileName(destination) + "." + Guid.NewGuid().ToString("n")[..12] + TempMarker);
        var done = false;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                store.CopyTo(hash, fs, CancellationToken); // verifies; throws CasObjectCorrupt before anything is renamed
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, destination, overwrite: !NoClobber);
            done = true;
            _written[destination] = hash;
            if (PassThru) WriteObject(new FileInfo(destination));
        }
        catch (RequiemException ex)
        {
            WriteError(RequiemCmdlet.ToErrorRecord(ex));
        }
        catch (OperationCanceledException) when (CancellationToken.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var full = ex is IOException io && ((io.HResult & 0xFFFF) is 28 or 112 || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase));
            var id = full ? "DiskFull" : NoClobber && File.Exists(destination) ? "DestinationExists" : "ExportWriteError";
            WriteError(RequiemCmdlet.ToErrorRecord(new RequiemException(id, full ? ErrorKind.ResourceUnavailable : ErrorKind.WriteError,
                $"Cannot write '{destination}': {ex.Message}", Destination, ex)));
        }
        finally
        {
            if (!done) { try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { } }
        }
    }
}
