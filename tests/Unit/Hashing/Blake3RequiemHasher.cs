using Requiem.Engine.Hashing;

namespace Requiem.Tests.Hashing;

/// <summary>
/// BLAKE3 through the Blake3 package: the reference the module's own implementation is checked against. It lives
/// in the tests only; the module neither ships nor loads the package.
/// </summary>
internal sealed class Blake3RequiemHasher : RequiemHasher
{
    private global::Blake3.Hasher _hasher;
    private bool _disposed;

    public Blake3RequiemHasher(HashDomain domain)
    {
        _hasher = global::Blake3.Hasher.New();
        var prefix = HashDomains.Prefix(domain);
        if (!prefix.IsEmpty) _hasher.Update(prefix);
    }

    public override void Update(ReadOnlySpan<byte> data) => _hasher.Update(data);

    public override void UpdateParallel(ReadOnlySpan<byte> data) => _hasher.UpdateWithJoin(data);

    public override string FinalizeHex()
    {
        Span<byte> digest = stackalloc byte[32];
        _hasher.Finalize(digest);
        return Hex.ToLower(digest);
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _hasher.Dispose();
    }
}
