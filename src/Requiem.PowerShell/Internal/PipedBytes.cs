using System.Management.Automation;

namespace Requiem.PowerShell.Internal;

/// <summary>
/// PowerShell unrolls a byte[] written to the pipeline (<c>[IO.File]::ReadAllBytes($f) | Get-RequiemDigest</c>), so the
/// cmdlet receives one byte per record. This collects consecutive piped bytes so they are treated as the one input
/// the user meant, instead of one input (or one error) per byte.
/// </summary>
internal sealed class PipedBytes
{
    private MemoryStream? _buffer;

    /// <summary>True (and the byte kept) when <paramref name="value"/> is a single byte that arrived through the pipeline.</summary>
    public bool TryAdd(object? value, bool fromPipeline)
    {
        if (!fromPipeline || (value is PSObject pso ? pso.BaseObject : value) is not byte b) return false;
        (_buffer ??= new MemoryStream()).WriteByte(b);
        return true;
    }

    /// <summary>The bytes collected since the last call, or null when there are none.</summary>
    public byte[]? Take()
    {
        if (_buffer is null) return null;
        var bytes = _buffer.ToArray();
        _buffer = null;
        return bytes;
    }

    public static string VerboseNote(int count) =>
        $"Collected {count} byte(s) that arrived one at a time through the pipeline (PowerShell unrolls byte arrays) into one input; " +
        "-InputObject $bytes or -LiteralPath avoids the per-byte pipeline cost.";
}
