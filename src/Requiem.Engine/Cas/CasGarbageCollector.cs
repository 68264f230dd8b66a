using System.Diagnostics;
using Requiem.Engine.Diagnostics;

namespace Requiem.Engine.Cas;

/// <summary>Options of <see cref="CasStore.CollectGarbage"/>.</summary>
public sealed class CasGcOptions
{
    /// <summary>Default grace period: 14 days, like git's <c>gc.pruneExpire</c> ("2.weeks.ago").</summary>
    public static readonly TimeSpan DefaultGracePeriod = TimeSpan.FromDays(14);

    /// <summary>Nothing modified more recently than this is removed (objects or temp files).</summary>
    public TimeSpan GracePeriod { get; init; } = DefaultGracePeriod;
    /// <summary>Asked once per removal candidate right before it is deleted; false keeps it (WhatIf / Confirm).</summary>
    public Func<CasGcItem, bool>? ShouldRemove { get; init; }
    /// <summary>Report what would be removed without removing anything (ShouldRemove is still called, its answer ignored).</summary>
    public bool DryRun { get; init; }
    public IEngineOutput? Output { get; init; }
    public CancellationToken Cancel { get; init; }
}

/// <summary>One object or temp file that GC removed, or would remove.</summary>
public sealed class CasGcItem
{
    /// <summary><c>Object</c> or <c>TempFile</c>.</summary>
    public required string Kind { get; init; }
    /// <summary>The object's hash (null for temp files).</summary>
    public string? Hash { get; init; }
    public required string Path { get; init; }
    public required long StoredSize { get; init; }
    public required DateTime LastWriteTimeUtc { get; init; }
    public required TimeSpan Age { get; init; }
    /// <summary>True when the file was deleted; false in a dry run or when declined.</summary>
    public bool Removed { get; set; }
}

/// <summary>The result of <c>Optimize-RequiemCas</c>.</summary>
public sealed class CasGcReport
{
    public required string Root { get; init; }
    public required TimeSpan GracePeriod { get; init; }
    public required bool DryRun { get; init; }
    /// <summary>Refs read (the named roots).</summary>
    public required int RefCount { get; init; }
    /// <summary>Distinct objects reachable from refs, recursively through manifests (and from young manifests).</summary>
    public required int Reachable { get; init; }
    /// <summary>Object files younger than the grace period (always kept, referenced or not).</summary>
    public required int KeptYoung { get; init; }
    /// <summary>Object files scanned.</summary>
    public required int Scanned { get; init; }
    /// <summary>Candidates: unreferenced object files and temp files older than the grace period.</summary>
    public required IReadOnlyList<CasGcItem> Candidates { get; init; }
    public int RemovedCount => Candidates.Count(c => c.Removed);
    /// <summary>Bytes freed (or, in a dry run, that would be freed).</summary>
    public long BytesFreed => Candidates.Where(c => c.Removed || DryRun).Sum(c => c.StoredSize);
    /// <summary>Digests named by refs or reachable manifests that are not in the store.</summary>
    public required IReadOnlyList<CasMissingObject> Missing { get; init; }
    public required TimeSpan Duration { get; init; }
}

public sealed partial class CasStore
{
    /// <summary>Manifests above this size are still followed, but only objects up to it are verified during marking.</summary>
    private const long VerifyReachableLimit = 1 << 20;

    /// <summary>
    /// Mark and sweep. Roots are the refs and every object younger than the grace period; marking follows
    /// manifests recursively (a reachable object that is a manifest keeps everything it references). Every
    /// reachable object up to 1 MiB is verified while marking: if one is corrupt, GC stops with
    /// <c>CasGcAborted</c> and removes nothing, because it can no longer know what that object kept alive.
    /// Sweep removes unmarked object files whose mtime is older than the grace period (re-checked just before each
    /// delete: puts freshen the mtime of objects they deduplicate, so a concurrent put keeps its object) and temp
    /// files older than the grace period.
    /// </summary>
    public CasGcReport CollectGarbage(CasGcOptions options)
    {
        var watch = Stopwatch.StartNew();
        var cancel = options.Cancel;
        var output = options.Output ?? NullEngineOutput.Instance;
        if (options.GracePeriod < TimeSpan.Zero)
            throw new RequiemException("InvalidGracePeriod", ErrorKind.InvalidArgument, $"The grace period {options.GracePeriod} is negative.", options.GracePeriod);
        var now = DateTime.UtcNow;
        var cutoff = now - options.GracePeriod;

        // 1. Scan: every object file and its age.
        var files = new List<(string Path, string Hash, CasEncoding Encoding, DateTime Mtime, long Size)>();
        foreach (var (path, hash, enc) in EnumerateObjectFiles())
        {
            cancel.ThrowIfCancellationRequested();
            var info = new FileInfo(path);
            if (!info.Exists) continue;
            files.Add((path, hash, enc, info.LastWriteTimeUtc, info.Length));
        }
        output.Progress(new ProgressInfo("Optimize-RequiemCas", $"marking from refs ({files.Count} objects)", 0, -1));

        // 2. Mark: refs, and young objects (an in-flight put may not have its ref or manifest yet).
        var marked = new HashSet<string>(StringComparer.Ordinal);
        var work = new Stack<(string Hash, string From)>();
        var missing = new List<CasMissingObject>();
        var refCount = 0;
        foreach (var (name, hash) in EnumerateRefFiles())
        {
            refCount++;
            if (hash is null)
                throw new RequiemException("CasGcAborted", ErrorKind.InvalidData,
                    $"The ref '{name}' does not hold a digest; garbage collection stopped without removing anything (fix or remove the ref).", name);
            work.Push((hash, "ref:" + name));
        }
        foreach (var f in files)
        {
            if (f.Mtime > cutoff) work.Push((f.Hash, "young"));
        }
        while (work.Count > 0)
        {
            cancel.ThrowIfCancellationRequested();
            var (hash, from) = work.Pop();
            if (!marked.Add(hash)) continue;
            var located = Locate(hash);
            if (located is null)
            {
                if (from != "young") missing.Add(new CasMissingObject { Hash = hash, ReferencedBy = from });
                continue;
            }
            if (ReadIfManifestCandidate(located.Value.Path, located.Value.Encoding, hash, cancel) is { } manifest)
            {
                foreach (var r in manifest.References) work.Push((r, "manifest:" + hash));
            }
        }

        // 3. Sweep.
        var candidates = new List<CasGcItem>();
        var keptYoung = 0;
        foreach (var f in files)
        {
            if (marked.Contains(f.Hash) && f.Mtime <= cutoff) continue;
            if (f.Mtime > cutoff) { keptYoung++; continue; }
            candidates.Add(new CasGcItem { Kind = "Object", Hash = f.Hash, Path = f.Path, StoredSize = f.Size, LastWriteTimeUtc = f.Mtime, Age = now - f.Mtime });
        }
        foreach (var t in EnumerateTempFiles(now))
        {
            if (t.LastWriteTimeUtc <= cutoff)
                candidates.Add(new CasGcItem { Kind = "TempFile", Path = t.Path, StoredSize = t.Size, LastWriteTimeUtc = t.LastWriteTimeUtc, Age = t.Age });
        }

        var throttle = new ProgressThrottle(TimeSpan.FromMilliseconds(250), checkEvery: 1);
        for (var i = 0; i < candidates.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var c = candidates[i];
            if (throttle.ShouldReport())
                output.Progress(new ProgressInfo("Optimize-RequiemCas", $"{i} of {candidates.Count} candidates", i, candidates.Count));
            if (options.DryRun)
            {
                options.ShouldRemove?.Invoke(c); // lets the host say what it would do (WhatIf); nothing is removed
                continue;
            }
            if (options.ShouldRemove is { } ask && !ask(c)) continue;
            // Re-check the age right before deleting: a put or SetRef may have freshened it since the scan.
            var info = new FileInfo(c.Path);
            if (!info.Exists || info.LastWriteTimeUtc > cutoff) continue;
            try
            {
                File.Delete(c.Path);
                c.Removed = true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                output.Warning($"Could not remove '{c.Path}': {ex.Message}");
            }
        }

        return new CasGcReport
        {
            Root = Root,
            GracePeriod = options.GracePeriod,
            DryRun = options.DryRun,
            RefCount = refCount,
            Reachable = marked.Count,
            KeptYoung = keptYoung,
            Scanned = files.Count,
            Candidates = candidates,
            Missing = missing,
            Duration = watch.Elapsed,
        };
    }

    /// <summary>
    /// Reads an object during marking: a manifest (JSON object with the marker) is parsed and returned; small objects
    /// are verified. A corrupt object aborts GC (its references would be unknown).
    /// </summary>
    private CasManifest? ReadIfManifestCandidate(string path, CasEncoding encoding, string hash, CancellationToken cancel)
    {
        long stored;
        try { stored = new FileInfo(path).Length; }
        catch (IOException) { return null; }
        var first = ReadFirstByte(path, encoding);
        if (first is null && !File.Exists(path)) return null;
        if (first != (byte)'{' && stored > VerifyReachableLimit) return null; // a large blob: nothing to follow
        try
        {
            var sniffer = new ManifestSniffer();
            CopyFile(path, encoding, hash, sniffer, cancel);
            return sniffer.Manifest();
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasObjectCorrupt")
        {
            throw new RequiemException("CasGcAborted", ErrorKind.InvalidData,
                $"Garbage collection stopped without removing anything: the reachable object {hash} is corrupt, so what it references is unknown. " +
                "Run Test-RequiemCas -All, restore the object (Add-RequiemCasObject with the original bytes), then retry.", hash, ex);
        }
    }

    private static byte? ReadFirstByte(string path, CasEncoding encoding)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1);
            using Stream s = encoding == CasEncoding.Zstd ? new ZstdSharp.DecompressionStream(file, leaveOpen: true) : file;
            var b = s.ReadByte();
            return b < 0 ? null : (byte)b;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ZstdSharp.ZstdException)
        {
            return null;
        }
    }
}
