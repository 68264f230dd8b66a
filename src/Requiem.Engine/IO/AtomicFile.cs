using System.Text;

namespace Requiem.Engine.IO;

/// <summary>
/// Writes a whole file so that readers see the old content or the new, never a part: a temp file beside the
/// destination, flushed to disk, then renamed over it. Every -OutFile of the module goes through here.
/// </summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text, string errorId = "FileWriteError") =>
        WriteAllBytes(path, new UTF8Encoding(false).GetBytes(text), errorId);

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, string errorId = "FileWriteError")
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        var tmp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("n") + ".tmp");
        try
        {
            if (Directory.Exists(full))
                throw new RequiemException("PathIsDirectory", ErrorKind.InvalidArgument, $"'{full}' is a directory; give a file name.", full);
            Directory.CreateDirectory(dir);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new RequiemException(errorId, ErrorKind.WriteError, $"Cannot write '{full}': {ex.Message}", full, ex);
        }
    }
}
