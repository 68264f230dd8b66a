using System.Diagnostics;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Hashing;

/// <summary>
/// The module's BLAKE3 (every lane width this CPU runs, forced in turn; one core and all cores; in memory and from a
/// file) against the Blake3 package and b3sum, for every length 0–4,100 and every power of two ±1 up to 64 MiB, with
/// no domain and each of the three 4-byte domain prefixes (which shift every chunk boundary of the file).
/// All in one class: the width switch is process-wide, and xunit runs one class's tests one after another.
/// </summary>
public class Blake3TreeCrossCheckTests
{
    private const int MaxLength = 64 << 20;
    private static readonly HashDomain[] Domains = { HashDomain.None, HashDomain.Cas, HashDomain.Request, HashDomain.Result };
    private static readonly Lazy<byte[]> Data = new(() =>
    {
        var data = new byte[MaxLength + 1];
        new Random(2026).NextBytes(data);
        return data;
    });

    private static IEnumerable<int> PowerOfTwoLengths()
    {
        for (var k = 0; (1L << k) <= MaxLength; k++)
        {
            var p = 1 << k;
            foreach (var n in new[] { p - 1, p, p + 1 })
                if (n > 4100) yield return n;
        }
    }

    private static string Reference(HashDomain domain, ReadOnlySpan<byte> data)
    {
        using var h = new Blake3RequiemHasher(domain);
        h.Update(data);
        return h.FinalizeHex();
    }

    private static string Ours(HashDomain domain, ReadOnlySpan<byte> data, int threads, bool parallel)
    {
        using var h = new CompactBlake3Hasher(domain, threads);
        if (parallel) h.UpdateParallel(data); else h.Update(data);
        return h.FinalizeHex();
    }

    private static void ForEachWidth(Action<Blake3LaneWidth> test)
    {
        try
        {
            foreach (var width in Blake3Lanes.Available)
            {
                Blake3Lanes.Width = width;
                test(width);
            }
        }
        finally
        {
            Blake3Lanes.Width = Blake3Lanes.Widest;
        }
    }

    [Fact]
    public void EveryWidthTheCpuRunsIsOffered()
    {
        Assert.Contains(Blake3LaneWidth.Scalar, Blake3Lanes.Available);
        if (System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated) Assert.Contains(Blake3LaneWidth.Lanes4, Blake3Lanes.Available);
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated) Assert.Contains(Blake3LaneWidth.Lanes8, Blake3Lanes.Available);
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) Assert.Contains(Blake3LaneWidth.Lanes16, Blake3Lanes.Available);
        Assert.Equal(Blake3Lanes.Available[^1], Blake3Lanes.Widest);
    }

    [Fact]
    public void EveryLengthUpTo4100MatchesThePackageForEveryWidthAndDomain()
    {
        var data = Data.Value;
        foreach (var domain in Domains)
        {
            var expected = new string[4101];
            for (var n = 0; n <= 4100; n++) expected[n] = Reference(domain, data.AsSpan(0, n));
            ForEachWidth(width =>
            {
                for (var n = 0; n <= 4100; n++)
                {
                    var actual = Ours(domain, data.AsSpan(0, n), 1, parallel: false);
                    if (actual != expected[n]) Assert.Fail($"{width}, {domain}, length {n}: {actual} != {expected[n]}");
                }
            });
        }
    }

    [Fact]
    public void PowersOfTwoUpTo64MiBMatchThePackageForEveryWidthDomainAndThreadCount()
    {
        var data = Data.Value;
        var lengths = PowerOfTwoLengths().ToArray();
        var all = Environment.ProcessorCount;
        foreach (var domain in Domains)
        {
            var expected = lengths.ToDictionary(n => n, n => Reference(domain, data.AsSpan(0, n)));
            ForEachWidth(width =>
            {
                // The lane code is exercised by every width; the tree split across threads only depends on the
                // lengths, so the narrow (slow) widths check one core and all cores only, the widest also an odd count.
                var threadCounts = width == Blake3Lanes.Widest ? new[] { 1, all, 3 } : new[] { 1, all };
                foreach (var n in lengths)
                    foreach (var threads in threadCounts)
                    {
                        if (width == Blake3LaneWidth.Scalar && n > (4 << 20) && threads == 1) continue; // all-core run covers it
                        var actual = Ours(domain, data.AsSpan(0, n), threads, parallel: true);
                        if (actual != expected[n]) Assert.Fail($"{width}, {domain}, length {n}, {threads} threads: {actual} != {expected[n]}");
                    }
            });
        }
    }

    [Fact]
    public void LargeFilesMatchThePackageForEveryWidthOnOneAndAllCoresForEveryDomain()
    {
        // From a file: the head completes the prefix's chunk, pieces are read by the tasks that hash them, the tail
        // is streamed. The file is written once and truncated to each smaller length. Every width the CPU runs is
        // forced in turn (the scalar one, slow and never chosen for whole chunks, up to 4 MiB).
        var data = Data.Value;
        var lengths = PowerOfTwoLengths().Where(n => n >= HashPrimitive.ParallelThreshold - 1).OrderDescending().ToArray();
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, data.AsSpan(0, lengths[0]).ToArray());
            var hash = HashPrimitive.Select(false);
            foreach (var n in lengths)
            {
                using (var f = new FileStream(file, FileMode.Open)) f.SetLength(n);
                foreach (var domain in Domains)
                {
                    var expected = Reference(domain, data.AsSpan(0, n));
                    ForEachWidth(width =>
                    {
                        if (width == Blake3LaneWidth.Scalar && n > (4 << 20) + 1) return;
                        foreach (var threads in new[] { 1, Environment.ProcessorCount })
                        {
                            var digest = hash.WithMaxThreads(threads).HashFile(file, domain);
                            Assert.True(expected == digest.Hash, $"{width}, {domain}, length {n}, {threads} threads");
                            Assert.Equal(n, digest.Length);
                        }
                    });
                }
            }
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void B3sumAgreesOnEveryLengthUpTo4100AndEveryPowerOfTwoForEveryDomain()
    {
        var b3sum = FindB3sum();
        if (b3sum is null)
        {
            Assert.True(Environment.GetEnvironmentVariable("REQUIEM_SKIP_B3SUM") == "1",
                "b3sum is not installed (apt-get install b3sum), or set REQUIEM_SKIP_B3SUM=1 to skip this cross-check");
            return;
        }
        var data = Data.Value;
        // Thousands of small files: on tmpfs when there is one.
        var dir = Directory.Exists("/dev/shm")
            ? Directory.CreateDirectory(Path.Combine("/dev/shm", "requiem-b3sum-" + Guid.NewGuid().ToString("N")))
            : Directory.CreateTempSubdirectory("requiem-b3sum-");
        try
        {
            foreach (var domain in Domains)
            {
                var prefix = HashDomains.Prefix(domain).ToArray();
                // Small lengths: one file each, one b3sum run over all of them.
                var names = new List<string>();
                for (var n = 0; n <= 4100; n++)
                {
                    var name = Path.Combine(dir.FullName, $"{domain}-{n}");
                    using (var f = File.Create(name)) { f.Write(prefix); f.Write(data, 0, n); }
                    names.Add(name);
                }
                var lines = Run(b3sum, names).Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(names.Count, lines.Length);
                for (var n = 0; n <= 4100; n++)
                {
                    var expected = lines[n][..64];
                    Assert.True(expected == Ours(domain, data.AsSpan(0, n), 1, parallel: false), $"{domain}, length {n}");
                }
                // Powers of two: b3sum reads the prefixed bytes from stdin.
                foreach (var n in PowerOfTwoLengths())
                {
                    var expected = RunWithInput(b3sum, prefix, data.AsMemory(0, n))[..64];
                    Assert.True(expected == Ours(domain, data.AsSpan(0, n), Environment.ProcessorCount, parallel: true), $"{domain}, length {n}");
                }
                foreach (var name in names) File.Delete(name);
            }
        }
        finally { dir.Delete(recursive: true); }
    }

    private static string? FindB3sum() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "b3sum")).FirstOrDefault(File.Exists);

    private static string Run(string exe, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true };
        psi.ArgumentList.Add("--no-names");
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return output;
    }

    private static string RunWithInput(string exe, byte[] prefix, ReadOnlyMemory<byte> data)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardInput = true };
        psi.ArgumentList.Add("--no-names");
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        using (var stdin = p.StandardInput.BaseStream)
        {
            stdin.Write(prefix);
            stdin.Write(data.Span);
        }
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return output.Result;
    }
}
