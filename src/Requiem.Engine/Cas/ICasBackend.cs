namespace Requiem.Engine.Cas;

/// <summary>One name in a backend, as a listing returns it.</summary>
public readonly record struct CasBackendItem(string Name, long Size);

/// <summary>
/// Where a store's files can live besides the local folder: a flat namespace of names with the local layout's
/// relative names (<c>objects/ab/&lt;hash&gt;[.zst]</c>, <c>refs/&lt;name&gt;</c>, <c>ac/&lt;xx&gt;/&lt;key&gt;.json</c>).
/// Objects are immutable and created at most once; small documents (refs, action-cache entries) may be replaced.
/// Implementations are thread-safe. A failure to reach the backend is a <see cref="CasBackendUnavailableException"/>;
/// no message an implementation produces may contain a credential.
/// </summary>
public interface ICasBackend
{
    /// <summary>What and where the backend is, for messages (never a credential).</summary>
    string Description { get; }

    /// <summary>Checks that the backend answers (and creates the container when missing); throws when it does not.</summary>
    void Probe(CancellationToken cancel);

    bool Exists(string name, CancellationToken cancel);

    /// <summary>Uploads a file under a name unless the name exists; false when it already existed (nothing was written).</summary>
    bool CreateFromFile(string name, string path, CancellationToken cancel);

    /// <summary>Writes a small document; with <paramref name="overwrite"/> false, an existing one is kept (returns false).</summary>
    bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel);

    /// <summary>Streams a name's bytes into <paramref name="destination"/>; false when the name is absent.</summary>
    bool Download(string name, Stream destination, CancellationToken cancel);

    /// <summary>
    /// Like <see cref="Download(string, Stream, CancellationToken)"/>, but a blob longer than <paramref name="maxBytes"/>
    /// is refused (<see cref="CasBlobTooLargeException"/>): before a byte is written when the backend knows the length,
    /// and at the latest once more than <paramref name="maxBytes"/> bytes arrived, so no more than that is ever written.
    /// </summary>
    bool Download(string name, Stream destination, long maxBytes, CancellationToken cancel) =>
        Download(name, new CappedWriteStream(destination, maxBytes, name), cancel);

    /// <summary>Every name under a prefix (e.g. <c>objects/</c>), in no particular order.</summary>
    IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel);

    /// <summary>Removes a name (tests and repair); false when it was absent.</summary>
    bool Delete(string name, CancellationToken cancel);
}

/// <summary>The backend could not be reached (network, DNS, refused, timed out, authentication): the caller goes on locally.</summary>
public sealed class CasBackendUnavailableException : Exception
{
    public CasBackendUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A remote blob is longer than the bound for its kind (<c>remote.max_object_bytes</c> for objects): not stored.</summary>
public sealed class CasBlobTooLargeException(string name, long maxBytes, long length = -1)
    : Exception(length >= 0 ? $"The remote blob '{name}' is {length} bytes, more than the {maxBytes} allowed; it was not downloaded."
        : $"The remote blob '{name}' is more than the {maxBytes} bytes allowed; the download was stopped.")
{
    public string Name { get; } = name;
    public long MaxBytes { get; } = maxBytes;
}

/// <summary>Writes through to a destination and throws <see cref="CasBlobTooLargeException"/> before a write would pass a bound.</summary>
public sealed class CappedWriteStream(Stream inner, long maxBytes, string name) : IO.WriteOnlyStream
{
    private long _written;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_written + buffer.Length > maxBytes) throw new CasBlobTooLargeException(name, maxBytes);
        inner.Write(buffer);
        _written += buffer.Length;
    }

    public override long Length => _written;
    public override void Flush() => inner.Flush();
}
