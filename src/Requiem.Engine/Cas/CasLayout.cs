using Requiem.Engine.Hashing;

namespace Requiem.Engine.Cas;

/// <summary>
/// The names of a store, format "v2": where objects, refs, action-cache entries and temp files live. One layout serves
/// the local store (names under its root folder) and every remote backend (the same names as blob names), so a
/// container mirrors a store folder name for name. See docs/CONTRACT.md, "CAS store format v2".
/// </summary>
public sealed class CasLayout
{
    public const string ConfigFileName = "config";
    public const string ZstdSuffix = ".zst";
    public const string TempSuffix = ".tmp";
    public const string ObjectsFolder = "objects";
    public const string RefsFolder = "refs";
    public const string TempFolder = "tmp";
    /// <summary>Damaged object files moved out of objects/ (<see cref="CasStore.Quarantine"/>).</summary>
    public const string QuarantineFolder = "quarantine";
    /// <summary>Action-cache entries: <c>ac/&lt;xx&gt;/&lt;key&gt;.json</c>.</summary>
    public const string ActionCacheFolder = "ac";

    public CasLayout(string root)
    {
        Root = root;
        ObjectsDirectory = Path.Combine(root, ObjectsFolder);
        TempDirectory = Path.Combine(root, TempFolder);
        QuarantineDirectory = Path.Combine(root, QuarantineFolder);
        RefsDirectory = Path.Combine(root, RefsFolder);
    }

    public string Root { get; }
    public string ObjectsDirectory { get; }
    public string TempDirectory { get; }
    public string QuarantineDirectory { get; }
    public string RefsDirectory { get; }

    /// <summary>An object's name relative to the store root, with '/' separators: <c>objects/ab/&lt;hash&gt;[.zst]</c>.</summary>
    public static string ObjectName(string hash, CasEncoding encoding)
    {
        hash = NormalizeHash(hash);
        return $"{ObjectsFolder}/{hash[..2]}/{hash}{(encoding == CasEncoding.Zstd ? ZstdSuffix : "")}";
    }

    /// <summary>A ref's name relative to the store root (<c>refs/&lt;name&gt;</c>); the ref name is validated.</summary>
    public static string RefName(string name)
    {
        ValidateRefName(name);
        return RefsFolder + "/" + name;
    }

    /// <summary>An action-cache entry's name relative to the store root: <c>ac/&lt;xx&gt;/&lt;key&gt;.json</c>.</summary>
    public static string ActionCacheName(string key)
    {
        key = Hex.NormalizeDigest(key, "action cache key");
        return $"{ActionCacheFolder}/{key[..2]}/{key}.json";
    }

    /// <summary>Final path of an object in the given encoding (the file may not exist). The hash is validated.</summary>
    public string ObjectPath(string hash, CasEncoding encoding)
    {
        hash = NormalizeHash(hash);
        var name = encoding == CasEncoding.Zstd ? hash + ZstdSuffix : hash;
        return Path.Combine(ObjectsDirectory, hash[..2], name);
    }

    /// <summary>The local path of a name relative to the root (as <see cref="ObjectName"/> and <see cref="RefName"/> give).</summary>
    public string PathOf(string relativeName) => Path.Combine(Root, relativeName.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>The ref file for <paramref name="name"/>; throws InvalidRefName for a name that is not one.</summary>
    public string RefPath(string name)
    {
        ValidateRefName(name);
        return Path.Combine(RefsDirectory, name.Replace('/', Path.DirectorySeparatorChar));
    }

    public string NewTempPath() => Path.Combine(TempDirectory, Guid.NewGuid().ToString("n") + TempSuffix);

    /// <summary>(hash, encoding) of an object file name (<c>&lt;hash&gt;</c> or <c>&lt;hash&gt;.zst</c>), or null when the name is not an object's.</summary>
    public static (string Hash, CasEncoding Encoding)? ParseObjectFileName(string name)
    {
        var encoding = CasEncoding.Identity;
        if (name.EndsWith(ZstdSuffix, StringComparison.Ordinal))
        {
            name = name[..^ZstdSuffix.Length];
            encoding = CasEncoding.Zstd;
        }
        if (!Hex.IsDigest(name) || !IsLower(name)) return null;
        return (name, encoding);
    }

    /// <summary>(hash, encoding) of a relative object name (<c>objects/ab/&lt;hash&gt;[.zst]</c>), or null when it is not one.</summary>
    public static (string Hash, CasEncoding Encoding)? ParseObjectName(string relativeName)
    {
        var parts = relativeName.Split('/');
        if (parts.Length != 3 || parts[0] != ObjectsFolder) return null;
        return ParseObjectFileName(parts[2]) is { } p && p.Hash.StartsWith(parts[1], StringComparison.Ordinal) && parts[1].Length == 2 ? p : null;
    }

    /// <summary>Ref names: segments of [A-Za-z0-9._-], separated by '/', none empty or starting with a dot (so no '..').</summary>
    public static void ValidateRefName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 200)
            throw InvalidRef(name);
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0 || segment[0] == '.') throw InvalidRef(name);
            foreach (var c in segment)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) throw InvalidRef(name);
            }
        }
    }

    internal static bool IsLower(string hex)
    {
        foreach (var c in hex) if (c is >= 'A' and <= 'F') return false;
        return true;
    }

    private static string NormalizeHash(string hash) =>
        Hex.IsDigest(hash) && IsLower(hash) ? hash : Hex.NormalizeDigest(hash, "CAS object hash");

    private static RequiemException InvalidRef(string name) =>
        new("InvalidRefName", ErrorKind.InvalidArgument,
            $"'{name}' is not a valid ref name: use segments of letters, digits, '.', '_' or '-', separated by '/' (no '..').", name);
}
