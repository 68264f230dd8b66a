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
    /// <summary>Where marking starts; by default <see cref="CasGarbageCollector.DefaultRootProviders"/> (the refs and the action cache's unexpired entries).</summary>
    public IReadOnlyList<ICasGcRootProvider>? RootProviders { get; init; }
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

/// <summary>One place marking starts from: an object kept alive, and whether to read it as a manifest (following what it lists).</summary>
public readonly record struct CasGcRoot(string Hash, string From, bool AsManifest);

/// <summary>
/// A source of GC roots. The refs are one; action-cache entries are another (entries are roots until they expire).
/// A provider throws <c>CasGcAborted</c> when it cannot say what it keeps alive: nothing is then removed.
/// </summary>
public interface ICasGcRootProvider
{
    IEnumerable<CasGcRoot> EnumerateRoots(CasStore store);
}

/// <summary>Every ref names a root, read as a manifest (a ref may name any object; plain data is simply kept).</summary>
public sealed class CasRefRootProvider : ICasGcRootProvider
{
    public static readonly CasRefRootProvider Instance = new();

    public IEnumerable<CasGcRoot> EnumerateRoots(CasStore store)
    {
        foreach (var (name, hash) in store.EnumerateRefFiles())
        {
            if (hash is null)
                throw new RequiemException("CasGcAborted", ErrorKind.InvalidData,
                    $"The ref '{name}' does not hold a digest; garbage collection stopped without removing anything (fix or remove the ref).", name);
            yield return new CasGcRoot(hash, "ref:" + name, AsManifest: true);
        }
    }
}

/// <summary>What a collection would remove, computed without removing anything: <see cref="CasGarbageCollector.Execute"/> carries it out.</summary>
public sealed class CasGcPlan
{
    public required DateTime Now { get; init; }
    public required DateTime Cutoff { get; init; }
    /// <summary>Roots marked from, of every provider (refs, action-cache entries, …).</summary>
    public required int RootCount { get; init; }
    /// <summary>Of those, the refs.</summary>
    public required int RefCount { get; init; }
    public required int Reachable { get; init; }
    public required int KeptYoung { get; init; }
    public required int Scanned { get; init; }
    public required IReadOnlyList<CasGcItem> Candidates { get; init; }
    public required IReadOnlyList<CasMissingObject> Missing { get; init; }
}

public sealed partial class CasStore
{
    /// <summary>Plans and carries out a collection (<see cref="CasGarbageCollector"/>); with DryRun only plans.</summary>
    public CasGcReport CollectGarbage(CasGcOptions options) => new CasGarbageCollector(this).Collect(options);
}

/// <summary>
/// Mark and sweep over one store, in two steps: <see cref="Plan"/> marks from the roots (by default the refs) through
/// the manifests they reach and lists what is unreachable and older than the grace period; <see cref="Execute"/> removes
/// the planned files. A ref's target, and the references a manifest lists under <c>manifests</c>, are read as manifests
/// (streamed, whatever their size); no other object is ever parsed. A corrupt or malformed manifest stops planning with
/// <c>CasGcAborted</c> before anything is removed, because what it keeps alive would be unknown. Execution re-checks
/// each file's age just before deleting it: puts freshen the mtime of objects they deduplicate, so a concurrent put
/// keeps its object; temp files older than the grace period are removed too.
/// </summary>
public sealed class CasGarbageCollector
{
    /// <summary>The roots every collection marks from unless the options name others. Additions must be thread-safe at start-up.</summary>
    public static IReadOnlyList<ICasGcRootProvider> DefaultRootProviders { get; set; } =
        new ICasGcRootProvider[] { CasRefRootProvider.Instance, new ActionCache.ActionCacheGcRoots() };

    private readonly CasStore _store;

    public CasGarbageCollector(CasStore store) => _store = store;

    public CasGcReport Collect(CasGcOptions options)
    {
        var watch = Stopwatch.StartNew();
        var plan = Plan(options);
        Execute(plan, options);
        return new CasGcReport
        {
            Root = _store.Root,
            GracePeriod = options.GracePeriod,
            DryRun = options.DryRun,
            RefCount = plan.RefCount,
            Reachable = plan.Reachable,
            KeptYoung = plan.KeptYoung,
            Scanned = plan.Scanned,
            Candidates = plan.Candidates,
            Missing = plan.Missing,
            Duration = watch.Elapsed,
        };
    }

    public CasGcPlan Plan(CasGcOptions options)
    {
        var cancel = options.Cancel;
        var output = options.Output ?? NullEngineOutput.Instance;
        if (options.GracePeriod < TimeSpan.Zero)
            throw new RequiemException("InvalidGracePeriod", ErrorKind.InvalidArgument, $"The grace period {options.GracePeriod} is negative.", options.GracePeriod);
        var now = DateTime.UtcNow;
        var cutoff = now - options.GracePeriod;

        // 1. Scan: every object file and its age.
        var files = new List<(string Path, string Hash, CasEncoding Encoding, DateTime Mtime, long Size)>();
        foreach (var (path, hash, enc) in _store.EnumerateObjectFiles())
        {
            cancel.ThrowIfCancellationRequested();
            var info = new FileInfo(path);
            if (!info.Exists) continue;
            files.Add((path, hash, enc, info.LastWriteTimeUtc, info.Length));
        }
        output.Progress(new ProgressInfo("Optimize-RequiemCas", $"marking from refs ({files.Count} objects)", 0, -1));

        // 2. Mark from the roots. Young objects are not roots: sweep keeps them anyway, and a manifest being written
        // now has freshened (made young) everything it names.
        var marked = new HashSet<string>(StringComparer.Ordinal);
        var scanned = new HashSet<string>(StringComparer.Ordinal);
        var work = new Stack<(string Hash, string From, bool AsManifest)>();
        var missing = new List<CasMissingObject>();
        var rootCount = 0;
        var refCount = 0;
        foreach (var provider in options.RootProviders ?? DefaultRootProviders)
        {
            foreach (var root in provider.EnumerateRoots(_store))
            {
                rootCount++;
                if (provider is CasRefRootProvider) refCount++;
                work.Push((root.Hash, root.From, root.AsManifest));
            }
        }
        while (work.Count > 0)
        {
            cancel.ThrowIfCancellationRequested();
            var (hash, from, asManifest) = work.Pop();
            var first = marked.Add(hash);
            if (!asManifest && !first) continue;
            if (asManifest && !scanned.Add(hash)) continue;
            var located = _store.Locate(hash);
            if (located is null)
            {
                if (first) missing.Add(new CasMissingObject { Hash = hash, ReferencedBy = from });
                continue;
            }
            if (!asManifest) continue;
            if (ScanManifestForCollection(located.Value.Path, located.Value.Encoding, hash, from, cancel) is { } manifest)
            {
                var nested = new HashSet<string>(manifest.Manifests, StringComparer.Ordinal);
                foreach (var r in manifest.References) work.Push((r, "manifest:" + hash, nested.Contains(r)));
            }
        }

        // 3. The plan: unmarked objects and temp files older than the grace period.
        var candidates = new List<CasGcItem>();
        var keptYoung = 0;
        foreach (var f in files)
        {
            if (marked.Contains(f.Hash) && f.Mtime <= cutoff) continue;
            if (f.Mtime > cutoff) { keptYoung++; continue; }
            candidates.Add(new CasGcItem { Kind = "Object", Hash = f.Hash, Path = f.Path, StoredSize = f.Size, LastWriteTimeUtc = f.Mtime, Age = now - f.Mtime });
        }
        foreach (var t in _store.EnumerateTempFiles(now))
        {
            if (t.LastWriteTimeUtc <= cutoff)
                candidates.Add(new CasGcItem { Kind = "TempFile", Path = t.Path, StoredSize = t.Size, LastWriteTimeUtc = t.LastWriteTimeUtc, Age = t.Age });
        }
        return new CasGcPlan
        {
            Now = now, Cutoff = cutoff, RootCount = rootCount, RefCount = refCount, Reachable = marked.Count, KeptYoung = keptYoung, Scanned = files.Count,
            Candidates = candidates, Missing = missing,
        };
    }

    /// <summary>Removes the planned files (none with DryRun), asking <see cref="CasGcOptions.ShouldRemove"/> for each.</summary>
    public void Execute(CasGcPlan plan, CasGcOptions options)
    {
        var cancel = options.Cancel;
        var output = options.Output ?? NullEngineOutput.Instance;
        var candidates = plan.Candidates;
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
            // Re-check the age right before deleting: a put or SetRef may have freshened it since the plan.
            var info = new FileInfo(c.Path);
            if (!info.Exists || info.LastWriteTimeUtc > plan.Cutoff) continue;
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
    }

    /// <summary>
    /// Reads an object reached as a manifest while marking: streams and verifies it, returning its references, or null
    /// when it is plain data (a ref may name any object). A corrupt object, or one that carries the manifest marker but
    /// breaks the format, stops GC: what it keeps alive would be unknown.
    /// </summary>
    private CasManifestScanner? ScanManifestForCollection(string path, CasEncoding encoding, string hash, string from, CancellationToken cancel)
    {
        var first = ReadFirstByte(path, encoding);
        if (first != (byte)'{') return null; // manifests are canonical JSON objects: no leading whitespace
        var scanner = new CasManifestScanner();
        try
        {
            _store.CopyFile(path, encoding, hash, scanner, cancel);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (RequiemException ex) when (ex.ErrorId == "CasObjectCorrupt")
        {
            // Left where it is: GC changes nothing when it stops; Test-RequiemCas, which the message advises, quarantines it.
            throw new RequiemException("CasGcAborted", ErrorKind.InvalidData,
                $"Garbage collection stopped without removing anything: the reachable object {hash} is corrupt, so what it references is unknown. " +
                "Run Test-RequiemCas -All, restore the object (Add-RequiemCasObject with the original bytes), then retry.", hash, ex);
        }
        scanner.Complete();
        return scanner.Status switch
        {
            CasManifestStatus.Manifest => scanner,
            CasManifestStatus.Invalid => throw new RequiemException("CasGcAborted", ErrorKind.InvalidData,
                $"Garbage collection stopped without removing anything: the object {hash} (named by {from}) carries the manifest marker " +
                $"but is not a valid manifest ({scanner.Problem}), so what it references is unknown. Remove or repoint what names it, then retry.", hash),
            _ => null,
        };
    }

    internal static byte? ReadFirstByte(string path, CasEncoding encoding)
    {
        try
        {
            using var file = new FileStream(IO.StoreFile.OpenObject(path, out _), FileAccess.Read, 1);
            using Stream s = encoding == CasEncoding.Zstd ? new ZstdSharp.DecompressionStream(file, leaveOpen: true) : file;
            var b = s.ReadByte();
            return b < 0 ? null : (byte)b;
        }
        catch (IO.SpecialFileException)
        {
            // Not a file that can be read (a FIFO, link or device under the object's name): answered "may be a manifest",
            // so the caller reads it in full, which reports it as a damaged object instead of taking it for data.
            return (byte)'{';
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ZstdSharp.ZstdException)
        {
            return null;
        }
    }
}
