using Requiem.Engine.Hashing;

namespace Requiem.Engine.Cas;

/// <summary>The compression a caller asks for when storing (the cmdlet's -Compress): None stores identity objects.</summary>
public enum CasCompression
{
    None,
    Zstd,
}

/// <summary>An object in the store, as Add-/Get-RequiemCasObject report it.</summary>
public sealed class CasObjectInfo
{
    /// <summary>The object's name: BLAKE3 of <c>cas:</c> ‖ the uncompressed bytes (64 lowercase hex).</summary>
    public required string Hash { get; init; }
    /// <summary>The algorithm that named the object: <c>BLAKE3</c>, or <c>SHA256</c> in a store created under the explicit fallback.</summary>
    public string Algorithm { get; init; } = HashPrimitive.Blake3Name;
    /// <summary>Uncompressed size in bytes; -1 when a zstd frame does not record it and the object was not read.</summary>
    public required long Size { get; init; }
    /// <summary>Bytes on disk.</summary>
    public required long StoredSize { get; init; }
    public required CasEncoding Encoding { get; init; }
    /// <summary>The source file the object was stored from (Add-RequiemCasObject -Path), else null.</summary>
    public string? Path { get; init; }
    /// <summary>True when the object was already in the store (deduplicated: nothing new was written).</summary>
    public bool Existed { get; init; }
    /// <summary>The object's file in the store.</summary>
    public required string ObjectPath { get; init; }
    public DateTime LastWriteTimeUtc { get; init; }
    /// <summary>True when the digest was re-computed from the stored bytes for this report.</summary>
    public bool Verified { get; init; }
    /// <summary>Stored bytes / uncompressed bytes (1 for identity objects).</summary>
    public double CompressionRatio => Size > 0 ? Math.Round((double)StoredSize / Size, 4) : 1.0;
}

/// <summary>A named root: <c>refs/&lt;name&gt;</c> holds one digest.</summary>
public sealed class CasRefInfo
{
    public required string Name { get; init; }
    public required string Hash { get; init; }
    /// <summary>False when the ref names an object that is not in the store.</summary>
    public bool Exists { get; init; }
    public DateTime LastWriteTimeUtc { get; init; }
}

/// <summary>A leftover temporary file under <c>tmp/</c> (an interrupted or in-flight write).</summary>
public sealed class CasTempFile
{
    public required string Path { get; init; }
    public long Size { get; init; }
    public DateTime LastWriteTimeUtc { get; init; }
    public TimeSpan Age { get; init; }
}

/// <summary>Counts of what one store handle did: objects and bytes written, found already stored, and read back verified.</summary>
public sealed class CasActivity
{
    public long ObjectsWritten { get; init; }
    /// <summary>Uncompressed bytes of the objects written.</summary>
    public long BytesWritten { get; init; }
    /// <summary>Bytes the written objects take on disk (after compression).</summary>
    public long StoredBytesWritten { get; init; }
    public long ObjectsDeduplicated { get; init; }
    /// <summary>Uncompressed bytes not written because the object was already stored.</summary>
    public long BytesDeduplicated { get; init; }
    /// <summary>Objects read back and re-hashed (every read verifies).</summary>
    public long ObjectsVerified { get; init; }
    public long BytesVerified { get; init; }
    public bool IsEmpty => ObjectsWritten == 0 && ObjectsDeduplicated == 0 && ObjectsVerified == 0;
}
