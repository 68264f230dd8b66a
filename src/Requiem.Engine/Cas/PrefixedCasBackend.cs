namespace Requiem.Engine.Cas;

/// <summary>
/// A backend seen under a fixed name prefix — a tenant's store in a shared container lives under
/// <c>tenants/&lt;name&gt;/</c>, as it does under the local store root — so one tenant's names never reach another's.
/// </summary>
public sealed class PrefixedCasBackend : ICasBackend
{
    private readonly ICasBackend _inner;
    private readonly string _prefix;

    public PrefixedCasBackend(ICasBackend inner, string prefix)
    {
        _inner = inner;
        _prefix = prefix.EndsWith('/') ? prefix : prefix + "/";
    }

    public string Description => $"{_inner.Description}, under {_prefix}";
    public void Probe(CancellationToken cancel) => _inner.Probe(cancel);
    public bool Exists(string name, CancellationToken cancel) => _inner.Exists(_prefix + name, cancel);
    public bool CreateFromFile(string name, string path, CancellationToken cancel) => _inner.CreateFromFile(_prefix + name, path, cancel);
    public bool PutDocument(string name, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancel) =>
        _inner.PutDocument(_prefix + name, content, overwrite, cancel);
    public bool Download(string name, Stream destination, CancellationToken cancel) => _inner.Download(_prefix + name, destination, cancel);
    public bool Download(string name, Stream destination, long maxBytes, CancellationToken cancel) => _inner.Download(_prefix + name, destination, maxBytes, cancel);
    public bool Delete(string name, CancellationToken cancel) => _inner.Delete(_prefix + name, cancel);

    public IEnumerable<CasBackendItem> List(string prefix, CancellationToken cancel)
    {
        foreach (var item in _inner.List(_prefix + prefix, cancel))
            yield return item with { Name = item.Name[_prefix.Length..] };
    }
}
