using System.Diagnostics;
using System.Text.Json;
using Requiem.Engine.Diagnostics;

namespace Requiem.Engine.Cas;

/// <summary>What <see cref="CasStore.Verify"/> checks: every object, or a sample that continues where the last one stopped.</summary>
public sealed class CasVerifyOptions
{
    /// <summary>Check every object (the default when <see cref="Sample"/> is 0).</summary>
    public bool All { get; init; }
    /// <summary>Check this many objects, continuing after the store's persisted cursor (wrapping around).</summary>
    public int Sample { get; init; }
    /// <summary>Pause before re-reading an object that failed once (default 100 ms).</summary>
    public TimeSpan RereadDelay { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>Threads hashing at once (0: the store's hash primitive's, i.e. every core or hash.max_threads).</summary>
    public int MaxThreads { get; init; }
    public IEngineOutput? Output { get; init; }
    public CancellationToken Cancel { get; init; }
}

/// <summary>An object whose bytes do not match its name (after a second read).</summary>
public sealed class CasCorruptObject
{
    public required string Hash { get; init; }
    public required string Path { get; init; }
    public required CasEncoding Encoding { get; init; }
    public required string Reason { get; init; }
    /// <summary>Where the damaged file was moved (<c>quarantine/…</c>); null when it could not be moved (a read-only store).</summary>
    public string? QuarantinePath { get; init; }
}

/// <summary>An object reached as a manifest (from a ref, or a parent's <c>manifests</c>) that carries the marker but breaks the format.</summary>
public sealed class CasInvalidManifest
{
    public required string Hash { get; init; }
    /// <summary><c>ref:&lt;name&gt;</c> or <c>manifest:&lt;hash&gt;</c>.</summary>
    public required string ReferencedBy { get; init; }
    public required string Reason { get; init; }
}

/// <summary>A digest named by a ref or a manifest that is not in the store.</summary>
public sealed class CasMissingObject
{
    public required string Hash { get; init; }
    /// <summary><c>ref:&lt;name&gt;</c> or <c>manifest:&lt;hash&gt;</c>.</summary>
    public required string ReferencedBy { get; init; }}

/// <summary>The result of <c>Test-RequiemCas</c>. A failed check is a report with <see cref="Valid"/> false, not an error.</summary>
public sealed class CasVerifyReport
{
    public required string Root { get; init; }
    /// <summary><c>All</c> or <c>Sample</c>.</summary>
    public required string Mode { get; init; }
    /// <summary>True when nothing checked is corrupt, nothing referenced is missing and every manifest reached parses.</summary>
    public bool Valid => Corrupt.Count == 0 && Missing.Count == 0 && InvalidManifests.Count == 0;
    /// <summary>Object files whose digest was re-computed.</summary>
    public required int Checked { get; init; }
    /// <summary>Object files in the store when the check started.</summary>
    public required int Total { get; init; }
    /// <summary>Uncompressed bytes re-hashed.</summary>
    public required long BytesChecked { get; init; }
    public required IReadOnlyList<CasCorruptObject> Corrupt { get; init; }
    public required IReadOnlyList<CasMissingObject> Missing { get; init; }
    /// <summary>Objects reached as manifests that carry the marker but do not parse as one.</summary>
    public required IReadOnlyList<CasInvalidManifest> InvalidManifests { get; init; }
    /// <summary>Objects that failed a first read and passed the second (reported, not corrupt).</summary>
    public required int Reread { get; init; }
    /// <summary>Objects removed (by a concurrent GC) between listing and reading; not counted as checked.</summary>
    public required int Vanished { get; init; }
    /// <summary>Leftover files in tmp/: interrupted writes (or writes in progress). Optimize-RequiemCas clears old ones.</summary>
    public required IReadOnlyList<CasTempFile> TempFiles { get; init; }
    /// <summary>Files under objects/ whose names are not object names; they are never read as objects.</summary>
    public required IReadOnlyList<string> ForeignFiles { get; init; }
    /// <summary>Sample mode: the hashes checked by this run (empty for -All).</summary>
    public required IReadOnlyList<string> SampledHashes { get; init; }
    /// <summary>Sample mode: the last hash checked (persisted; the next sample starts after it).</summary>
    public string? Cursor { get; init; }
    public required TimeSpan Duration { get; init; }
}

public sealed partial class CasStore
{
    public const string VerifyCursorFileName = "verify-cursor.json";

    /// <summary>Re-hashes objects and checks what refs and manifests name (<see cref="CasVerifier"/>).</summary>
    public CasVerifyReport Verify(CasVerifyOptions options) => new CasVerifier(this).Verify(options);
}

/// <summary>
/// Verification of one store: objects re-hashed on every core (<see cref="CasParallelVerifier"/>, verdicts in order), a
/// failed object re-read once before it is called corrupt, then the references refs and manifests make.
/// </summary>
public sealed class CasVerifier
{

    private readonly CasStore _store;

    public CasVerifier(CasStore store) => _store = store;

    /// <summary>
    /// Re-hashes objects. -All checks every object file; -Sample N checks the N objects that follow the cursor
    /// persisted in <c>verify-cursor.json</c> (hash order, wrapping; the first sample starts at a random point),
    /// so repeated samples reach every object within ceil(count / N) runs. An object that fails is re-read once
    /// after a short pause before it is declared corrupt. Then references are checked: every ref must name a present
    /// object; with -All every manifest reached from a ref (streamed, any size) is parsed and every object it names must
    /// be present; a sample does the same for the manifests it checked that refs name.
    /// </summary>
    public CasVerifyReport Verify(CasVerifyOptions options)
    {
        var watch = Stopwatch.StartNew();
        var cancel = options.Cancel;
        var output = options.Output ?? NullEngineOutput.Instance;
        var all = options.All || options.Sample <= 0;
        var files = _store.EnumerateObjectFiles(sorted: true).ToList();
        var total = files.Count;

        List<(string Path, string Hash, CasEncoding Encoding)> selected;
        string? cursor = null;
        if (all)
        {
            selected = files;
        }
        else
        {
            var start = 0;
            var saved = ReadVerifyCursor();
            if (files.Count > 0)
            {
                if (saved is null) start = Random.Shared.Next(files.Count);
                else
                {
                    // First object strictly after the cursor (by name), wrapping to the beginning.
                    var lo = 0; var hi = files.Count;
                    while (lo < hi)
                    {
                        var mid = (lo + hi) / 2;
                        if (string.CompareOrdinal(Path.GetFileName(files[mid].Path), saved) <= 0) lo = mid + 1; else hi = mid;
                    }
                    start = lo % files.Count;
                }
            }
            var n = Math.Min(options.Sample, files.Count);
            selected = new List<(string, string, CasEncoding)>(n);
            for (var i = 0; i < n; i++) selected.Add(files[(start + i) % files.Count]);
            if (n > 0) cursor = Path.GetFileName(selected[^1].Path);
        }

        // The refs, read once: their targets are scanned as manifests while they are verified (one read each).
        var refs = _store.EnumerateRefs().ToList();
        var refTargets = new HashSet<string>(refs.Select(r => r.Hash), StringComparer.Ordinal);
        var scannedManifests = new Dictionary<string, ScannedManifest>(StringComparer.Ordinal);

        var corrupt = new List<CasCorruptObject>();
        var missing = new List<CasMissingObject>();
        int checkedCount = 0, reread = 0, vanished = 0;
        long bytes = 0;
        var throttle = new ProgressThrottle(TimeSpan.FromMilliseconds(250), checkEvery: 16);

        // Parallel verification (CasParallelVerifier, issue 15): objects are read on at most MaxThreads threads (a failed
        // one re-read by its worker after the delay), verdicts in hash order whatever the thread count.
        var threads = options.MaxThreads > 0 ? options.MaxThreads : _store.HashPrimitive.MaxThreads;
        var items = selected.Select(f => new CasVerifyItem(f.Path, f.Hash, f.Encoding, ScanManifest: refTargets.Contains(f.Hash))).ToList();
        using var verdicts = new CasParallelVerifier(_store.HashPrimitive, threads, options.RereadDelay).Verify(items, cancel).GetEnumerator();
        for (var i = 0; i < selected.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var (path, hash, encoding) = selected[i];
            verdicts.MoveNext();
            var (_, verdict) = verdicts.Current;
            var outcome = verdict.Status switch { CasVerifyStatus.Ok => VerifyOutcome.Ok, CasVerifyStatus.Vanished => VerifyOutcome.Vanished, _ => VerifyOutcome.Corrupt };
            var (size, reason) = (verdict.Size, verdict.Reason);
            if (outcome == VerifyOutcome.Ok)
            {
                _store.CountVerified(size);
                if (verdict.Reread) reread++;
                if (verdict.Manifest is { } manifest) scannedManifests[hash] = manifest;
            }
            switch (outcome)
            {
                case VerifyOutcome.Ok:
                    checkedCount++;
                    bytes += size;
                    break;
                case VerifyOutcome.Vanished:
                    vanished++;
                    break;
                default:
                    checkedCount++;
                    corrupt.Add(new CasCorruptObject
                    {
                        Hash = hash, Path = path, Encoding = encoding, Reason = reason ?? "digest mismatch", QuarantinePath = _store.Quarantine(hash, path, encoding),
                    });
                    Metrics.MetricsRegistry.Add(Metrics.Counter.CasCorruptDetected);
                    break;
            }
            if (throttle.ShouldReport())
                output.Progress(new ProgressInfo("Test-RequiemCas", $"{i + 1} of {selected.Count} objects, {bytes >> 20} MiB verified", i + 1, selected.Count));
        }

        // Objects found damaged earlier (by a read, or a previous check) and not stored again since are still corrupt, for
        // -All and -Sample alike: a nightly sample gate must not turn green because an earlier check moved the damage aside.
        var present = new HashSet<string>(files.Select(f => f.Hash), StringComparer.Ordinal);
        var corruptHashes = new HashSet<string>(corrupt.Select(c => c.Hash), StringComparer.Ordinal);
        foreach (var (hash, encoding, quarantined) in _store.EnumerateQuarantined())
        {
            if (present.Contains(hash) || corruptHashes.Contains(hash) || _store.Contains(hash)) continue;
            corruptHashes.Add(hash);
            corrupt.Add(new CasCorruptObject
            {
                Hash = hash, Path = _store.ObjectPath(hash, encoding), Encoding = encoding, QuarantinePath = quarantined,
                Reason = "found damaged earlier and moved to quarantine; not stored again since",
            });
        }

        // References: every ref names a present object; manifests reached from refs name present objects.
        var sampled = all ? null : new HashSet<string>(selected.Select(f => f.Hash), StringComparer.Ordinal);
        var invalid = new List<CasInvalidManifest>();
        var work = new Stack<(string Hash, string From)>();
        foreach (var (name, hash) in refs)
        {
            if (corruptHashes.Contains(hash)) continue;
            if (!present.Contains(hash) && !_store.Contains(hash)) missing.Add(new CasMissingObject { Hash = hash, ReferencedBy = "ref:" + name });
            else if (sampled is null || sampled.Contains(hash)) work.Push((hash, "ref:" + name));
        }
        var scanned = new HashSet<string>(StringComparer.Ordinal);
        while (work.Count > 0)
        {
            cancel.ThrowIfCancellationRequested();
            var (hash, from) = work.Pop();
            if (!scanned.Add(hash) || corruptHashes.Contains(hash)) continue;
            if (!scannedManifests.Remove(hash, out var manifest))
            {
                // Reached only through another manifest (or not checked above): read and hashed here.
                if (_store.Locate(hash) is not { } located) continue;
                if (CasGarbageCollector.ReadFirstByte(located.Path, located.Encoding) != (byte)'{') continue; // data: a ref may name any object
                var scanner = new CasManifestScanner();
                var outcome = TryVerifyFile(located.Path, hash, located.Encoding, scanner, cancel, out _, out var reason);
                if (outcome == VerifyOutcome.Vanished) continue;
                if (outcome == VerifyOutcome.Corrupt)
                {
                    corrupt.Add(new CasCorruptObject
                    {
                        Hash = hash, Path = located.Path, Encoding = located.Encoding, Reason = reason ?? "digest mismatch",
                        QuarantinePath = _store.Quarantine(hash, located.Path, located.Encoding),
                    });
                    corruptHashes.Add(hash);
                    continue;
                }
                manifest = ScannedManifest.From(scanner);
            }
            if (manifest.Status == CasManifestStatus.Invalid)
            {
                invalid.Add(new CasInvalidManifest { Hash = hash, ReferencedBy = from, Reason = manifest.Problem ?? "invalid" });
                continue;
            }
            if (manifest.Status != CasManifestStatus.Manifest) continue;
            var nested = new HashSet<string>(manifest.Manifests, StringComparer.Ordinal);
            foreach (var r in manifest.References.Distinct(StringComparer.Ordinal))
            {
                if (corruptHashes.Contains(r)) continue;
                if (!present.Contains(r) && !_store.Contains(r)) missing.Add(new CasMissingObject { Hash = r, ReferencedBy = "manifest:" + hash });
                else if (nested.Contains(r)) work.Push((r, "manifest:" + hash));
            }
        }

        if (cursor is not null) WriteVerifyCursor(cursor);

        return new CasVerifyReport
        {
            Root = _store.Root,
            Mode = all ? "All" : "Sample",
            Checked = checkedCount,
            Total = total,
            BytesChecked = bytes,
            Corrupt = corrupt,
            Missing = missing,
            InvalidManifests = invalid,
            Reread = reread,
            Vanished = vanished,
            TempFiles = _store.EnumerateTempFiles(),
            ForeignFiles = _store.EnumerateForeignFiles().ToList(),
            SampledHashes = all ? Array.Empty<string>() : selected.Select(f => f.Hash).ToList(),
            Cursor = cursor,
            Duration = watch.Elapsed,
        };
    }

    private enum VerifyOutcome { Ok, Corrupt, Vanished }

    private VerifyOutcome TryVerifyFile(string path, string hash, CasEncoding encoding, Stream sink, CancellationToken cancel, out long size, out string? reason)
    {
        size = 0;
        reason = null;
        try
        {
            size = _store.CopyFile(path, encoding, hash, sink, cancel);
            return VerifyOutcome.Ok;
        }
        catch (FileNotFoundException)
        {
            return VerifyOutcome.Vanished;
        }
        catch (RequiemException ex) when (ex.ErrorId is "CasObjectCorrupt" or "CasReadError")
        {
            if (!File.Exists(path)) return VerifyOutcome.Vanished;
            reason = ex.Message;
            return VerifyOutcome.Corrupt;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (!File.Exists(path)) return VerifyOutcome.Vanished;
            reason = "read failed: " + ex.Message;
            return VerifyOutcome.Corrupt;
        }
    }

    private string? ReadVerifyCursor()
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(_store.Root, CasStore.VerifyCursorFileName)));
            var c = doc.RootElement.GetProperty("cursor").GetString();
            return c is not null && CasLayout.ParseObjectFileName(c) is not null ? c : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    private void WriteVerifyCursor(string cursor)
    {
        var tmp = _store.NewTempPath();
        try
        {
            File.WriteAllText(tmp, JsonSerializer.Serialize(new Dictionary<string, string>
            {
                ["cursor"] = cursor,
                ["updated_utc"] = DateTime.UtcNow.ToString("O"),
            }) + "\n");
            File.Move(tmp, Path.Combine(_store.Root, CasStore.VerifyCursorFileName), overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            CasStore.TryDelete(tmp); // a read-only store still verifies; the next sample just starts at random
        }
    }
}
