using System.Collections;
using System.Management.Automation;
using Requiem.Engine;
using Requiem.Engine.Bench;
using Requiem.Engine.Cas;
using Requiem.Engine.Proof;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// Turns what a user passes for a report or spec (an object of the right type, a path, a FileInfo, JSON text,
/// a hashtable, or the PSCustomObject that ConvertFrom-Json made) into the engine type.
/// </summary>
internal static class BenchInput
{
    public static object? Unwrap(object? value) => value is PSObject pso ? pso.BaseObject : value;

    /// <summary>A plain graph (Dictionary / List / scalars) from PSObjects, hashtables and arrays.</summary>
    public static object? ToGraph(object? value)
    {
        switch (value)
        {
            case null: return null;
            case PSObject pso when pso.BaseObject is PSCustomObject:
            {
                var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var p in pso.Properties) d[p.Name] = ToGraph(p.Value);
                return d;
            }
            case PSObject pso: return ToGraph(pso.BaseObject);
            case string or bool or int or long or double or decimal or float or short or byte or DateTime or DateTimeOffset: return value;
            case System.Numerics.BigInteger bi: return (double)bi;
            case IDictionary dict:
            {
                var d = new System.Collections.Specialized.OrderedDictionary();
                foreach (DictionaryEntry e in dict) d[e.Key.ToString() ?? ""] = ToGraph(e.Value);
                return d;
            }
            case IEnumerable list:
            {
                var l = new List<object?>();
                foreach (var item in list) l.Add(ToGraph(item));
                return l;
            }
            default: return value;
        }
    }

    /// <summary>
    /// A bench report from: BenchReport, FileInfo, a path, JSON text, or the object ConvertFrom-Json gave.
    /// Paths are resolved by <paramref name="resolvePath"/> (relative to the PowerShell location).
    /// </summary>
    public static BenchReport Report(object? input, Func<string, string> resolvePath, string what)
    {
        var value = Unwrap(input);
        switch (value)
        {
            case null:
                throw new RequiemException("InvalidBenchReport", ErrorKind.InvalidArgument, $"{what} is null.", null);
            case BenchReport r:
                return r;
            case FileInfo fi:
                return BenchReportIo.Load(fi.FullName);
            case string s when s.TrimStart().StartsWith('{'):
                return BenchReportIo.Parse(s, what);
            case string s:
                return BenchReportIo.Load(resolvePath(s));
            case BenchComparison or DriftReport or BenchSpec:
                throw new RequiemException("NotABenchReport", ErrorKind.InvalidArgument, $"{what} is a {value.GetType().Name}, not a bench report.", value);
            default:
                var json = BenchSpec.GraphToJson(ToGraph(input));
                return BenchReportIo.Parse(json, what);
        }
    }

    /// <summary>
    /// A bench report to analyse, or a saved drift report to render again (Measure-RequiemDrift): the same inputs as
    /// <see cref="Report"/>, where a document with <c>drift_report_version</c> is read as a drift report.
    /// </summary>
    public static object ReportOrDrift(object? input, Func<string, string> resolvePath, string what)
    {
        var value = Unwrap(input);
        switch (value)
        {
            case DriftReport or BenchReport:
                return value;
            case FileInfo fi:
                return ParseReportOrDrift(BenchReportIo.ReadText(fi.FullName), fi.FullName);
            case string s when s.TrimStart().StartsWith('{'):
                return ParseReportOrDrift(s, what);
            case string s:
                var path = resolvePath(s);
                return ParseReportOrDrift(BenchReportIo.ReadText(path), path);
            case null or BenchComparison or BenchSpec:
                return Report(input, resolvePath, what);   // the typed error for these
            default:
                return ParseReportOrDrift(BenchSpec.GraphToJson(ToGraph(input)), what);
        }
    }

    private static object ParseReportOrDrift(string json, object target) =>
        json.Contains("\"drift_report_version\"", StringComparison.Ordinal) && !json.Contains("\"bench_report_version\"", StringComparison.Ordinal)
            ? DriftReport.Parse(json, target)
            : BenchReportIo.Parse(json, target);

    /// <summary>
    /// A comparison, drift report or bench report — as an object, or read from a path / JSON text / ConvertFrom-Json
    /// object — or a proof or CAS verification result (objects only: they have no JSON form).
    /// </summary>
    public static object AnyDocument(object? input, Func<string, string> resolvePath)
    {
        var value = Unwrap(input);
        string json, target;
        switch (value)
        {
            case BenchComparison or DriftReport or BenchReport or ProofVerification or CasVerifyReport:
                return value;
            case null:
                throw new RequiemException("UnsupportedInputType", ErrorKind.InvalidArgument, "The input is null.", null);
            case string s when s.TrimStart().StartsWith('{'):
                json = s; target = "input";
                break;
            case string or FileInfo:
                target = value is FileInfo fi ? fi.FullName : resolvePath((string)value);
                json = InputFile.ReadAllText(target, "File");
                break;
            case PSCustomObject or IDictionary:
            case var _ when input is PSObject { BaseObject: PSCustomObject }:
                json = BenchSpec.GraphToJson(ToGraph(input)); target = "input";
                break;
            default:
                throw new RequiemException("UnsupportedInputType", ErrorKind.InvalidArgument,
                    $"Cannot write a CI report for a {value.GetType().Name}; {CiReporter.SupportedInputs}.", value);
        }
        if (json.Contains("\"bench_comparison_version\"", StringComparison.Ordinal) && !json.Contains("\"bench_report_version\"", StringComparison.Ordinal))
            return BenchComparison.Parse(json, target);
        if (json.Contains("\"drift_report_version\"", StringComparison.Ordinal) && !json.Contains("\"bench_report_version\"", StringComparison.Ordinal))
            return DriftReport.Parse(json, target);
        return BenchReportIo.Parse(json, target);
    }

    public static BenchSpec Spec(object? input, Func<string, string> resolvePath)
    {
        var value = Unwrap(input);
        switch (value)
        {
            case null:
                throw new RequiemException("InvalidBenchSpec", ErrorKind.InvalidArgument, "The spec is null.", null);
            case BenchSpec s:
                return s.Validate();
            case FileInfo fi:
                return LoadSpec(fi.FullName);
            case string s when s.TrimStart().StartsWith('{'):
                return BenchSpec.Parse(s, "spec");
            case string s:
                return LoadSpec(resolvePath(s));
            default:
                return BenchSpec.FromObjectGraph(ToGraph(input)!);
        }
    }

    private static BenchSpec LoadSpec(string path)
    {
        return BenchSpec.Parse(InputFile.ReadAllText(path, "Bench spec"), path);
    }
}
