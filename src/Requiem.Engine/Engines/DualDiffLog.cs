using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Cas;

namespace Requiem.Engine.Engines;

/// <summary>One line of the dual-run diff log: a request on which the two engines disagreed, or the external engine failed.</summary>
public sealed class DualDiffEntry
{
    public required DateTimeOffset Time { get; init; }
    public required string Status { get; init; }
    public required string RequestDigest { get; init; }
    public string? Command { get; init; }
    public string? ExternalEngine { get; init; }
    public int? ExternalExitCode { get; init; }
    public string? RequiemResultDigest { get; init; }
    public string? ExternalResultDigest { get; init; }
    public string? ErrorId { get; init; }
    public string? Message { get; init; }
    public DualRunDifference[] Differences { get; init; } = Array.Empty<DualRunDifference>();
    public string? HostName { get; init; }
    public int? ProcessId { get; init; }
    /// <summary>The log file and 1-based line this entry was read from.</summary>
    public string? Path { get; init; }
    public long Line { get; init; }

    public JsonObject ToJsonNode() => new()
    {
        ["time"] = Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture),
        ["status"] = Status,
        ["request_digest"] = RequestDigest,
        ["command"] = Command,
        ["external_engine"] = ExternalEngine,
        ["external_exit_code"] = ExternalExitCode,
        ["requiem_result_digest"] = RequiemResultDigest,
        ["external_result_digest"] = ExternalResultDigest,
        ["error_id"] = ErrorId,
        ["message"] = Message,
        ["differences"] = new JsonArray(Differences.Select(d => (JsonNode?)d.ToJsonNode()).ToArray()),
        ["host"] = HostName,
        ["pid"] = ProcessId,
    };

    public static DualDiffEntry FromJsonNode(JsonObject o, string? path = null, long line = 0) => new()
    {
        Time = DateTimeOffset.Parse(o["time"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal),
        Status = o["status"]!.GetValue<string>(),
        RequestDigest = o["request_digest"]!.GetValue<string>(),
        Command = o["command"]?.GetValue<string>(),
        ExternalEngine = o["external_engine"]?.GetValue<string>(),
        ExternalExitCode = o["external_exit_code"]?.GetValue<int>(),
        RequiemResultDigest = o["requiem_result_digest"]?.GetValue<string>(),
        ExternalResultDigest = o["external_result_digest"]?.GetValue<string>(),
        ErrorId = o["error_id"]?.GetValue<string>(),
        Message = o["message"]?.GetValue<string>(),
        Differences = (o["differences"] as JsonArray ?? new JsonArray()).Where(d => d is not null).Select(d => DualRunDifference.FromJsonNode(d!)).ToArray(),
        HostName = o["host"]?.GetValue<string>(),
        ProcessId = o["pid"]?.GetValue<int>(),
        Path = path,
        Line = line,
    };
}

/// <summary>
/// The store's dual-run diff log, <c>&lt;store&gt;/dual/diffs.jsonl</c>: one JSON object per line, appended by every
/// process that runs <c>-Engine dual</c>. Each line is one write(2) on a descriptor opened with O_APPEND (on Windows,
/// under an exclusive open), so lines from concurrent processes never interleave. Readable with <c>jq</c>.
/// </summary>
public static partial class DualDiffLog
{
    public const string DirectoryName = "dual";
    public const string FileName = "diffs.jsonl";

    public static string PathFor(CasStore store) => PathFor(store.Root);

    public static string PathFor(string storeRoot) => System.IO.Path.Combine(storeRoot, DirectoryName, FileName);

    /// <summary>Appends one entry as one line. Failures are <c>DualDiffLogWriteFailed</c> (the caller decides whether that matters).</summary>
    public static void Append(string storeRoot, DualDiffEntry entry)
    {
        var path = PathFor(storeRoot);
        var line = Encoding.UTF8.GetBytes(entry.ToJsonNode().ToJsonString(Json.JsonContract.Options) + "\n");
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
            if (OperatingSystem.IsWindows()) AppendExclusive(path, line);
            else AppendPosix(path, line);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("DualDiffLogWriteFailed", ErrorKind.WriteError, $"Cannot append to the dual-run diff log '{path}': {ex.Message}", path, ex);
        }
    }

    /// <summary>
    /// Reads the log in order. A line that is not a valid entry (e.g. cut short by a full disk) is skipped and reported
    /// through <paramref name="onInvalid"/> with its line number.
    /// </summary>
    public static IEnumerable<DualDiffEntry> Read(string path, Action<long, string>? onInvalid = null)
    {
        if (!File.Exists(path)) yield break;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream, new UTF8Encoding(false, false));
        long number = 0;
        string? text;
        while ((text = reader.ReadLine()) is not null)
        {
            number++;
            if (text.Length == 0) continue;
            DualDiffEntry? entry = null;
            string? problem = null;
            try
            {
                if (JsonNode.Parse(text) is JsonObject o) entry = DualDiffEntry.FromJsonNode(o, path, number);
                else problem = "not a JSON object";
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or NullReferenceException)
            {
                problem = ex.Message;
            }
            if (entry is not null) yield return entry;
            else onInvalid?.Invoke(number, problem ?? "not an entry");
        }
    }

    private const int O_WRONLY = 1;
    private static int AppendFlags => OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()
        ? O_WRONLY | 0x200 /* O_CREAT */ | 0x8 /* O_APPEND */ | 0x1000000 /* O_CLOEXEC */
        : O_WRONLY | 0x40 /* O_CREAT */ | 0x400 /* O_APPEND */ | 0x80000 /* O_CLOEXEC */;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    private static unsafe void AppendPosix(string path, byte[] line)
    {
        var fd = Open(path, AppendFlags, Convert.ToInt32("644", 8));
        if (fd < 0) throw new IOException($"open failed (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            fixed (byte* p = line)
            {
                nint done = 0;
                while (done < line.Length)
                {
                    var n = Write(fd, p + done, line.Length - done);
                    if (n < 0)
                    {
                        const int EINTR = 4;
                        if (Marshal.GetLastPInvokeError() == EINTR) continue;
                        throw new IOException($"write failed (errno {Marshal.GetLastPInvokeError()})");
                    }
                    done += n;
                }
            }
        }
        finally
        {
            Close(fd);
        }
    }

    /// <summary>Windows: a writer opens the file shared for reading only, so a second writer waits for the first.</summary>
    private static void AppendExclusive(string path, byte[] line)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
                stream.Write(line);
                return;
            }
            catch (IOException) when (DateTime.UtcNow < deadline && File.Exists(path))
            {
                Thread.Sleep(Random.Shared.Next(1, 10));
            }
        }
    }
}
