using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Requiem.Engine.Hashing;

/// <summary>
/// A portable BLAKE3 for small inputs (the specification's reference algorithm, scalar), compiled straight to
/// optimised code. Blake3.NET's SIMD paths only pay off on many chunks, and in a short-lived pwsh pipeline they
/// run unoptimised (tier-0) code for thousands of calls; hashing 10,000 small files spent most of its time there.
/// Large inputs go to Blake3.NET. Cross-checked against Blake3.NET and the official vectors in the unit tests.
/// </summary>
internal sealed class Blake3Compact
{
    private const int BlockLen = 64;
    private const int ChunkLen = 1024;
    private const uint ChunkStart = 1, ChunkEnd = 2, Parent = 4, Root = 8;

    private static readonly uint[] IV =
    {
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    };

    // Chunk state.
    private readonly uint[] _cv = new uint[8];
    private readonly byte[] _block = new byte[BlockLen];
    private int _blockLen;
    private int _blocksCompressed;
    private ulong _chunkCounter;

    // Chaining values of completed subtrees (at most 54 for 2^64 bytes).
    private readonly uint[] _stack = new uint[54 * 8];
    private int _stackLen;

    // Scratch space, reused (the instance is reused per thread, so nothing is allocated per hash).
    private readonly uint[] _words = new uint[16];
    private readonly uint[] _chunkCv = new uint[8];
    private readonly uint[] _cvs4 = new uint[32];

    public Blake3Compact() => Reset();

    public void Reset()
    {
        IV.CopyTo(_cv, 0);
        _blockLen = 0;
        _blocksCompressed = 0;
        _chunkCounter = 0;
        _stackLen = 0;
    }

    public void Update(ReadOnlySpan<byte> input)
    {
        while (!input.IsEmpty)
        {
            if (ChunkBytes() == ChunkLen)
            {
                // The current chunk is complete and more input follows: it cannot be the root.
                OutputChainingValue(_cv, _block, _blockLen, _chunkCounter, ChunkFlags(end: true), _chunkCv);
                AddChunkChainingValue(_chunkCv, _chunkCounter + 1);
                _chunkCounter++;
                IV.CopyTo(_cv, 0);
                _blockLen = 0;
                _blocksCompressed = 0;
            }
            if (_blockLen == BlockLen)
            {
                LoadBlock(_block, _words);
                Compress(_cv, _words, _chunkCounter, BlockLen, ChunkFlags(end: false), _cv);
                _blocksCompressed++;
                _blockLen = 0;
            }
            if (_blockLen == 0 && _blocksCompressed == 0 && input.Length > 2 * ChunkLen && Vector128.IsHardwareAccelerated)
            {
                // Whole chunks that are certainly not the last one: hash up to four side by side.
                var count = Math.Min(4, (input.Length - 1) / ChunkLen);
                HashChunks4(input, count, _chunkCounter, _cvs4);
                for (var c = 0; c < count; c++)
                {
                    _cvs4.AsSpan(c * 8, 8).CopyTo(_chunkCv);
                    AddChunkChainingValue(_chunkCv, _chunkCounter + 1);
                    _chunkCounter++;
                }
                input = input[(count * ChunkLen)..];
                continue;
            }
            var take = Math.Min(BlockLen - _blockLen, Math.Min(input.Length, ChunkLen - ChunkBytes()));
            input[..take].CopyTo(_block.AsSpan(_blockLen));
            _blockLen += take;
            input = input[take..];
        }
    }

    public void Finalize(Span<byte> digest32)
    {
        // Output of the current chunk's last block, then merged with every subtree on the stack, right to left.
        Span<uint> cv = stackalloc uint[8];
        Span<uint> words = stackalloc uint[16];
        _cv.CopyTo(cv);
        var flags = ChunkFlags(end: true);
        var counter = _chunkCounter;
        var blockLen = (uint)_blockLen;
        Span<byte> block = stackalloc byte[BlockLen];
        block.Clear();
        _block.AsSpan(0, _blockLen).CopyTo(block);
        LoadBlock(block, words);

        Span<uint> child = stackalloc uint[8];
        for (var i = _stackLen - 1; i >= 0; i--)
        {
            Compress(cv, words, counter, blockLen, flags, child);
            _stack.AsSpan(i * 8, 8).CopyTo(words);
            child.CopyTo(words[8..]);
            IV.CopyTo(cv);
            counter = 0;
            blockLen = BlockLen;
            flags = Parent;
        }

        Span<uint> root = stackalloc uint[8];
        Compress(cv, words, counter, blockLen, flags | Root, root);
        for (var i = 0; i < 8; i++) BinaryPrimitives.WriteUInt32LittleEndian(digest32[(4 * i)..], root[i]);
    }

    private int ChunkBytes() => _blocksCompressed * BlockLen + _blockLen;

    private uint ChunkFlags(bool end) => (_blocksCompressed == 0 ? ChunkStart : 0) | (end ? ChunkEnd : 0);

    private void OutputChainingValue(uint[] cv, byte[] block, int blockLen, ulong counter, uint flags, Span<uint> result)
    {
        Span<byte> padded = stackalloc byte[BlockLen];
        padded.Clear();
        block.AsSpan(0, blockLen).CopyTo(padded);
        Span<uint> words = stackalloc uint[16];
        LoadBlock(padded, words);
        Compress(cv, words, counter, (uint)blockLen, flags, result);
    }

    private void AddChunkChainingValue(Span<uint> cv, ulong totalChunks)
    {
        // Merge completed subtrees: one merge per trailing zero bit of the chunk count.
        Span<uint> words = stackalloc uint[16];
        while ((totalChunks & 1) == 0)
        {
            _stackLen--;
            _stack.AsSpan(_stackLen * 8, 8).CopyTo(words);
            cv.CopyTo(words[8..]);
            Compress(IV, words, 0, BlockLen, Parent, cv);
            totalChunks >>= 1;
        }
        cv.CopyTo(_stack.AsSpan(_stackLen * 8, 8));
        _stackLen++;
    }

    private static void LoadBlock(ReadOnlySpan<byte> block, Span<uint> words)
    {
        for (var i = 0; i < 16; i++) words[i] = BinaryPrimitives.ReadUInt32LittleEndian(block[(4 * i)..]);
    }

    /// <summary>
    /// Chaining values of up to four whole, non-final chunks at once: one chunk per 128-bit lane (lanes past
    /// <paramref name="count"/> hash zeros and are dropped). Same compression as <see cref="Compress"/>, four wide.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HashChunks4(ReadOnlySpan<byte> input, int count, ulong counter, Span<uint> cvs)
    {
        Vector128<uint> v0 = Vector128.Create(0x6A09E667u), v1 = Vector128.Create(0xBB67AE85u), v2 = Vector128.Create(0x3C6EF372u), v3 = Vector128.Create(0xA54FF53Au);
        Vector128<uint> v4 = Vector128.Create(0x510E527Fu), v5 = Vector128.Create(0x9B05688Cu), v6 = Vector128.Create(0x1F83D9ABu), v7 = Vector128.Create(0x5BE0CD19u);
        var ctrLo = Vector128.Create((uint)counter, (uint)(counter + 1), (uint)(counter + 2), (uint)(counter + 3));
        var ctrHi = Vector128.Create((uint)(counter >> 32), (uint)((counter + 1) >> 32), (uint)((counter + 2) >> 32), (uint)((counter + 3) >> 32));
        Span<uint> w = stackalloc uint[64];
        for (var block = 0; block < 16; block++)
        {
            for (var lane = 0; lane < 4; lane++)
            {
                if (lane < count)
                {
                    var src = input.Slice(lane * ChunkLen + block * BlockLen, BlockLen);
                    for (var j = 0; j < 16; j++) w[j * 4 + lane] = BinaryPrimitives.ReadUInt32LittleEndian(src[(4 * j)..]);
                }
                else
                {
                    for (var j = 0; j < 16; j++) w[j * 4 + lane] = 0;
                }
            }
            var m0 = Vector128.Create(w[0], w[1], w[2], w[3]); var m1 = Vector128.Create(w[4], w[5], w[6], w[7]);
            var m2 = Vector128.Create(w[8], w[9], w[10], w[11]); var m3 = Vector128.Create(w[12], w[13], w[14], w[15]);
            var m4 = Vector128.Create(w[16], w[17], w[18], w[19]); var m5 = Vector128.Create(w[20], w[21], w[22], w[23]);
            var m6 = Vector128.Create(w[24], w[25], w[26], w[27]); var m7 = Vector128.Create(w[28], w[29], w[30], w[31]);
            var m8 = Vector128.Create(w[32], w[33], w[34], w[35]); var m9 = Vector128.Create(w[36], w[37], w[38], w[39]);
            var m10 = Vector128.Create(w[40], w[41], w[42], w[43]); var m11 = Vector128.Create(w[44], w[45], w[46], w[47]);
            var m12 = Vector128.Create(w[48], w[49], w[50], w[51]); var m13 = Vector128.Create(w[52], w[53], w[54], w[55]);
            var m14 = Vector128.Create(w[56], w[57], w[58], w[59]); var m15 = Vector128.Create(w[60], w[61], w[62], w[63]);
            uint flags = (block == 0 ? ChunkStart : 0) | (block == 15 ? ChunkEnd : 0);
            Vector128<uint> s0 = v0, s1 = v1, s2 = v2, s3 = v3, s4 = v4, s5 = v5, s6 = v6, s7 = v7;
            Vector128<uint> s8 = Vector128.Create(0x6A09E667u), s9 = Vector128.Create(0xBB67AE85u), s10 = Vector128.Create(0x3C6EF372u), s11 = Vector128.Create(0xA54FF53Au);
            Vector128<uint> s12 = ctrLo, s13 = ctrHi, s14 = Vector128.Create((uint)BlockLen), s15 = Vector128.Create(flags);
            s0 += s4 + m0; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m1; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m2; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m3; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m4; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m5; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m6; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m7; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m8; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m9; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m10; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m11; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m12; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m13; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m14; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m15; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            s0 += s4 + m2; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m6; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m3; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m10; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m7; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m0; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m4; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m13; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m1; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m11; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m12; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m5; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m9; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m14; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m15; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m8; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            s0 += s4 + m3; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m4; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m10; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m12; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m13; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m2; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m7; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m14; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m6; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m5; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m9; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m0; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m11; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m15; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m8; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m1; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            s0 += s4 + m10; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m7; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m12; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m9; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m14; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m3; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m13; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m15; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m4; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m0; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m11; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m2; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m5; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m8; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m1; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m6; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            s0 += s4 + m12; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m13; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m9; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m11; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m15; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m10; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m14; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m8; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m7; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m2; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m5; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m3; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m0; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m1; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m6; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m4; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            s0 += s4 + m9; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m14; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m11; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m5; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m8; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m12; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m15; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m1; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m13; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m3; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m0; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m10; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m2; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m6; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m4; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m7; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            s0 += s4 + m11; s12 = Rot(s12 ^ s0, 16); s8 += s12; s4 = Rot(s4 ^ s8, 12);
            s0 += s4 + m15; s12 = Rot(s12 ^ s0, 8); s8 += s12; s4 = Rot(s4 ^ s8, 7);
            s1 += s5 + m5; s13 = Rot(s13 ^ s1, 16); s9 += s13; s5 = Rot(s5 ^ s9, 12);
            s1 += s5 + m0; s13 = Rot(s13 ^ s1, 8); s9 += s13; s5 = Rot(s5 ^ s9, 7);
            s2 += s6 + m1; s14 = Rot(s14 ^ s2, 16); s10 += s14; s6 = Rot(s6 ^ s10, 12);
            s2 += s6 + m9; s14 = Rot(s14 ^ s2, 8); s10 += s14; s6 = Rot(s6 ^ s10, 7);
            s3 += s7 + m8; s15 = Rot(s15 ^ s3, 16); s11 += s15; s7 = Rot(s7 ^ s11, 12);
            s3 += s7 + m6; s15 = Rot(s15 ^ s3, 8); s11 += s15; s7 = Rot(s7 ^ s11, 7);
            s0 += s5 + m14; s15 = Rot(s15 ^ s0, 16); s10 += s15; s5 = Rot(s5 ^ s10, 12);
            s0 += s5 + m10; s15 = Rot(s15 ^ s0, 8); s10 += s15; s5 = Rot(s5 ^ s10, 7);
            s1 += s6 + m2; s12 = Rot(s12 ^ s1, 16); s11 += s12; s6 = Rot(s6 ^ s11, 12);
            s1 += s6 + m12; s12 = Rot(s12 ^ s1, 8); s11 += s12; s6 = Rot(s6 ^ s11, 7);
            s2 += s7 + m3; s13 = Rot(s13 ^ s2, 16); s8 += s13; s7 = Rot(s7 ^ s8, 12);
            s2 += s7 + m4; s13 = Rot(s13 ^ s2, 8); s8 += s13; s7 = Rot(s7 ^ s8, 7);
            s3 += s4 + m7; s14 = Rot(s14 ^ s3, 16); s9 += s14; s4 = Rot(s4 ^ s9, 12);
            s3 += s4 + m13; s14 = Rot(s14 ^ s3, 8); s9 += s14; s4 = Rot(s4 ^ s9, 7);
            v0 = s0 ^ s8; v1 = s1 ^ s9; v2 = s2 ^ s10; v3 = s3 ^ s11;
            v4 = s4 ^ s12; v5 = s5 ^ s13; v6 = s6 ^ s14; v7 = s7 ^ s15;
        }
        for (var lane = 0; lane < count; lane++)
        {
            var o = cvs.Slice(lane * 8, 8);
            o[0] = v0.GetElement(lane); o[1] = v1.GetElement(lane); o[2] = v2.GetElement(lane); o[3] = v3.GetElement(lane);
            o[4] = v4.GetElement(lane); o[5] = v5.GetElement(lane); o[6] = v6.GetElement(lane); o[7] = v7.GetElement(lane);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> Rot(Vector128<uint> x, int n) => Vector128.ShiftRightLogical(x, n) | Vector128.ShiftLeft(x, 32 - n);

    /// <summary>
    /// The BLAKE3 compression function; writes the first 8 words of the output (the chaining value). Fully unrolled
    /// over locals, with the message schedule of each round written out, so the JIT keeps the state in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Compress(ReadOnlySpan<uint> cv, ReadOnlySpan<uint> m, ulong counter, uint blockLen, uint flags, Span<uint> output)
    {
        uint s0 = cv[0], s1 = cv[1], s2 = cv[2], s3 = cv[3], s4 = cv[4], s5 = cv[5], s6 = cv[6], s7 = cv[7];
        uint s8 = 0x6A09E667, s9 = 0xBB67AE85, s10 = 0x3C6EF372, s11 = 0xA54FF53A;
        uint s12 = (uint)counter, s13 = (uint)(counter >> 32), s14 = blockLen, s15 = flags;
        uint m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5], m6 = m[6], m7 = m[7];
        uint m8 = m[8], m9 = m[9], m10 = m[10], m11 = m[11], m12 = m[12], m13 = m[13], m14 = m[14], m15 = m[15];

        // round 1
        s0 += s4 + m0; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m1; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m2; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m3; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m4; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m5; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m6; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m7; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m8; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m9; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m10; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m11; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m12; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m13; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m14; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m15; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);
        // round 2
        s0 += s4 + m2; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m6; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m3; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m10; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m7; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m0; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m4; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m13; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m1; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m11; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m12; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m5; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m9; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m14; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m15; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m8; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);
        // round 3
        s0 += s4 + m3; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m4; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m10; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m12; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m13; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m2; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m7; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m14; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m6; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m5; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m9; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m0; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m11; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m15; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m8; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m1; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);
        // round 4
        s0 += s4 + m10; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m7; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m12; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m9; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m14; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m3; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m13; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m15; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m4; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m0; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m11; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m2; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m5; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m8; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m1; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m6; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);
        // round 5
        s0 += s4 + m12; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m13; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m9; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m11; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m15; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m10; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m14; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m8; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m7; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m2; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m5; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m3; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m0; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m1; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m6; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m4; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);
        // round 6
        s0 += s4 + m9; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m14; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m11; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m5; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m8; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m12; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m15; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m1; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m13; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m3; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m0; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m10; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m2; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m6; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m4; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m7; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);
        // round 7
        s0 += s4 + m11; s12 = BitOperations.RotateRight(s12 ^ s0, 16); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 12);
        s0 += s4 + m15; s12 = BitOperations.RotateRight(s12 ^ s0, 8); s8 += s12; s4 = BitOperations.RotateRight(s4 ^ s8, 7);
        s1 += s5 + m5; s13 = BitOperations.RotateRight(s13 ^ s1, 16); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 12);
        s1 += s5 + m0; s13 = BitOperations.RotateRight(s13 ^ s1, 8); s9 += s13; s5 = BitOperations.RotateRight(s5 ^ s9, 7);
        s2 += s6 + m1; s14 = BitOperations.RotateRight(s14 ^ s2, 16); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 12);
        s2 += s6 + m9; s14 = BitOperations.RotateRight(s14 ^ s2, 8); s10 += s14; s6 = BitOperations.RotateRight(s6 ^ s10, 7);
        s3 += s7 + m8; s15 = BitOperations.RotateRight(s15 ^ s3, 16); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 12);
        s3 += s7 + m6; s15 = BitOperations.RotateRight(s15 ^ s3, 8); s11 += s15; s7 = BitOperations.RotateRight(s7 ^ s11, 7);
        s0 += s5 + m14; s15 = BitOperations.RotateRight(s15 ^ s0, 16); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 12);
        s0 += s5 + m10; s15 = BitOperations.RotateRight(s15 ^ s0, 8); s10 += s15; s5 = BitOperations.RotateRight(s5 ^ s10, 7);
        s1 += s6 + m2; s12 = BitOperations.RotateRight(s12 ^ s1, 16); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 12);
        s1 += s6 + m12; s12 = BitOperations.RotateRight(s12 ^ s1, 8); s11 += s12; s6 = BitOperations.RotateRight(s6 ^ s11, 7);
        s2 += s7 + m3; s13 = BitOperations.RotateRight(s13 ^ s2, 16); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 12);
        s2 += s7 + m4; s13 = BitOperations.RotateRight(s13 ^ s2, 8); s8 += s13; s7 = BitOperations.RotateRight(s7 ^ s8, 7);
        s3 += s4 + m7; s14 = BitOperations.RotateRight(s14 ^ s3, 16); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 12);
        s3 += s4 + m13; s14 = BitOperations.RotateRight(s14 ^ s3, 8); s9 += s14; s4 = BitOperations.RotateRight(s4 ^ s9, 7);

        output[0] = s0 ^ s8; output[1] = s1 ^ s9; output[2] = s2 ^ s10; output[3] = s3 ^ s11;
        output[4] = s4 ^ s12; output[5] = s5 ^ s13; output[6] = s6 ^ s14; output[7] = s7 ^ s15;
    }
}
