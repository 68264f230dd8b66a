using System.Buffers;
using Requiem.Engine.Hashing;
using ZstdSharp.Unsafe;

namespace Requiem.Engine.Cas;

/// <summary>
/// Where a downloaded object's bytes go: written to the staging file and, on the way, hashed (identity) or decoded and
/// hashed (one zstd frame), so a download is verified in the same pass that stores it — the staged file is not read
/// again before it is published. <see cref="Complete"/> says whether the bytes are the object they claim to be.
/// </summary>
internal sealed unsafe class CasDownloadSink : IO.WriteOnlyStream
{
    private const int ChunkSize = 1 << 20;

    private readonly Stream _file;
    private readonly CasEncoding _encoding;
    private readonly RequiemHasher _hasher;
    private readonly CancellationToken _cancel;
    private byte[]? _chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
    private int _chunkCount;
    private ZSTD_DCtx_s* _dctx;
    private byte[]? _decoded;
    private nuint _lastZstdResult;
    private string? _decodeError;

    public CasDownloadSink(Stream file, CasEncoding encoding, HashPrimitive hash, CancellationToken cancel)
    {
        _file = file;
        _encoding = encoding;
        _cancel = cancel;
        _hasher = hash.CreateHasher(HashDomain.Cas);
        if (encoding == CasEncoding.Zstd)
        {
            _dctx = Methods.ZSTD_createDCtx();
            _decoded = ArrayPool<byte>.Shared.Rent(ChunkSize);
        }
    }

    /// <summary>Bytes received (the stored size: the blob's length).</summary>
    public long StoredBytes { get; private set; }

    /// <summary>Bytes of content hashed (the object's size).</summary>
    public long ContentBytes { get; private set; }

    public override void Write(ReadOnlySpan<byte> data)
    {
        _cancel.ThrowIfCancellationRequested();
        StoredBytes += data.Length;
        while (data.Length > 0)
        {
            var n = Math.Min(data.Length, ChunkSize - _chunkCount);
            data[..n].CopyTo(_chunk.AsSpan(_chunkCount));
            _chunkCount += n;
            data = data[n..];
            if (_chunkCount == ChunkSize) Drain();
        }
    }

    /// <summary>Writes the buffered chunk to the file and verifies it (hashes it, or decodes and hashes it).</summary>
    private void Drain()
    {
        if (_chunkCount == 0) return;
        var chunk = _chunk.AsSpan(0, _chunkCount);
        _file.Write(chunk);
        if (_encoding == CasEncoding.Identity) Hash(chunk);
        else Decode(chunk);
        _chunkCount = 0;
    }

    private void Hash(ReadOnlySpan<byte> content)
    {
        if (content.Length >= HashPrimitive.ParallelThreshold) _hasher.UpdateParallel(content); else _hasher.Update(content);
        ContentBytes += content.Length;
    }

    private void Decode(ReadOnlySpan<byte> input)
    {
        if (_decodeError is not null) return; // already known bad: the rest is only stored, then discarded
        fixed (byte* inPtr = input)
        fixed (byte* outPtr = _decoded)
        {
            var inBuffer = new ZSTD_inBuffer_s { src = inPtr, size = (nuint)input.Length, pos = 0 };
            while (true)
            {
                var outBuffer = new ZSTD_outBuffer_s { dst = outPtr, size = (nuint)_decoded!.Length, pos = 0 };
                var result = Methods.ZSTD_decompressStream(_dctx, &outBuffer, &inBuffer);
                if (Methods.ZSTD_isError(result))
                {
                    _decodeError = "zstd frame does not decode: " + Methods.ZSTD_getErrorName(result);
                    return;
                }
                _lastZstdResult = result;
                if (outBuffer.pos > 0) Hash(new ReadOnlySpan<byte>(outPtr, (int)outBuffer.pos));
                // Done with this input once it is consumed and the decoder has nothing more to flush.
                if (inBuffer.pos == inBuffer.size && outBuffer.pos < outBuffer.size) return;
            }
        }
    }

    /// <summary>
    /// Ends the download: the last bytes are written and verified. Returns null when the content hashes to
    /// <paramref name="expected"/>, otherwise why it does not (a frame that does not decode or ends early, another digest).
    /// </summary>
    public string? Complete(string expected)
    {
        Drain();
        if (_encoding == CasEncoding.Zstd && _decodeError is null && (_lastZstdResult != 0 || StoredBytes == 0))
            _decodeError = "zstd frame does not decode: the frame is truncated";
        if (_decodeError is not null) return _decodeError;
        var actual = _hasher.FinalizeHex();
        return actual == expected ? null : $"content hashes to {actual}";
    }

    protected override void Dispose(bool disposing)
    {
        if (_dctx is not null)
        {
            Methods.ZSTD_freeDCtx(_dctx);
            _dctx = null;
        }
        if (_chunk is not null) ArrayPool<byte>.Shared.Return(_chunk);
        if (_decoded is not null) ArrayPool<byte>.Shared.Return(_decoded);
        _chunk = null;
        _decoded = null;
        if (disposing) _hasher.Dispose();
        base.Dispose(disposing);
    }

    public override long Length => StoredBytes;
}
