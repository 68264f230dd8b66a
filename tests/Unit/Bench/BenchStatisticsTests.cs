using Requiem.Engine;
using Requiem.Engine.Bench;
using Requiem.Engine.Hashing;
using Xunit;

namespace Requiem.Tests.Bench;

public class BenchStatisticsTests
{
    [Fact]
    public void SummarizeMatchesHandComputedFigures()
    {
        var s = BenchStatistics.Summarize(new double[] { 5, 1, 3, 2, 4, 100 })!;
        Assert.Equal(6, s.Count);
        Assert.Equal(1, s.Min);
        Assert.Equal(100, s.Max);
        Assert.Equal(3.5, s.Median);
        Assert.Equal(115.0 / 6, s.Mean, 10);
        // sample stddev of {1,2,3,4,5,100}
        var mean = 115.0 / 6;
        var sd = Math.Sqrt(new double[] { 1, 2, 3, 4, 5, 100 }.Sum(v => (v - mean) * (v - mean)) / 5);
        Assert.Equal(sd, s.Stddev, 10);
        // |x − 3.5| = {2.5,1.5,0.5,0.5,1.5,96.5} → median 1.5
        Assert.Equal(1.5, s.Mad);
        // type-7 p95: h = 5 × 0.95 = 4.75 → 5 + 0.75 × 95
        Assert.Equal(76.25, s.P95, 10);
        // modified z of 100 = 0.6745 × 96.5 / 1.5 ≈ 43 → one high outlier, none low
        Assert.Equal(1, s.OutliersHigh);
        Assert.Equal(0, s.OutliersLow);
    }

    [Fact]
    public void OutliersUseMeanAbsoluteDeviationWhenMadIsZero()
    {
        var s = BenchStatistics.Summarize(new double[] { 10, 10, 10, 10, 10, 10, 10, 50 })!;
        Assert.Equal(0, s.Mad);
        Assert.Equal(1, s.OutliersHigh);
        var flat = BenchStatistics.Summarize(new double[] { 7, 7, 7 })!;
        Assert.Equal(0, flat.OutliersHigh + flat.OutliersLow);
    }

    [Fact]
    public void MannWhitneyNormalApproximationOnCompleteSeparation()
    {
        // x = 1..5, y = 6..10: U = 25, μ = 12.5, σ = sqrt(25·11/12), z = (25 − 12.5 − 0.5)/σ = 2.5067 → p ≈ 0.00609
        var (u, p) = BenchStatistics.MannWhitneyGreater(new double[] { 1, 2, 3, 4, 5 }, new double[] { 6, 7, 8, 9, 10 });
        Assert.Equal(25, u);
        Assert.Equal(0.00609, p, 4);
        var (_, reverse) = BenchStatistics.MannWhitneyGreater(new double[] { 6, 7, 8, 9, 10 }, new double[] { 1, 2, 3, 4, 5 });
        Assert.True(reverse > 0.99);
    }

    [Fact]
    public void MannWhitneyAgreesWithTheExactDistributionWithoutTies()
    {
        // Exact one-sided p by enumerating every split of the ranks: an independent way to the same number.
        var rng = new Random(7);
        for (var trial = 0; trial < 20; trial++)
        {
            var x = Enumerable.Range(0, 8).Select(_ => rng.NextDouble()).ToArray();
            var y = Enumerable.Range(0, 8).Select(_ => rng.NextDouble() + 0.3).ToArray();
            var (u, p) = BenchStatistics.MannWhitneyGreater(x, y);
            var all = x.Concat(y).OrderBy(v => v).ToArray();
            var rank = all.Select((v, i) => (v, r: i + 1)).ToDictionary(t => t.v, t => t.r);
            var observed = y.Sum(v => rank[v]);
            long atLeast = 0, total = 0;
            foreach (var combo in Combinations(16, 8))
            {
                total++;
                if (combo.Sum(i => i + 1) >= observed) atLeast++;
            }
            var exact = (double)atLeast / total;
            Assert.Equal(observed - 8 * 9 / 2.0, u);
            Assert.True(Math.Abs(exact - p) < 0.015, $"normal approximation {p} vs exact {exact}");
        }
    }

    private static IEnumerable<int[]> Combinations(int n, int k)
    {
        var c = Enumerable.Range(0, k).ToArray();
        while (true)
        {
            yield return c;
            var i = k - 1;
            while (i >= 0 && c[i] == n - k + i) i--;
            if (i < 0) yield break;
            c[i]++;
            for (var j = i + 1; j < k; j++) c[j] = c[j - 1] + 1;
        }
    }

    [Fact]
    public void MannWhitneyHandlesAllTies()
    {
        var (_, p) = BenchStatistics.MannWhitneyGreater(new double[] { 1, 1, 1 }, new double[] { 1, 1, 1 });
        Assert.Equal(1, p);
    }

    [Fact]
    public void BootstrapIntervalBracketsTheMedianRatioAndIsReproducible()
    {
        var x = Enumerable.Range(0, 20).Select(i => 10 + i % 5 * 0.1).ToArray();
        var y = x.Select(v => v * 2).ToArray();
        var (lo, hi) = BenchStatistics.BootstrapMedianRatio(x, y, 0.95);
        Assert.InRange(2.0, lo, hi);
        Assert.True(hi - lo < 0.1);
        Assert.Equal((lo, hi), BenchStatistics.BootstrapMedianRatio(x, y, 0.95));
    }

    [Fact]
    public void NormalCdfKnownValues()
    {
        Assert.True(Math.Abs(BenchStatistics.NormalCdf(0) - 0.5) < 1e-6);
        Assert.True(Math.Abs(BenchStatistics.NormalCdf(1.96) - 0.9750021) < 1e-6);
        Assert.True(Math.Abs(BenchStatistics.NormalCdf(-1) - 0.1586553) < 1e-6);
    }
}

public class BenchComparerTests
{
    private static BenchReport Report(string specName, params (string Case, double[] Walls)[] cases)
    {
        var hash = HashPrimitive.Select(false);
        var spec = new BenchSpec { Name = specName, Cases = cases.Select(c => new BenchCase { Name = c.Case, CommandLine = "true" }).ToList() };
        var empty = hash.HashBytes(ReadOnlySpan<byte>.Empty, HashDomain.Cas);
        return new BenchReport
        {
            BenchReportVersion = "1",
            Tool = new BenchTool { Name = "requiem", Version = "test" },
            SpecDigest = spec.ComputeDigest(hash),
            Spec = spec,
            Machine = BenchRunner.DescribeMachine(),
            Measurement = "test",
            HashAlgorithm = "BLAKE3",
            StartedAt = DateTimeOffset.UnixEpoch,
            FinishedAt = DateTimeOffset.UnixEpoch,
            Cases = cases.Select(c => new BenchCaseReport
            {
                Name = c.Case,
                Command = "true",
                Runs = c.Walls.Select((w, i) => new BenchRun
                {
                    Index = i, Warmup = false, WallMs = w, UserMs = w / 2, SystemMs = 0, ExitCode = 0, TimedOut = false,
                    StdoutDigest = empty, StderrDigest = empty, StdoutBytes = 0, StderrBytes = 0,
                    OutputFiles = new SortedDictionary<string, string?>(),
                    ResultDigest = BenchRunner.ResultDigest(hash, 0, empty, empty, new SortedDictionary<string, string?>()),
                }).ToList(),
                Statistics = new BenchCaseStatistics { WallMs = BenchStatistics.Summarize(c.Walls)!, FailedRuns = 0 },
            }).ToList(),
        };
    }

    private static double[] Around(double center, int n, int seed) =>
        Enumerable.Range(0, n).Select(i => center * (1 + (new Random(seed + i).NextDouble() - 0.5) * 0.04)).ToArray();

    [Fact]
    public void FiveTimesSlowerIsARegression()
    {
        var c = BenchComparer.Compare(Report("s", ("a", Around(10, 10, 1))), Report("s", ("a", Around(50, 10, 2))));
        Assert.True(c.Regressed);
        Assert.Equal(new[] { "a" }, c.RegressedCases);
        var wall = c.Cases[0].Metric("wall_ms")!;
        Assert.InRange(wall.Ratio, 4.5, 5.5);
        Assert.True(wall.PValueOverThreshold < 0.05);
    }

    [Fact]
    public void ASlowdownWithinTheThresholdOrNotSignificantIsNot()
    {
        // 5 % slower: real but under the 10 % threshold.
        Assert.False(BenchComparer.Compare(Report("s", ("a", Around(10, 10, 1))), Report("s", ("a", Around(10.5, 10, 3)))).Regressed);
        // 3 runs each, 20 % slower: over the threshold but three runs cannot show it is real.
        var few = BenchComparer.Compare(Report("s", ("a", new double[] { 10, 12, 9 })), Report("s", ("a", new double[] { 12, 10, 14 })));
        Assert.False(few.Regressed);
        Assert.Contains("not", few.Cases[0].Metric("wall_ms")!.Statement);
    }

    [Fact]
    public void ABurstThatSlowsSomeRunsIsNoise()
    {
        // Half the current runs hit by a 3× burst: the median moves a lot, the fast quarter does not.
        var baseRuns = Around(10, 12, 1);
        var cur = Around(10, 12, 5).Select((v, i) => i % 2 == 0 ? v * 3 : v).ToArray();
        var c = BenchComparer.Compare(Report("s", ("a", baseRuns)), Report("s", ("a", cur)));
        Assert.False(c.Regressed);
        Assert.Contains("bursty noise", c.Cases[0].Metric("wall_ms")!.Statement);
    }

    private static BenchReport WithProbe(BenchReport r, double probeMs) => new()
    {
        BenchReportVersion = r.BenchReportVersion, Tool = r.Tool, SpecDigest = r.SpecDigest, Spec = r.Spec, Machine = r.Machine,
        Measurement = r.Measurement, HashAlgorithm = r.HashAlgorithm, StartedAt = r.StartedAt, FinishedAt = r.FinishedAt, Cases = r.Cases,
        Calibration = new BenchCalibration { Command = "probe", WallMs = Around(probeMs, 10, 42).ToList(), Statistics = BenchStatistics.Summarize(Around(probeMs, 10, 42))! },
    };

    [Fact]
    public void ASlowerMachineRaisesTheBarButDoesNotHideARealRegression()
    {
        var baseline = WithProbe(Report("s", ("a", Around(10, 10, 1))), 4);
        // The probe says the machine was twice as slow; the case is 1.5× slower: the machine explains it.
        var loaded = BenchComparer.Compare(baseline, WithProbe(Report("s", ("a", Around(15, 10, 2))), 8));
        Assert.InRange(loaded.MachineSlowdownPercent!.Value, 90, 110);
        Assert.False(loaded.Regressed);
        Assert.Contains("the machine, not the code", loaded.Cases[0].Metric("wall_ms")!.Statement);
        // 5× slower is more than the machine's 2× can explain.
        Assert.True(BenchComparer.Compare(baseline, WithProbe(Report("s", ("a", Around(50, 10, 3))), 8)).Regressed);
        // Without calibration on one side the plain rule applies.
        Assert.True(BenchComparer.Compare(baseline, Report("s", ("a", Around(15, 10, 2)))).Regressed);
        // A faster machine never lowers the bar.
        Assert.False(BenchComparer.Compare(baseline, WithProbe(Report("s", ("a", Around(10.5, 10, 2))), 2)).Regressed);
    }

    [Fact]
    public void MismatchedReportsGiveTypedErrors()
    {
        var a = Report("one", ("a", Around(10, 5, 1)));
        var b = Report("two", ("a", Around(10, 5, 1)));
        Assert.Equal("BenchSpecMismatch", Assert.Throws<RequiemException>(() => BenchComparer.Compare(a, b)).ErrorId);
        Assert.True(BenchComparer.Compare(a, b, allowSpecChange: true).SpecChanged);
        var missing = Report("one", ("z", Around(10, 5, 1)));
        var ex = Assert.Throws<RequiemException>(() => BenchComparer.Compare(a, missing, allowSpecChange: true));
        Assert.Equal("BenchCaseMissing", ex.ErrorId);
        Assert.Equal("a", ex.Target);
    }

    [Fact]
    public void ReportsAndComparisonsRoundTripThroughJson()
    {
        var a = Report("s", ("a", Around(10, 10, 1)), ("b", Around(5, 10, 9)));
        var b = Report("s", ("a", Around(30, 10, 2)), ("b", Around(5, 10, 11)));
        var reread = BenchReportIo.Parse(a.ToJson());
        Assert.Equal(a.ToJson(), reread.ToJson());
        var c = BenchComparer.Compare(a, b);
        var c2 = BenchComparison.Parse(c.ToJson());
        Assert.Equal(c.ToJson(), c2.ToJson());
        Assert.Equal(c.ToJson(), BenchComparer.Compare(reread, BenchReportIo.Parse(b.ToJson())).ToJson());
    }

    [Theory]
    [InlineData("", "InvalidJson")]
    [InlineData("[1,2]", "InvalidJson")]
    [InlineData("{\"bench_comparison_version\":\"1\"}", "NotABenchReport")]
    [InlineData("{\"cases\":[]}", "NotABenchReport")]
    [InlineData("{\"bench_report_version\":\"1\"}", "InvalidJson")]
    public void MalformedReportsGiveTypedErrors(string json, string id)
    {
        Assert.Equal(id, Assert.Throws<RequiemException>(() => BenchReportIo.Parse(json)).ErrorId);
    }
}

public class BenchSpecTests
{
    [Theory]
    [InlineData("MinTimeSeconds", "min_time_seconds")]
    [InlineData("CommandLine", "command_line")]
    [InlineData("OutputFiles", "output_files")]
    [InlineData("timeout_ms", "timeout_ms")]
    [InlineData("Runs", "runs")]
    [InlineData("runs", "runs")]
    public void PascalCaseKeysMapToTheJsonFields(string key, string expected) => Assert.Equal(expected, BenchSpec.ToSnake(key));

    [Fact]
    public void TheDigestCoversTheWholeSpecAndIgnoresKeyOrder()
    {
        var hash = HashPrimitive.Select(false);
        var a = BenchSpec.Parse("{\"runs\":3,\"cases\":[{\"name\":\"x\",\"command_line\":\"true\"}]}");
        var b = BenchSpec.Parse("{\"cases\":[{\"command_line\":\"true\",\"name\":\"x\"}],\"runs\":3}");
        var c = BenchSpec.Parse("{\"runs\":4,\"cases\":[{\"name\":\"x\",\"command_line\":\"true\"}]}");
        Assert.Equal(a.ComputeDigest(hash), b.ComputeDigest(hash));
        Assert.NotEqual(a.ComputeDigest(hash), c.ComputeDigest(hash));
    }

    [Fact]
    public void ArgvCasesKeepTheProgramFirst()
    {
        var s = BenchSpec.Parse("{\"cases\":[{\"name\":\"x\",\"command\":\"/bin/echo\",\"argv\":[\"a b\",\"c\"]}]}");
        Assert.Equal(new[] { "/bin/echo", "a b", "c" }, s.Cases[0].ToArgv());
    }
}

public class DriftTests
{
    [Fact]
    public void ExcerptEscapesControlCharactersAndStopsAtTheLineEnd()
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes("first\nsec\tond\x01 line\nthird");
        Assert.Equal("sec\\tond\\x01 line", DriftAnalyzer.Excerpt(bytes, 6));
        Assert.Equal("(end of output)", DriftAnalyzer.Excerpt(bytes, bytes.Length));
    }

    [Fact]
    public void CiEscapingFollowsTheRunnersRules()
    {
        Assert.Equal("a%25b%0Ac", CiReporter.EscapeGitHubData("a%b\nc"));
        Assert.Equal("x%3A y%2C z", CiReporter.EscapeGitHubProperty("x: y, z"));
        Assert.Equal("a%AZP25b%3Bc%5D", CiReporter.EscapeAzure("a%b;c]"));
    }
}
