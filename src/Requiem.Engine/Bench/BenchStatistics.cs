namespace Requiem.Engine.Bench;

/// <summary>Descriptive statistics, the Mann-Whitney U test and a bootstrap CI of the median ratio.</summary>
public static class BenchStatistics
{
    /// <summary>Iglewicz–Hoaglin: |0.6745·(x−median)/MAD| &gt; 3.5 is an outlier.</summary>
    public const double OutlierZ = 3.5;

    /// <summary>Denominator floor for ratios, so a zero median (0 ms of user time) gives a finite ratio.</summary>
    public const double Floor = 1e-3;

    public static MetricStatistics? Summarize(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return null;
        var sorted = values.OrderBy(v => v).ToArray();
        var n = sorted.Length;
        var median = Quantile(sorted, 0.5);
        var mean = sorted.Average();
        var variance = n > 1 ? sorted.Sum(v => (v - mean) * (v - mean)) / (n - 1) : 0;
        var deviations = sorted.Select(v => Math.Abs(v - median)).OrderBy(v => v).ToArray();
        var mad = Quantile(deviations, 0.5);
        int low = 0, high = 0;
        // When more than half the runs are identical MAD is 0; fall back to the mean absolute deviation (×1.253314).
        var scale = mad > 0 ? mad / 0.6745 : deviations.Average() * 1.253314;
        if (scale > 0)
        {
            foreach (var v in sorted)
            {
                var z = (v - median) / scale;
                if (z > OutlierZ) high++;
                else if (z < -OutlierZ) low++;
            }
        }
        return new MetricStatistics
        {
            Count = n, Min = sorted[0], Max = sorted[^1], Median = median, Mean = mean, Stddev = Math.Sqrt(variance),
            Mad = mad, P95 = Quantile(sorted, 0.95), OutliersLow = low, OutliersHigh = high,
        };
    }

    /// <summary>Linear-interpolated quantile (type 7, as R and NumPy default) of sorted values.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0) return double.NaN;
        var h = (sorted.Count - 1) * q;
        var lo = (int)Math.Floor(h);
        var hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    public static double Median(IEnumerable<double> values) => Quantile(values.OrderBy(v => v).ToArray(), 0.5);

    /// <summary>
    /// One-sided Mann-Whitney U test of H1 "values in <paramref name="y"/> tend to be larger than in <paramref name="x"/>".
    /// Normal approximation with tie correction and continuity correction (adequate from about 8 runs per side);
    /// returns (U of y, p-value).
    /// </summary>
    public static (double U, double P) MannWhitneyGreater(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        int n1 = x.Count, n2 = y.Count;
        if (n1 == 0 || n2 == 0) return (double.NaN, 1);
        var all = x.Select(v => (v, g: 0)).Concat(y.Select(v => (v, g: 1))).OrderBy(t => t.v).ToArray();
        var ranks = new double[all.Length];
        double tieTerm = 0;
        for (var i = 0; i < all.Length;)
        {
            var j = i;
            while (j + 1 < all.Length && all[j + 1].v == all[i].v) j++;
            var rank = (i + j + 2) / 2.0;
            for (var k = i; k <= j; k++) ranks[k] = rank;
            var t = j - i + 1;
            tieTerm += (double)t * t * t - t;
            i = j + 1;
        }
        double r2 = 0;
        for (var i = 0; i < all.Length; i++) if (all[i].g == 1) r2 += ranks[i];
        var u2 = r2 - n2 * (n2 + 1) / 2.0;
        var mu = n1 * (double)n2 / 2;
        var n = n1 + n2;
        var sigma2 = n1 * (double)n2 / 12 * ((n + 1) - tieTerm / ((double)n * (n - 1)));
        if (sigma2 <= 0) return (u2, u2 > mu ? 0 : 1);
        var z = (u2 - mu - 0.5) / Math.Sqrt(sigma2);
        return (u2, 1 - NormalCdf(z));
    }

    /// <summary>Percentile bootstrap CI of median(y)/median(x), seeded so the same reports give the same interval.</summary>
    public static (double Low, double High) BootstrapMedianRatio(IReadOnlyList<double> x, IReadOnlyList<double> y, double confidence, int resamples = 2000, int seed = 20240601)
    {
        if (x.Count == 0 || y.Count == 0) return (double.NaN, double.NaN);
        var rng = new Random(seed);
        var ratios = new double[resamples];
        var bx = new double[x.Count];
        var by = new double[y.Count];
        for (var r = 0; r < resamples; r++)
        {
            for (var i = 0; i < bx.Length; i++) bx[i] = x[rng.Next(x.Count)];
            for (var i = 0; i < by.Length; i++) by[i] = y[rng.Next(y.Count)];
            Array.Sort(bx);
            Array.Sort(by);
            var mx = Quantile(bx, 0.5);
            var my = Quantile(by, 0.5);
            ratios[r] = my == mx ? 1 : my / Math.Max(mx, Floor);
        }
        Array.Sort(ratios);
        var alpha = 1 - confidence;
        return (Quantile(ratios, alpha / 2), Quantile(ratios, 1 - alpha / 2));
    }

    /// <summary>Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, |error| &lt; 1.5e-7).</summary>
    public static double NormalCdf(double z)
    {
        var t = 1 / (1 + 0.3275911 * Math.Abs(z) / Math.Sqrt(2));
        var erf = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-z * z / 2);
        return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
    }
}
