using System.Text;
using Requiem.Engine.Execution;
using Requiem.Engine.Hashing;
using Requiem.Engine.Metrics;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.ActionCache;

/// <summary>
/// Runs a request through the action cache: compute the key, answer from a matching entry (nothing runs; outputs
/// restored and verified), or run it and — in <see cref="ActionCacheMode.ReadWrite"/> — record a cacheable result.
/// </summary>
public static class ActionCacheRunner
{
    public static async Task<ExecResult> RunAsync(ExecRequest request, ExecOptions options, ActionCacheMode mode, TimeSpan maxAge, CancellationToken cancel = default)
    {
        if (mode == ActionCacheMode.Off) return await ExecRunner.RunAsync(request, options, cancel).ConfigureAwait(false);
        var output = options.Output;
        var cache = new ActionCacheStore(options.Store, maxAge);
        var hash = options.Store.HashPrimitive;

        // The plan resolves the command and the inputs exactly as the run will (and throws the same typed errors).
        var plan = ExecPlan.Create(request, options.Probe ?? SandboxProbe.Current);
        var components = ComputeComponents(plan, hash, cancel);
        string? key = null;
        if (components is null)
        {
            output.Verbose($"action cache: '{plan.CommandPath}' could not be read, so no key can cover the command binary; running without the cache.");
        }
        else
        {
            key = components.ComputeKey(hash);
            output.Verbose($"action cache: key {key} over {components.Describe(plan.CommandPath)}.");
            if (TryHit(cache, key, request, plan, options, cancel) is { } hit)
            {
                MetricsRegistry.Add(Counter.ActionCacheHits);
                return hit;
            }
            MetricsRegistry.Add(Counter.ActionCacheMisses);
        }

        var result = await ExecRunner.RunAsync(request, options, cancel).ConfigureAwait(false);
        result.CacheKey = key;
        if (mode != ActionCacheMode.ReadWrite)
        {
            output.Verbose("action cache: the result was not written (-Cache Read).");
            return result;
        }
        if (WhyNotCacheable(result) is { } reason)
        {
            output.Verbose($"action cache: the result was not cached: {reason}.");
            return result;
        }
        // The key is recomputed from what the run itself recorded (inputs hashed right before it started, the binary
        // it ran), so an input changed between the lookup and the run cannot be stored under the old inputs' key.
        var recorded = ActionCacheKeyComponents.FromResult(result)!;
        var writeKey = recorded.ComputeKey(hash);
        if (writeKey != key) output.Verbose($"action cache: an input or the command changed during the run; the result is stored under {writeKey}.");
        try
        {
            cache.Put(new ActionCacheEntry
            {
                Key = writeKey,
                CreatedAt = DateTime.UtcNow,
                Command = request.Command,
                CommandPath = plan.CommandPath,
                Components = recorded,
                RequestBlobDigest = result.RequestBlobDigest,
                ManifestDigest = result.ManifestDigest,
                StdoutDigest = result.StdoutDigest,
                StderrDigest = result.StderrDigest,
                OutputFiles = result.OutputFiles.Select(f => new ActionCacheOutputFile
                {
                    Path = f.Path, Digest = f.Digest, Bytes = f.Bytes, Executable = IsExecutable(Path.Combine(plan.WorkspaceRoot, f.Path)),
                }).ToArray(),
                ResultDocument = result.ToJsonNode(),
            });
            MetricsRegistry.Add(Counter.ActionCacheWrites);
            Audit.AuditLog.Append(options.Store, Audit.AuditActions.CacheWritten, new[] { writeKey, result.ResultDigest });
            result.CacheKey = writeKey;
            output.Verbose($"action cache: the result was written under {writeKey}.");
        }
        catch (RequiemException ex)
        {
            // The run itself succeeded and is recorded in the CAS; only the shortcut for next time is lost.
            output.Warning($"The result could not be written to the action cache: {ex.Message}");
        }
        return result;
    }

    /// <summary>
    /// Why a result must not be reused, or null when it may be: only a run that exited 0 with confidence <c>high</c>
    /// (hermetic file system, network denied, nothing stochastic, every control enforced) is cached.
    /// </summary>
    public static string? WhyNotCacheable(ExecResult result)
    {
        if (result.TimedOut) return "the command timed out";
        if (result.Signal is not null) return $"the command was killed by {result.Signal}";
        if (result.ExitCode != 0) return $"the command exited with code {result.ExitCode} (only exit code 0 is cached)";
        if (result.DeterminismConfidence.Level != "high")
        {
            var reasons = result.DeterminismConfidence.Reasons;
            return $"determinism confidence is {result.DeterminismConfidence.Level}, not high (only hermetic runs with the network denied and nothing stochastic are cached)"
                   + (reasons.Length > 0 ? ": " + string.Join("; ", reasons) : "");
        }
        if (result.CommandDigest is null) return "the command binary could not be read, so no key covers it";
        return null;
    }

    /// <summary>The key components of a request resolved on this machine; null when the command binary cannot be digested.</summary>
    public static ActionCacheKeyComponents? ComputeComponents(ExecPlan plan, HashPrimitive hash, CancellationToken cancel)
    {
        var commandDigest = CommandDigests.Of(plan.CommandPath, hash, cancel);
        if (commandDigest is null) return null;
        return new ActionCacheKeyComponents
        {
            HashAlgorithm = hash.Algorithm,
            RequestDigest = plan.Request.ComputeDigest(hash),
            Inputs = plan.Inputs.Select(i => new InputFileDigest { Path = i.Relative, Digest = hash.HashFile(i.Full, HashDomain.Cas, cancel).Hash }).ToArray(),
            CommandDigest = commandDigest,
            Platform = ActionCachePlatform.Current,
        };
    }

    private static ExecResult? TryHit(ActionCacheStore cache, string key, ExecRequest request, ExecPlan plan, ExecOptions options, CancellationToken cancel)
    {
        var output = options.Output;
        ActionCacheEntry? entry;
        try
        {
            entry = cache.TryGet(key);
        }
        catch (RequiemException ex)
        {
            output.Warning($"action cache: {ex.Message} It was not used; the command runs.");
            return null;
        }
        if (entry is null)
        {
            output.Verbose($"action cache: miss, no entry for key {key}; Get-RequiemCacheEntry -Request explains which component differs from the closest entry.");
            return null;
        }
        if (entry.Expired)
        {
            output.Verbose($"action cache: miss, the entry for key {key} expired at {entry.ExpiresAt:u} (cache.max_age_days); the command runs.");
            return null;
        }
        var store = cache.Store;
        ExecResult result;
        try
        {
            result = entry.ToResult();
            // With a remote store, everything the hit needs comes down at once rather than one object per read.
            store.Prefetch(entry.OutputFiles.Select(f => f.Digest).Append(entry.StdoutDigest).Append(entry.StderrDigest), cancel);
            // Every object the hit hands out is re-hashed first: stdout and stderr here, output files while restoring.
            var stdout = ReadVerified(store, entry.StdoutDigest, options.IncludeOutput, request.MaxOutputBytes, key, cancel);
            var stderr = ReadVerified(store, entry.StderrDigest, options.IncludeOutput, request.MaxOutputBytes, key, cancel);
            ActionCacheRestore.Restore(store, plan.WorkspaceRoot, request.Outputs, entry.OutputFiles, cancel);
            if (options.IncludeOutput)
            {
                result.StdoutText = Encoding.UTF8.GetString(stdout!);
                result.StderrText = Encoding.UTF8.GetString(stderr!);
            }
        }
        catch (RequiemException ex)
        {
            output.Warning($"action cache: the entry for key {key} was not used: {ex.Message} The command runs instead.");
            return null;
        }
        result.Request = request;
        result.CasRoot = store.Root;
        result.ManifestDigest = entry.ManifestDigest is { } m && store.Contains(m) ? m : null;
        result.CacheHit = true;
        result.CacheKey = key;
        output.Verbose($"action cache: hit, key {key} (recorded {entry.CreatedAt:u}, ran {result.DurationMs} ms then); nothing ran, {entry.OutputFiles.Count} output file(s) restored and verified.");
        return result;
    }

    /// <summary>
    /// Re-hashes the object; its bytes only when they are wanted. A run captures at most the request's max_output_bytes
    /// of each stream, so an entry naming a larger object (a forged entry in a shared store) is refused before anything
    /// is read into memory.
    /// </summary>
    internal static byte[]? ReadVerified(Cas.CasStore store, string digest, bool keep, long maxOutputBytes, string key, CancellationToken cancel)
    {
        if (keep)
        {
            var size = store.GetInfo(digest, verify: false, cancel).Size;
            if (size < 0 || size > maxOutputBytes)
                throw new RequiemException("InvalidCacheEntry", ErrorKind.InvalidData,
                    $"The action-cache entry {key} is not usable: its output object {digest} holds {size} bytes, more than the request's max_output_bytes ({maxOutputBytes}).", key);
            return store.ReadAllBytes(digest, cancel);
        }
        store.CopyTo(digest, Stream.Null, cancel);
        return null;
    }

    private static bool IsExecutable(string path)
    {
        if (OperatingSystem.IsWindows()) return false;
        try
        {
            return (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
