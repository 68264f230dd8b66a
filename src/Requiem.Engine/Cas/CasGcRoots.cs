namespace Requiem.Engine.Cas;

/// <summary>A garbage-collection root that is not a ref: an object kept alive by something outside refs/ (e.g. an action-cache entry).</summary>
/// <param name="Hash">The object kept.</param>
/// <param name="From">Who keeps it (reported for missing objects), e.g. <c>ac:&lt;key&gt;</c>.</param>
/// <param name="IsManifest">Read it as a manifest and keep what it references too.</param>
public readonly record struct CasGcRoot(string Hash, string From, bool IsManifest);

/// <summary>Supplies garbage-collection roots besides the refs (see <see cref="CasGcOptions.RootSources"/>).</summary>
public interface ICasGcRootSource
{
    IEnumerable<CasGcRoot> EnumerateRoots(CasStore store, CancellationToken cancel);
}
