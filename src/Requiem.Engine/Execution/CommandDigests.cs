using System.Collections.Concurrent;
using Requiem.Engine.Hashing;

namespace Requiem.Engine.Execution;

/// <summary>
/// The <c>cas:</c> digest of a resolved command binary, recorded in every result (<c>command_digest</c>). A binary is
/// hashed once per process while its size and modification time stay the same (a toolchain update changes both).
/// </summary>
public static class CommandDigests
{
    private static readonly ConcurrentDictionary<string, (long Size, DateTime Modified, string Algorithm, string Digest)> s_cache = new(StringComparer.Ordinal);

    public static string? Of(string commandPath, HashPrimitive hash, CancellationToken cancel = default)
    {
        try
        {
            var real = new FileInfo(commandPath).ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? new FileInfo(commandPath);
            real.Refresh();
            if (!real.Exists || !OutputFileCapture.IsRegularFile(real.FullName)) return null; // a FIFO or device: not hashed
            var key = real.FullName;
            if (s_cache.TryGetValue(key, out var c) && c.Size == real.Length && c.Modified == real.LastWriteTimeUtc && c.Algorithm == hash.Algorithm) return c.Digest;
            var digest = hash.HashFile(key, HashDomain.Cas, cancel).Hash;
            s_cache[key] = (real.Length, real.LastWriteTimeUtc, hash.Algorithm, digest);
            return digest;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null; // an unreadable binary (execute-only) runs but is not digested; the field is then absent
        }
    }
}
