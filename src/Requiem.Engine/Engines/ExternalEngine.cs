using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Config;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;

namespace Requiem.Engine.Engines;

/// <summary>What one run of the external engine gave back.</summary>
public sealed class ExternalEngineRun
{
    public required ExecResult Result { get; init; }
    public required int ExitCode { get; init; }
    /// <summary>The result's own result_digest matches its content as this module computes it.</summary>
    public required bool ResultDigestValid { get; init; }
}

/// <summary>
/// An engine that speaks the Requiem CLI's execution contract: <c>&lt;engine&gt; exec run --request &lt;file&gt; --out &lt;file&gt;</c>,
/// exit 0 (or 2, a finding) with the result JSON in the --out file. Any executable works (run directly; on Unix it needs
/// its execute bit); a <c>.ps1</c> script runs in pwsh. It inherits this process's environment and runs in a private
/// temporary folder that holds the request and result files and is removed afterwards.
/// </summary>
public sealed class ExternalEngine
{
    public const string PathVariable = "REQUIEM_EXTERNAL_ENGINE";
    public const string SourceParameter = "-EnginePath";
    public const string SourceVariable = "$env:" + PathVariable;
    public const string SourceConfig = "engine.external_path";

    /// <summary>The largest result document read back.</summary>
    public const int MaxResultBytes = 64 << 20;

    /// <summary>Time the engine gets beyond the request's own timeout (its start-up, hashing, writing the result).</summary>
    public static readonly TimeSpan StartupGrace = TimeSpan.FromSeconds(120);

    public ExternalEngine(string path, string source, string? pwshPath = null)
    {
        Path = path;
        Source = source;
        PwshPath = pwshPath;
    }

    /// <summary>The engine: a full path, or a bare command name looked up on PATH when it runs.</summary>
    public string Path { get; }
    /// <summary>Where the path came from (-EnginePath, $env:REQUIEM_EXTERNAL_ENGINE or engine.external_path).</summary>
    public string Source { get; }
    /// <summary>The pwsh that runs a .ps1 engine (null: pwsh on PATH).</summary>
    public string? PwshPath { get; }

    /// <summary>
    /// The engine in effect: <paramref name="explicitPath"/> (-EnginePath, already resolved by the caller), then
    /// <c>$REQUIEM_EXTERNAL_ENGINE</c>, then <c>engine.external_path</c>; null when none is set.
    /// </summary>
    public static ExternalEngine? Resolve(string? explicitPath, RequiemConfig config, string? pwshPath = null)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath)) return new ExternalEngine(Normalize(explicitPath), SourceParameter, pwshPath);
        var env = Environment.GetEnvironmentVariable(PathVariable);
        if (!string.IsNullOrWhiteSpace(env)) return new ExternalEngine(Normalize(env), SourceVariable, pwshPath);
        if (!string.IsNullOrWhiteSpace(config.Engine.ExternalPath))
            return new ExternalEngine(Normalize(config.Engine.ExternalPath), SourceConfig + (config.SourcePath is { } f ? $" in '{f}'" : ""), pwshPath);
        return null;
    }

    /// <summary>A bare name (no directory part) stays a name to look up on PATH; anything else becomes a full path.</summary>
    private static string Normalize(string path) =>
        path.IndexOfAny(new[] { '/', System.IO.Path.DirectorySeparatorChar }) < 0 ? path : System.IO.Path.GetFullPath(path);

    public override string ToString() => $"{Path} (from {Source})";

    /// <summary>The file that will run: the path itself, or the first match of a bare name on PATH; null when there is none.</summary>
    public string? Locate()
    {
        if (System.IO.Path.IsPathFullyQualified(Path)) return File.Exists(Path) ? Path : null;
        var exts = OperatingSystem.IsWindows()
            ? (Environment.GetEnvironmentVariable("PATHEXT") ?? ".COM;.EXE;.BAT;.CMD").Split(';', StringSplitOptions.RemoveEmptyEntries).Prepend("")
            : new[] { "" };
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var ext in exts)
            {
                var candidate = System.IO.Path.Combine(dir, Path + ext);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }

    /// <summary>
    /// Runs the engine on one request. Errors (typed, target = the engine path): ExternalEngineNotFound,
    /// ExternalEngineFailed (cannot start, exit code other than 0 or 2, did not finish in time),
    /// ExternalEngineOutputInvalid (no --out file, not JSON, not a result).
    /// </summary>
    public async Task<ExternalEngineRun> RunAsync(ExecRequest request, HashPrimitive hash, CancellationToken cancel)
    {
        var file = Locate() ?? throw new RequiemException("ExternalEngineNotFound", ErrorKind.ObjectNotFound,
            $"The external engine '{Path}' (from {Source}) does not exist" + (System.IO.Path.IsPathFullyQualified(Path) ? "." : " on PATH."), Path);
        var dir = Directory.CreateTempSubdirectory("requiem-engine-").FullName;
        try
        {
            var requestFile = System.IO.Path.Combine(dir, "request.json");
            var resultFile = System.IO.Path.Combine(dir, "result.json");
            await File.WriteAllTextAsync(requestFile, request.ToJson(indented: true) + "\n", new UTF8Encoding(false), cancel).ConfigureAwait(false);
            var (exitCode, stderr) = await RunProcessAsync(file, requestFile, resultFile, dir, TimeSpan.FromMilliseconds(request.TimeoutMs) + StartupGrace, cancel).ConfigureAwait(false);
            if (exitCode is not (0 or 2))
                throw new RequiemException("ExternalEngineFailed", ErrorKind.InvalidOperation,
                    $"The external engine '{Path}' exited with code {exitCode}" + (stderr.Length > 0 ? ": " + stderr : " and wrote nothing to stderr."), Path);
            return ReadResult(resultFile, exitCode, stderr, hash);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
    }

    private ExternalEngineRun ReadResult(string resultFile, int exitCode, string stderr, HashPrimitive hash)
    {
        var info = new FileInfo(resultFile);
        if (!info.Exists)
            throw Invalid($"exited with code {exitCode} without writing its result (--out)" + (stderr.Length > 0 ? ": " + stderr : "."));
        if (info.Length > MaxResultBytes)
            throw Invalid($"wrote a result of {info.Length} bytes; at most {MaxResultBytes} are read.");
        JsonObject document;
        try
        {
            var node = JsonNode.Parse(StrictTextFile(resultFile));
            // An -OutFile of several requests is an array; one request gives one result.
            if (node is JsonArray { Count: 1 } single) node = single[0];
            document = node as JsonObject ?? throw Invalid("wrote a result that is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw Invalid("wrote a result that is not valid JSON: " + ex.Message, ex);
        }
        ExecResult result;
        try
        {
            result = ExecResult.FromJsonNode(document, Path);
        }
        catch (RequiemException ex)
        {
            throw Invalid("wrote a document that is not an execution result: " + ex.Message, ex);
        }
        bool digestValid;
        try
        {
            digestValid = Replay.VerifyResultDigest(document, hash).ResultValid;
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or RequiemException)
        {
            digestValid = false;
        }
        return new ExternalEngineRun { Result = result, ExitCode = exitCode, ResultDigestValid = digestValid };
    }

    private string StrictTextFile(string path)
    {
        try
        {
            return Json.StrictText.ReadFile(path, "result file");
        }
        catch (RequiemException ex)
        {
            throw Invalid("wrote a result that is not UTF-8 text: " + ex.Message, ex);
        }
    }

    private RequiemException Invalid(string what, Exception? inner = null) =>
        new("ExternalEngineOutputInvalid", ErrorKind.InvalidData, $"The external engine '{Path}' {what}", Path, inner);

    private async Task<(int ExitCode, string StderrTail)> RunProcessAsync(string file, string requestFile, string resultFile, string workDir, TimeSpan timeout, CancellationToken cancel)
    {
        var psi = new ProcessStartInfo
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = workDir,
        };
        if (file.EndsWith(".ps1", StringComparison.OrdinalIgnoreCase))
        {
            psi.FileName = PwshPath ?? "pwsh";
            foreach (var a in new[] { "-NoProfile", "-NonInteractive", "-File", file }) psi.ArgumentList.Add(a);
        }
        else psi.FileName = file;
        foreach (var a in new[] { "exec", "run", "--request", requestFile, "--out", resultFile }) psi.ArgumentList.Add(a);

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException("no process was started");
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException)
        {
            var hint = !OperatingSystem.IsWindows() && ex is Win32Exception && !file.EndsWith(".ps1", StringComparison.OrdinalIgnoreCase)
                ? " (on Unix the engine needs its execute bit, and a script its #! line)" : "";
            throw new RequiemException("ExternalEngineFailed", ErrorKind.InvalidOperation,
                $"The external engine '{Path}' could not be started: {ex.Message}{hint}.", Path, ex);
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = DrainAsync(process.StandardOutput);
            var stderr = DrainAsync(process.StandardError);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            deadline.CancelAfter(timeout);
            try
            {
                await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                try { process.Kill(entireProcessTree: true); }
                catch (Exception ex) when (ex is InvalidOperationException or Win32Exception) { }
                cancel.ThrowIfCancellationRequested();
                throw new RequiemException("ExternalEngineFailed", ErrorKind.OperationStopped,
                    $"The external engine '{Path}' did not finish within {timeout.TotalSeconds:0} s (the request's timeout plus {StartupGrace.TotalSeconds:0} s) and was stopped.", Path);
            }
            // A grandchild the engine left running may hold the pipes open: its output is not waited for.
            await Task.WhenAny(Task.WhenAll(stdout, stderr), Task.Delay(TimeSpan.FromSeconds(5), cancel)).ConfigureAwait(false);
            return (process.ExitCode, stderr.IsCompletedSuccessfully ? stderr.Result.Trim() : "");
        }
    }

    /// <summary>Reads a stream to its end, keeping only the last few KiB (enough for an error message).</summary>
    private static async Task<string> DrainAsync(StreamReader reader)
    {
        const int keep = 4096;
        var tail = new StringBuilder();
        var buffer = new char[8192];
        int n;
        while ((n = await reader.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            tail.Append(buffer, 0, n);
            if (tail.Length > 2 * keep) tail.Remove(0, tail.Length - keep);
        }
        return tail.Length > keep ? "…" + tail.ToString(tail.Length - keep, keep) : tail.ToString();
    }
}
