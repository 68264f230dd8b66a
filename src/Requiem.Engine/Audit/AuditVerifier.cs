using System.Text.Json;
using System.Text.Json.Nodes;
using Requiem.Engine.Hashing;
using Requiem.Engine.Json;

namespace Requiem.Engine.Audit;

/// <summary>One thing wrong with an audit log: where (line, sequence number), a stable code, and what it means.</summary>
public sealed class AuditProblem
{
    /// <summary>1-based line of the log; 0 for a problem of the head anchor or of the log as a whole.</summary>
    public required long Line { get; init; }
    public long? Seq { get; init; }
    /// <summary>Stable code (docs/CONTRACT.md): EntryModified, MalformedEntry, TornLine, MissingEntries, OutOfOrder, ChainBroken, AnchorReset, HeadMissing, HeadInvalid, HeadMismatch, TruncatedTail, UnanchoredEntries.</summary>
    public required string Code { get; init; }
    public required string Message { get; init; }

    public override string ToString() => Line > 0 ? $"line {Line}: {Code}: {Message}" : $"{Code}: {Message}";
}

/// <summary>The result of Test-RequiemAuditLog: <see cref="Valid"/> only when the chain is whole and matches its head anchor.</summary>
public sealed class AuditVerification
{
    public required string Path { get; init; }
    public string? Tenant { get; init; }
    public bool Valid => Problems.Count == 0;
    /// <summary>Lines that are entries (well-formed, whether or not they verify).</summary>
    public required long Entries { get; init; }
    public required IReadOnlyList<AuditProblem> Problems { get; init; }
    public long? LastSeq { get; init; }
    public string? LastHash { get; init; }
    /// <summary>The sequence number the head anchor records (null without a usable head).</summary>
    public long? HeadSeq { get; init; }
    public string? HeadHash { get; init; }
}

/// <summary>
/// Checks every line's own hash, the sequence numbers and the prev links, then the last entry against the head anchor:
/// an edited entry fails its hash; a deleted one leaves a gap; an inserted or moved one breaks the order and the links;
/// an entry appended outside the module lies beyond the head; a cut tail falls short of it.
/// </summary>
internal static class AuditVerifier
{
    public static AuditVerification Verify(AuditLog log, HashPrimitive hash)
    {
        var problems = new List<AuditProblem>();
        long entries = 0;
        long? lastSeq = null;
        string? lastHash = null;
        var hashesBySeq = new Dictionary<long, string>();
        AuditHead? head = null;
        string? headProblem = null;
        var lockDir = System.IO.Directory.Exists(log.Directory);
        try
        {
            // A symbolic link at audit/ would make every file below it (the lock included) live somewhere else.
            AuditFiles.CheckDirectory(log.Directory);
            using (lockDir ? TryLockShared(log.LockPath) : null)
            {
                head = log.ReadHead(out headProblem);
                VerifyLines();
            }
        }
        catch (RequiemException ex) when (ex.ErrorId == "AuditFileNotRegular")
        {
            problems.Add(new AuditProblem { Line = 0, Code = "NotRegularFile", Message = ex.Message });
        }

        void VerifyLines()
        {
            {
                long line = 0;
                long? prevSeq = null;
                string? prevHash = null;
                var first = true;
                foreach (var (text, complete) in AuditLog.ReadLines(log.LogPath))
                {
                    line++;
                    if (!complete)
                    {
                        problems.Add(new AuditProblem { Line = line, Code = "TornLine", Message = "the last line is incomplete (no newline): a write was cut off or the file was edited" });
                        break;
                    }
                    if (!TryCheckLine(text, line, hash, out var entry, out var ownHashOk, out var malformed))
                    {
                        problems.Add(new AuditProblem { Line = line, Code = "MalformedEntry", Message = malformed! });
                        first = false;
                        prevSeq = null;
                        prevHash = null; // the next entry's link names this line's hash, which cannot be read
                        continue;
                    }
                    entries++;
                    var e = entry!;
                    if (!ownHashOk)
                        problems.Add(new AuditProblem { Line = line, Seq = e.Seq, Code = "EntryModified", Message = "the entry does not match its own hash: it was edited after it was written" });
                    var expected = first ? 1 : prevSeq + 1;
                    if (expected is long x && e.Seq != x)
                    {
                        problems.Add(e.Seq > x
                            ? new AuditProblem { Line = line, Seq = e.Seq, Code = "MissingEntries", Message = $"entries {x}..{e.Seq - 1} are missing before this one (deleted)" }
                            : new AuditProblem { Line = line, Seq = e.Seq, Code = "OutOfOrder", Message = $"sequence number {e.Seq} where {x} was expected: an entry was inserted, duplicated or moved" });
                    }
                    var brokenLink = first ? e.Seq == 1 && e.Prev is not null : prevHash is not null && e.Prev != prevHash;
                    if (brokenLink)
                        problems.Add(new AuditProblem { Line = line, Seq = e.Seq, Code = "ChainBroken", Message = "its prev does not name the hash of the entry before it" });
                    if (e.Action == AuditActions.AnchorReset)
                        problems.Add(new AuditProblem { Line = line, Seq = e.Seq, Code = "AnchorReset",
                            Message = "the head anchor was missing or unreadable when this entry was appended: a tail cut off before this point cannot be detected" });
                    hashesBySeq.TryAdd(e.Seq, e.Hash);
                    first = false;
                    prevSeq = e.Seq;
                    prevHash = e.Hash;
                    lastSeq = e.Seq;
                    lastHash = e.Hash;
                }
            }
        }

        if (headProblem is not null)
        {
            problems.Add(new AuditProblem { Line = 0, Code = "HeadInvalid", Message = headProblem });
        }
        else if (head is null)
        {
            if (entries > 0)
                problems.Add(new AuditProblem { Line = 0, Code = "HeadMissing", Message = $"the head anchor '{log.HeadPath}' is missing: a cut-off tail cannot be detected" });
        }
        else
        {
            if (!HeadEntryMatches(head, hash))
                problems.Add(new AuditProblem { Line = 0, Seq = head.Seq, Code = "HeadInvalid", Message = "the entry kept in the head anchor does not match the sequence number and hash the head records" });
            if (lastSeq is null || head.Seq > lastSeq)
                problems.Add(new AuditProblem { Line = 0, Seq = head.Seq, Code = "TruncatedTail",
                    Message = lastSeq is null
                        ? $"the head anchor records entry {head.Seq}, but the log holds no entries: it was emptied or deleted"
                        : $"the head anchor records entry {head.Seq}, but the log ends at entry {lastSeq}: its tail was cut off (or the last append was interrupted; the next append restores it)" });
            else if (head.Seq < lastSeq)
                problems.Add(new AuditProblem { Line = 0, Seq = lastSeq, Code = "UnanchoredEntries",
                    Message = $"entries {head.Seq + 1}..{lastSeq} come after the entry the head anchor records ({head.Seq}): they were appended by something other than the module" });
            if (hashesBySeq.TryGetValue(head.Seq, out var h) && h != head.Hash)
                problems.Add(new AuditProblem { Line = 0, Seq = head.Seq, Code = "HeadMismatch", Message = $"entry {head.Seq} in the log is not the entry the head anchor records" });
        }
        return new AuditVerification
        {
            Path = log.LogPath, Tenant = log.Tenant, Entries = entries, Problems = problems,
            LastSeq = lastSeq, LastHash = lastHash, HeadSeq = head?.Seq, HeadHash = head?.Hash,
        };
    }

    private static bool TryCheckLine(string text, long line, HashPrimitive hash, out AuditEntry? entry, out bool ownHashOk, out string? problem)
    {
        entry = null;
        ownHashOk = false;
        try
        {
            if (JsonNode.Parse(text) is not JsonObject node) { problem = "the line is not a JSON object"; return false; }
            using (var doc = JsonDocument.Parse(text)) entry = AuditEntry.FromJson(doc.RootElement, line, out problem);
            if (entry is null) return false;
            node.Remove("hash");
            ownHashOk = AuditEntry.ComputeHash(hash, node) == entry.Hash;
            return true;
        }
        catch (Exception ex) when (ex is JsonException or RequiemException)
        {
            problem = "not valid JSON: " + ex.Message;
            return false;
        }
    }

    /// <summary>The head's entries chain one to the next, each matches its own hash, and the last is the one the head names.</summary>
    private static bool HeadEntryMatches(AuditHead head, HashPrimitive hash)
    {
        try
        {
            string? previous = null;
            long previousSeq = 0;
            JsonObject? last = null;
            string? lastHash = null;
            foreach (var line in head.EntryLines)
            {
                if (JsonNode.Parse(line) is not JsonObject node) return false;
                var seq = node["seq"]?.GetValue<long>() ?? 0;
                var own = node["hash"]?.GetValue<string>();
                var prev = node["prev"]?.GetValue<string>();
                if (previous is not null && (prev != previous || seq != previousSeq + 1)) return false;
                node.Remove("hash");
                if (own is null || AuditEntry.ComputeHash(hash, node) != own) return false;
                (previous, previousSeq, last, lastHash) = (own, seq, node, own);
            }
            return last is not null && previousSeq == head.Seq && lastHash == head.Hash;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or RequiemException)
        {
            return false;
        }
    }

    /// <summary>A shared lock so that an append in progress (head written, line not yet) is not mistaken for a cut tail; none on a read-only store.</summary>
    private static AuditFileLock? TryLockShared(string path)
    {
        try { return AuditFileLock.Acquire(path, exclusive: false); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
        catch (RequiemException ex) when (ex.ErrorId == "AuditFileNotRegular") { return null; } // the log and head are checked on their own
    }
}
