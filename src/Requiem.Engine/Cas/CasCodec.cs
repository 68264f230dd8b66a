using ZstdSharp;

namespace Requiem.Engine.Cas;

/// <summary>
/// How object bytes are encoded: identity (the raw bytes) or one standard zstd frame. Reading the content size a
/// frame records, decoding streams and the per-thread compressor live here; the store decides which encoding to keep.
/// </summary>
public static class CasCodec
{
    [ThreadStatic] private static Compressor? t_compressor;
    [ThreadStatic] private static int t_compressorLevel;

    /// <summary>A stream of the uncompressed bytes of an object file's stream in the given encoding (the source stays open).</summary>
    public static Stream OpenDecoding(Stream stored, CasEncoding encoding) =>
        encoding == CasEncoding.Zstd ? new DecompressionStream(stored, leaveOpen: true) : stored;

    /// <summary>This thread's compressor at <paramref name="level"/> (compressors are costly to create; one per thread is reused).</summary>
    internal static Compressor GetCompressor(int level)
    {
        if (t_compressor is null || t_compressorLevel != level)
        {
            t_compressor?.Dispose();
            t_compressor = new Compressor(level);
            t_compressorLevel = level;
        }
        return t_compressor;
    }

    /// <summary>The uncompressed size recorded in a zstd frame header, or -1 when the frame does not record it.</summary>
    public static long ReadZstdContentSize(string path)
    {
        Span<byte> header = stackalloc byte[18];
        try
        {
            using var handle = IO.StoreFile.OpenObject(path, out _);
            var n = RandomAccess.Read(handle, header, 0);
            return ParseZstdContentSize(header[..n]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>Frame_Content_Size from a zstd frame header (RFC 8878 section 3.1.1.1), or -1 when absent or not a zstd frame.</summary>
    public static long ParseZstdContentSize(ReadOnlySpan<byte> h)
    {
        if (h.Length < 5 || h[0] != 0x28 || h[1] != 0xB5 || h[2] != 0x2F || h[3] != 0xFD) return -1;
        var descriptor = h[4];
        var fcsFlag = descriptor >> 6;
        var singleSegment = (descriptor & 0x20) != 0;
        var dictIdSize = (descriptor & 0x03) switch { 0 => 0, 1 => 1, 2 => 2, _ => 4 };
        var fcsSize = fcsFlag switch { 0 => singleSegment ? 1 : 0, 1 => 2, 2 => 4, _ => 8 };
        if (fcsSize == 0) return -1;
        var offset = 5 + (singleSegment ? 0 : 1) + dictIdSize;
        if (h.Length < offset + fcsSize) return -1;
        ulong value = 0;
        for (var i = fcsSize - 1; i >= 0; i--) value = (value << 8) | h[offset + i];
        if (fcsSize == 2) value += 256;
        return value > long.MaxValue ? -1 : (long)value;
    }
}
