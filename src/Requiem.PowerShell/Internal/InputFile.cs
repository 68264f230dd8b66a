using Requiem.Engine;

namespace Requiem.PowerShell.Internal;

/// <summary>Reads a JSON/text input file named by the user, with the same error ids for every cmdlet.</summary>
internal static class InputFile
{
    /// <summary>
    /// The whole file as text. FileNotFound (missing), PathIsDirectory (a folder), FileReadError (anything else;
    /// ErrorKind PermissionDenied when access is refused), InvalidJson (not valid UTF-8), each with the path as target.
    /// </summary>
    /// <param name="what">What the file is, for the message: "Bench spec", "Request file", "result file"...</param>
    public static string ReadAllText(string path, string what, string? notFoundHint = null)
    {
        try
        {
            if (Directory.Exists(path))
                throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"{what} '{path}' is a directory, not a file.", path);
            return Requiem.Engine.Json.StrictText.ReadFile(path, what.ToLowerInvariant());
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"{what} '{path}' does not exist{notFoundHint}.", path, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileReadError", ex is UnauthorizedAccessException ? ErrorKind.PermissionDenied : ErrorKind.ReadError,
                $"Cannot read {what.ToLowerInvariant()} '{path}': {ex.Message}", path, ex);
        }
    }
}
