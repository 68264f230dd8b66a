using System.Globalization;

namespace Requiem.Engine.Tenants;

/// <summary>
/// A tenant's byte quota: the stored (on-disk) size of its objects may not exceed <see cref="LimitBytes"/>. Checked
/// before each new object becomes visible, so a put over the quota fails with <c>TenantQuotaExceeded</c> and leaves
/// nothing behind; objects already stored (deduplicated puts) cost nothing.
/// </summary>
/// <remarks>
/// Usage is measured once per store handle (a scan of <c>objects/</c>) and then counted up by this handle's writes. Puts
/// by several processes at the same moment each see only their own writes since their scan, so together they can
/// overshoot by what they write concurrently; the next handle measures again.
/// </remarks>
public sealed class TenantQuota
{
    private readonly object _lock = new();
    private long? _used;

    public TenantQuota(string tenant, long limitBytes, string objectsDirectory)
    {
        Tenant = tenant;
        LimitBytes = limitBytes;
        ObjectsDirectory = objectsDirectory;
    }

    public string Tenant { get; }
    public long LimitBytes { get; }
    public string ObjectsDirectory { get; }

    /// <summary>Bytes the tenant's objects take on disk now (as this handle knows it).</summary>
    public long UsedBytes
    {
        get { lock (_lock) return _used ??= Measure(ObjectsDirectory); }
    }

    /// <summary>Counts <paramref name="bytes"/> against the quota, or throws <c>TenantQuotaExceeded</c> without counting them.</summary>
    public void Reserve(long bytes)
    {
        lock (_lock)
        {
            var used = _used ??= Measure(ObjectsDirectory);
            if (used + bytes > LimitBytes)
                throw new RequiemException("TenantQuotaExceeded", ErrorKind.LimitsExceeded,
                    string.Create(CultureInfo.InvariantCulture,
                        $"Tenant '{Tenant}' is over its quota: storing {bytes} more bytes would make {used + bytes} of {LimitBytes} allowed (tenants.{Tenant}.quota_bytes in the config). Nothing was stored; remove refs and run Optimize-RequiemCas -Tenant {Tenant}, or raise the quota."),
                    Tenant);
            _used = used + bytes;
        }
    }

    internal static long Measure(string objectsDirectory)
    {
        if (!Directory.Exists(objectsDirectory)) return 0;
        long total = 0;
        foreach (var file in new DirectoryInfo(objectsDirectory).EnumerateFiles("*", SearchOption.AllDirectories))
        {
            try { total += file.Length; }
            catch (FileNotFoundException) { } // removed by a collection meanwhile
        }
        return total;
    }
}
