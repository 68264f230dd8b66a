using System.Security.Cryptography;

namespace Requiem.Engine.Hashing;

/// <summary>An incremental hasher of the selected primitive, already primed with the domain prefix.</summary>
public abstract class RequiemHasher : IDisposable
{
    public abstract void Update(ReadOnlySpan<byte> data);

    /// <summary>Like <see cref="Update"/>, but may use several cores for large inputs.</summary>
    public virtual void UpdateParallel(ReadOnlySpan<byte> data) => Update(data);

    /// <summary>Finishes and returns the lowercase hex digest.</summary>
    public abstract string FinalizeHex();

    public abstract void Dispose();
}

/// <summary>
/// BLAKE3 through the module's own <see cref="Blake3Compact"/>: the state is reused per thread, and
/// <see cref="UpdateParallel"/> hashes whole subtrees on up to <c>maxThreads</c> cores.
/// </summary>
internal sealed class CompactBlake3Hasher : RequiemHasher
{
    [ThreadStatic] private static Blake3Compact? t_spare;
    private Blake3Compact? _state;
    private readonly int _maxThreads;

    public CompactBlake3Hasher(HashDomain domain, int maxThreads = 1)
    {
        _maxThreads = Math.Max(1, maxThreads);
        _state = t_spare ?? new Blake3Compact();
        t_spare = null;
        _state.Reset();
        var prefix = HashDomains.Prefix(domain);
        if (!prefix.IsEmpty) _state.Update(prefix);
    }

    internal Blake3Compact State => _state ?? throw new ObjectDisposedException(nameof(CompactBlake3Hasher));

    internal int MaxThreads => _maxThreads;

    public override void Update(ReadOnlySpan<byte> data) => State.Update(data);

    public override void UpdateParallel(ReadOnlySpan<byte> data) => State.Update(data, _maxThreads);

    public override string FinalizeHex()
    {
        Span<byte> digest = stackalloc byte[32];
        State.Finalize(digest);
        return Hex.ToLower(digest);
    }

    public override void Dispose()
    {
        if (_state is null) return;
        t_spare = _state;
        _state = null;
    }
}

/// <summary>SHA-256, used only when BLAKE3 fails its self-test and the caller explicitly allowed a fallback.</summary>
internal sealed class Sha256FallbackHasher : RequiemHasher
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public Sha256FallbackHasher(HashDomain domain)
    {
        var prefix = HashDomains.Prefix(domain);
        if (!prefix.IsEmpty) _hash.AppendData(prefix);
    }

    public override void Update(ReadOnlySpan<byte> data) => _hash.AppendData(data);

    public override string FinalizeHex()
    {
        Span<byte> digest = stackalloc byte[32];
        _hash.GetHashAndReset(digest);
        return Hex.ToLower(digest);
    }

    public override void Dispose() => _hash.Dispose();
}
