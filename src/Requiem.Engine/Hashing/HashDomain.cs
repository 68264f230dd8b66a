namespace Requiem.Engine.Hashing;

/// <summary>Domain separation exactly as the Requiem CLI: digest = H(prefix ‖ bytes).</summary>
public enum HashDomain
{
    /// <summary>Plain BLAKE3 of the bytes (what b3sum prints).</summary>
    None,
    /// <summary><c>cas:</c> ‖ raw bytes — the name of a CAS object.</summary>
    Cas,
    /// <summary><c>req:</c> ‖ canonical JSON of a request.</summary>
    Request,
    /// <summary><c>res:</c> ‖ canonical JSON of a result.</summary>
    Result,
    /// <summary><c>ac:</c> ‖ canonical JSON of an action-cache key's components (docs/CONTRACT.md "Action cache").</summary>
    ActionCache,
    /// <summary><c>audit:</c> ‖ canonical JSON of an audit log entry without its own hash (docs/CONTRACT.md).</summary>
    Audit,
}

public static class HashDomains
{
    public static ReadOnlySpan<byte> Prefix(HashDomain domain) => domain switch
    {
        HashDomain.Cas => "cas:"u8,
        HashDomain.Request => "req:"u8,
        HashDomain.Result => "res:"u8,
        HashDomain.ActionCache => "ac:"u8,
        HashDomain.Audit => "audit:"u8,
        _ => ReadOnlySpan<byte>.Empty,
    };

    public static string PrefixText(HashDomain domain) => domain switch
    {
        HashDomain.Cas => "cas:",
        HashDomain.Request => "req:",
        HashDomain.Result => "res:",
        HashDomain.ActionCache => "ac:",
        HashDomain.Audit => "audit:",
        _ => "",
    };
}
