using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Requiem.Engine.Hashing;

/// <summary>How many chunks (or parents) one BLAKE3 compression pass handles side by side.</summary>
internal enum Blake3LaneWidth
{
    Scalar = 1,
    Lanes4 = 4,
    Lanes8 = 8,
    Lanes16 = 16,
}

/// <summary>
/// BLAKE3 chunk and parent compression over many inputs at once, one input per vector lane (the specification's
/// "SIMD across inputs" layout): 16 lanes of <see cref="Vector512{T}"/>, 8 of <see cref="Vector256{T}"/> or 4 of
/// <see cref="Vector128{T}"/>, the widest the CPU accelerates. The loops and tree code are generic over the width;
/// the compression itself is written out per width (<see cref="Blake3Compress"/>, generated), because the JIT stops
/// inlining a generic one's hundreds of small vector calls. On top of it, <see cref="SubtreeChainingValue"/> computes the chaining value of an aligned power-of-two run of
/// chunks, the unit of work the tree hashers hand to each core.
/// </summary>
internal static class Blake3Lanes
{
    internal const int BlockLen = 64;
    internal const int ChunkLen = 1024;
    internal const uint ChunkStart = 1, ChunkEnd = 2, Parent = 4;

    internal static ReadOnlySpan<uint> IV => new uint[]
    {
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    };

    /// <summary>The widest lane count this CPU runs in hardware.</summary>
    public static Blake3LaneWidth Widest { get; } =
        !BitConverter.IsLittleEndian ? Blake3LaneWidth.Scalar :
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? Blake3LaneWidth.Lanes16 :
        Vector256.IsHardwareAccelerated ? Blake3LaneWidth.Lanes8 :
        Vector128.IsHardwareAccelerated ? Blake3LaneWidth.Lanes4 : Blake3LaneWidth.Scalar;

    /// <summary>Every width this CPU can run, narrowest first (the cross-checks force each in turn).</summary>
    public static IReadOnlyList<Blake3LaneWidth> Available { get; } =
        Enum.GetValues<Blake3LaneWidth>().Where(w => w <= Widest).ToArray();

    private static Blake3LaneWidth s_width = Widest;

    /// <summary>The width in use; lowered (never raised above <see cref="Widest"/>) by tests to cover each path.</summary>
    internal static Blake3LaneWidth Width
    {
        get => s_width;
        set => s_width = value <= Widest ? value : throw new PlatformNotSupportedException($"{value} is wider than this CPU runs ({Widest}).");
    }

    /// <summary>Chaining values (8 words each) of <paramref name="count"/> whole chunks that are not the root.</summary>
    public static void HashChunks(ReadOnlySpan<byte> input, ulong counter, int count, Span<uint> cvs)
    {
        var done = 0;
        var width = Width;
        while (done < count)
        {
            var left = count - done;
            var slice = input[(done * ChunkLen)..];
            var output = cvs[(done * 8)..];
            var c = counter + (ulong)done;
            if (width >= Blake3LaneWidth.Lanes16 && left >= 16) { Chunks<Lanes512, Vector512<uint>>(slice, c, output); done += 16; }
            else if (width >= Blake3LaneWidth.Lanes8 && left >= 8) { Chunks<Lanes256, Vector256<uint>>(slice, c, output); done += 8; }
            else if (width >= Blake3LaneWidth.Lanes4 && left >= 4) { Chunks<Lanes128, Vector128<uint>>(slice, c, output); done += 4; }
            else if (width >= Blake3LaneWidth.Lanes4 && left >= 2) { ChunksPadded4(slice, left, c, output); done += left; }
            else { ChunkScalar(slice[..ChunkLen], c, output); done += 1; }
        }
    }

    /// <summary>Two or three chunks through the 4-lane path (the spare lanes hash zeros): cheaper than one by one.</summary>
    private static void ChunksPadded4(ReadOnlySpan<byte> input, int count, ulong counter, Span<uint> cvs)
    {
        Span<byte> padded = stackalloc byte[4 * ChunkLen];
        padded.Clear();
        input[..(count * ChunkLen)].CopyTo(padded);
        Span<uint> all = stackalloc uint[4 * 8];
        Chunks<Lanes128, Vector128<uint>>(padded, counter, all);
        all[..(count * 8)].CopyTo(cvs);
    }

    /// <summary>
    /// Parent chaining values of <paramref name="count"/> pairs: pair i is children[16i..16i+16) (left then right),
    /// its parent goes to parents[8i..8i+8). Parents may overlap children from the start (in-place halving).
    /// </summary>
    public static void HashParents(ReadOnlySpan<uint> children, int count, Span<uint> parents)
    {
        var done = 0;
        var width = Width;
        var bytes = MemoryMarshal.AsBytes(children);
        while (done < count)
        {
            var left = count - done;
            var slice = bytes[(done * BlockLen)..];
            var output = parents[(done * 8)..];
            if (width >= Blake3LaneWidth.Lanes16 && left >= 16) { ParentsWide<Lanes512, Vector512<uint>>(slice, output); done += 16; }
            else if (width >= Blake3LaneWidth.Lanes8 && left >= 8) { ParentsWide<Lanes256, Vector256<uint>>(slice, output); done += 8; }
            else if (width >= Blake3LaneWidth.Lanes4 && left >= 4) { ParentsWide<Lanes128, Vector128<uint>>(slice, output); done += 4; }
            else
            {
                Blake3Compact.Compress(IV, children.Slice(done * 16, 16), 0, BlockLen, Parent, output[..8]);
                done += 1;
            }
        }
    }

    [ThreadStatic] private static uint[]? t_scratch;

    /// <summary>
    /// Chaining value of the subtree over <paramref name="input"/>: a power-of-two number of whole chunks whose first
    /// chunk has <paramref name="counter"/> (a multiple of that number). Never the root: the caller has more input.
    /// </summary>
    public static void SubtreeChainingValue(ReadOnlySpan<byte> input, ulong counter, Span<uint> cv)
    {
        var chunks = input.Length / ChunkLen;
        var needed = chunks * 8;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < needed) t_scratch = scratch = new uint[Math.Max(needed, 256 * 8)];
        var cvs = scratch.AsSpan(0, needed);
        HashChunks(input, counter, chunks, cvs);
        for (var n = chunks; n > 1; n >>= 1) HashParents(cvs[..(n * 8)], n / 2, cvs);
        cvs[..8].CopyTo(cv);
    }

    private static void ChunkScalar(ReadOnlySpan<byte> chunk, ulong counter, Span<uint> cv)
    {
        Span<uint> state = stackalloc uint[8];
        Span<uint> words = stackalloc uint[16];
        IV.CopyTo(state);
        for (var b = 0; b < 16; b++)
        {
            var flags = (b == 0 ? ChunkStart : 0) | (b == 15 ? ChunkEnd : 0);
            MemoryMarshal.Cast<byte, uint>(chunk.Slice(b * BlockLen, BlockLen)).CopyTo(words);
            if (!BitConverter.IsLittleEndian) ReverseWords(words);
            Blake3Compact.Compress(state, words, counter, BlockLen, flags, state);
        }
        state.CopyTo(cv[..8]);
    }

    private static void ReverseWords(Span<uint> words)
    {
        for (var i = 0; i < words.Length; i++) words[i] = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(words[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Chunks<L, V>(ReadOnlySpan<byte> input, ulong counter, Span<uint> cvs)
        where L : struct, ILanes<V> where V : struct
    {
        Span<uint> counters = stackalloc uint[2 * L.Count];
        for (var i = 0; i < L.Count; i++)
        {
            var c = counter + (ulong)i;
            counters[i] = (uint)c;
            counters[L.Count + i] = (uint)(c >> 32);
        }
        var ctrLo = L.Load(ref counters[0]);
        var ctrHi = L.Load(ref counters[L.Count]);
        var iv = IV;
        V h0 = L.Splat(iv[0]), h1 = L.Splat(iv[1]), h2 = L.Splat(iv[2]), h3 = L.Splat(iv[3]);
        V h4 = L.Splat(iv[4]), h5 = L.Splat(iv[5]), h6 = L.Splat(iv[6]), h7 = L.Splat(iv[7]);
        ref var start = ref MemoryMarshal.GetReference(input);
        for (var b = 0; b < 16; b++)
        {
            var flags = (b == 0 ? ChunkStart : 0) | (b == 15 ? ChunkEnd : 0);
            L.Compress(ref Unsafe.Add(ref start, b * BlockLen), ChunkLen, ctrLo, ctrHi, flags,
                ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);
        }
        StoreRows<L, V>(h0, h1, h2, h3, h4, h5, h6, h7, cvs);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ParentsWide<L, V>(ReadOnlySpan<byte> blocks, Span<uint> parents)
        where L : struct, ILanes<V> where V : struct
    {
        var iv = IV;
        V h0 = L.Splat(iv[0]), h1 = L.Splat(iv[1]), h2 = L.Splat(iv[2]), h3 = L.Splat(iv[3]);
        V h4 = L.Splat(iv[4]), h5 = L.Splat(iv[5]), h6 = L.Splat(iv[6]), h7 = L.Splat(iv[7]);
        var zero = L.Splat(0);
        L.Compress(ref MemoryMarshal.GetReference(blocks), BlockLen, zero, zero, Parent,
            ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);
        StoreRows<L, V>(h0, h1, h2, h3, h4, h5, h6, h7, parents);
    }

    /// <summary>Lane i of h0..h7 becomes the 8 words at rows[8i..8i+8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRows<L, V>(V h0, V h1, V h2, V h3, V h4, V h5, V h6, V h7, Span<uint> rows)
        where L : struct, ILanes<V> where V : struct
    {
        Span<uint> columns = stackalloc uint[8 * L.Count];
        ref var c = ref columns[0];
        L.Store(h0, ref c); L.Store(h1, ref Unsafe.Add(ref c, L.Count)); L.Store(h2, ref Unsafe.Add(ref c, 2 * L.Count));
        L.Store(h3, ref Unsafe.Add(ref c, 3 * L.Count)); L.Store(h4, ref Unsafe.Add(ref c, 4 * L.Count));
        L.Store(h5, ref Unsafe.Add(ref c, 5 * L.Count)); L.Store(h6, ref Unsafe.Add(ref c, 6 * L.Count));
        L.Store(h7, ref Unsafe.Add(ref c, 7 * L.Count));
        for (var lane = 0; lane < L.Count; lane++)
            for (var w = 0; w < 8; w++)
                rows[lane * 8 + w] = columns[w * L.Count + lane];
    }
}

/// <summary>The vector operations one lane width needs; implemented per width with that width's best instructions.</summary>
internal interface ILanes<V> where V : struct
{
    static abstract int Count { get; }
    static abstract V Splat(uint value);
    static abstract V Load(ref uint source);
    static abstract void Store(V value, ref uint destination);

    /// <summary>One compression of Count blocks (block i at rows + i*stride) into the chaining values h0..h7.</summary>
    static abstract void Compress(ref byte rows, nint stride, V ctrLo, V ctrHi, uint flags,
        ref V h0, ref V h1, ref V h2, ref V h3, ref V h4, ref V h5, ref V h6, ref V h7);

    /// <summary>Message word j of the block at rows + lane*stride, for every lane: m_j lane i.</summary>
    static abstract void LoadTransposed(ref byte rows, nint stride, out V m0, out V m1, out V m2, out V m3, out V m4, out V m5, out V m6, out V m7,
        out V m8, out V m9, out V m10, out V m11, out V m12, out V m13, out V m14, out V m15);
}

internal struct Lanes128 : ILanes<Vector128<uint>>
{
    public static int Count => 4;
    public static Vector128<uint> Splat(uint value) => Vector128.Create(value);
    public static Vector128<uint> Load(ref uint source) => Vector128.LoadUnsafe(ref source);
    public static void Store(Vector128<uint> value, ref uint destination) => value.StoreUnsafe(ref destination);

    public static void Compress(ref byte rows, nint stride, Vector128<uint> ctrLo, Vector128<uint> ctrHi, uint flags, ref Vector128<uint> h0, ref Vector128<uint> h1, ref Vector128<uint> h2, ref Vector128<uint> h3, ref Vector128<uint> h4, ref Vector128<uint> h5, ref Vector128<uint> h6, ref Vector128<uint> h7)
    {
        if (Avx512F.VL.IsSupported) Blake3Compress.Compress128Vl(ref rows, stride, ctrLo, ctrHi, flags, ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);
        else Blake3Compress.Compress128(ref rows, stride, ctrLo, ctrHi, flags, ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);
    }






    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadTransposed(ref byte rows, nint stride, out Vector128<uint> m0, out Vector128<uint> m1, out Vector128<uint> m2, out Vector128<uint> m3,
        out Vector128<uint> m4, out Vector128<uint> m5, out Vector128<uint> m6, out Vector128<uint> m7, out Vector128<uint> m8, out Vector128<uint> m9,
        out Vector128<uint> m10, out Vector128<uint> m11, out Vector128<uint> m12, out Vector128<uint> m13, out Vector128<uint> m14, out Vector128<uint> m15)
    {
        Transpose4(ref rows, stride, 0, out m0, out m1, out m2, out m3);
        Transpose4(ref rows, stride, 16, out m4, out m5, out m6, out m7);
        Transpose4(ref rows, stride, 32, out m8, out m9, out m10, out m11);
        Transpose4(ref rows, stride, 48, out m12, out m13, out m14, out m15);
    }

    /// <summary>Words 4g..4g+3 (at byte <paramref name="offset"/>) of four rows, as four column vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4(ref byte rows, nint stride, nint offset,
        out Vector128<uint> c0, out Vector128<uint> c1, out Vector128<uint> c2, out Vector128<uint> c3)
    {
        var r0 = Vector128.LoadUnsafe(ref Unsafe.Add(ref rows, offset)).AsUInt32();
        var r1 = Vector128.LoadUnsafe(ref Unsafe.Add(ref rows, stride + offset)).AsUInt32();
        var r2 = Vector128.LoadUnsafe(ref Unsafe.Add(ref rows, 2 * stride + offset)).AsUInt32();
        var r3 = Vector128.LoadUnsafe(ref Unsafe.Add(ref rows, 3 * stride + offset)).AsUInt32();
        if (Sse2.IsSupported)
        {
            var lo01 = Sse2.UnpackLow(r0, r1).AsUInt64(); var hi01 = Sse2.UnpackHigh(r0, r1).AsUInt64();
            var lo23 = Sse2.UnpackLow(r2, r3).AsUInt64(); var hi23 = Sse2.UnpackHigh(r2, r3).AsUInt64();
            c0 = Sse2.UnpackLow(lo01, lo23).AsUInt32(); c1 = Sse2.UnpackHigh(lo01, lo23).AsUInt32();
            c2 = Sse2.UnpackLow(hi01, hi23).AsUInt32(); c3 = Sse2.UnpackHigh(hi01, hi23).AsUInt32();
        }
        else
        {
            c0 = Vector128.Create(r0[0], r1[0], r2[0], r3[0]); c1 = Vector128.Create(r0[1], r1[1], r2[1], r3[1]);
            c2 = Vector128.Create(r0[2], r1[2], r2[2], r3[2]); c3 = Vector128.Create(r0[3], r1[3], r2[3], r3[3]);
        }
    }
}

internal struct Lanes256 : ILanes<Vector256<uint>>
{
    public static int Count => 8;
    public static Vector256<uint> Splat(uint value) => Vector256.Create(value);
    public static Vector256<uint> Load(ref uint source) => Vector256.LoadUnsafe(ref source);
    public static void Store(Vector256<uint> value, ref uint destination) => value.StoreUnsafe(ref destination);

    public static void Compress(ref byte rows, nint stride, Vector256<uint> ctrLo, Vector256<uint> ctrHi, uint flags, ref Vector256<uint> h0, ref Vector256<uint> h1, ref Vector256<uint> h2, ref Vector256<uint> h3, ref Vector256<uint> h4, ref Vector256<uint> h5, ref Vector256<uint> h6, ref Vector256<uint> h7)
    {
        if (Avx512F.VL.IsSupported) Blake3Compress.Compress256Vl(ref rows, stride, ctrLo, ctrHi, flags, ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);
        else Blake3Compress.Compress256(ref rows, stride, ctrLo, ctrHi, flags, ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);
    }






    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadTransposed(ref byte rows, nint stride, out Vector256<uint> m0, out Vector256<uint> m1, out Vector256<uint> m2, out Vector256<uint> m3,
        out Vector256<uint> m4, out Vector256<uint> m5, out Vector256<uint> m6, out Vector256<uint> m7, out Vector256<uint> m8, out Vector256<uint> m9,
        out Vector256<uint> m10, out Vector256<uint> m11, out Vector256<uint> m12, out Vector256<uint> m13, out Vector256<uint> m14, out Vector256<uint> m15)
    {
        Transpose8(ref rows, stride, 0, out m0, out m1, out m2, out m3, out m4, out m5, out m6, out m7);
        Transpose8(ref rows, stride, 32, out m8, out m9, out m10, out m11, out m12, out m13, out m14, out m15);
    }

    /// <summary>Eight words (from byte <paramref name="offset"/>) of eight rows, as eight column vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8(ref byte rows, nint stride, nint offset,
        out Vector256<uint> c0, out Vector256<uint> c1, out Vector256<uint> c2, out Vector256<uint> c3,
        out Vector256<uint> c4, out Vector256<uint> c5, out Vector256<uint> c6, out Vector256<uint> c7)
    {
        ref var p = ref Unsafe.Add(ref rows, offset);
        var r0 = Vector256.LoadUnsafe(ref p).AsUInt32();
        var r1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, stride)).AsUInt32();
        var r2 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, 2 * stride)).AsUInt32();
        var r3 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, 3 * stride)).AsUInt32();
        var r4 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, 4 * stride)).AsUInt32();
        var r5 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, 5 * stride)).AsUInt32();
        var r6 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, 6 * stride)).AsUInt32();
        var r7 = Vector256.LoadUnsafe(ref Unsafe.Add(ref p, 7 * stride)).AsUInt32();
        if (Avx2.IsSupported)
        {
            // Within each 128-bit half: 4x4 transposes of rows 0-3 and 4-7; then the halves are exchanged.
            var a01 = Avx2.UnpackLow(r0, r1).AsUInt64(); var b01 = Avx2.UnpackHigh(r0, r1).AsUInt64();
            var a23 = Avx2.UnpackLow(r2, r3).AsUInt64(); var b23 = Avx2.UnpackHigh(r2, r3).AsUInt64();
            var a45 = Avx2.UnpackLow(r4, r5).AsUInt64(); var b45 = Avx2.UnpackHigh(r4, r5).AsUInt64();
            var a67 = Avx2.UnpackLow(r6, r7).AsUInt64(); var b67 = Avx2.UnpackHigh(r6, r7).AsUInt64();
            var t0 = Avx2.UnpackLow(a01, a23).AsUInt32(); var t1 = Avx2.UnpackHigh(a01, a23).AsUInt32();
            var t2 = Avx2.UnpackLow(b01, b23).AsUInt32(); var t3 = Avx2.UnpackHigh(b01, b23).AsUInt32();
            var u0 = Avx2.UnpackLow(a45, a67).AsUInt32(); var u1 = Avx2.UnpackHigh(a45, a67).AsUInt32();
            var u2 = Avx2.UnpackLow(b45, b67).AsUInt32(); var u3 = Avx2.UnpackHigh(b45, b67).AsUInt32();
            c0 = Avx2.Permute2x128(t0, u0, 0x20); c4 = Avx2.Permute2x128(t0, u0, 0x31);
            c1 = Avx2.Permute2x128(t1, u1, 0x20); c5 = Avx2.Permute2x128(t1, u1, 0x31);
            c2 = Avx2.Permute2x128(t2, u2, 0x20); c6 = Avx2.Permute2x128(t2, u2, 0x31);
            c3 = Avx2.Permute2x128(t3, u3, 0x20); c7 = Avx2.Permute2x128(t3, u3, 0x31);
        }
        else
        {
            c0 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 0); c1 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 1);
            c2 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 2); c3 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 3);
            c4 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 4); c5 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 5);
            c6 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 6); c7 = Column(r0, r1, r2, r3, r4, r5, r6, r7, 7);
        }
    }

    private static Vector256<uint> Column(Vector256<uint> r0, Vector256<uint> r1, Vector256<uint> r2, Vector256<uint> r3,
        Vector256<uint> r4, Vector256<uint> r5, Vector256<uint> r6, Vector256<uint> r7, int j) =>
        Vector256.Create(r0[j], r1[j], r2[j], r3[j], r4[j], r5[j], r6[j], r7[j]);
}

internal struct Lanes512 : ILanes<Vector512<uint>>
{
    public static int Count => 16;
    public static Vector512<uint> Splat(uint value) => Vector512.Create(value);
    public static Vector512<uint> Load(ref uint source) => Vector512.LoadUnsafe(ref source);
    public static void Store(Vector512<uint> value, ref uint destination) => value.StoreUnsafe(ref destination);

    public static void Compress(ref byte rows, nint stride, Vector512<uint> ctrLo, Vector512<uint> ctrHi, uint flags, ref Vector512<uint> h0, ref Vector512<uint> h1, ref Vector512<uint> h2, ref Vector512<uint> h3, ref Vector512<uint> h4, ref Vector512<uint> h5, ref Vector512<uint> h6, ref Vector512<uint> h7)
        => Blake3Compress.Compress512(ref rows, stride, ctrLo, ctrHi, flags, ref h0, ref h1, ref h2, ref h3, ref h4, ref h5, ref h6, ref h7);


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadTransposed(ref byte rows, nint stride, out Vector512<uint> m0, out Vector512<uint> m1, out Vector512<uint> m2, out Vector512<uint> m3,
        out Vector512<uint> m4, out Vector512<uint> m5, out Vector512<uint> m6, out Vector512<uint> m7, out Vector512<uint> m8, out Vector512<uint> m9,
        out Vector512<uint> m10, out Vector512<uint> m11, out Vector512<uint> m12, out Vector512<uint> m13, out Vector512<uint> m14, out Vector512<uint> m15)
    {
        if (!Avx512F.IsSupported)
        {
            Span<uint> w = stackalloc uint[256];
            for (var lane = 0; lane < 16; lane++)
            {
                var row = MemoryMarshal.Cast<byte, uint>(MemoryMarshal.CreateReadOnlySpan(ref Unsafe.Add(ref rows, lane * stride), 64));
                for (var j = 0; j < 16; j++) w[j * 16 + lane] = row[j];
            }
            ref var c = ref w[0];
            m0 = Load(ref c); m1 = Load(ref Unsafe.Add(ref c, 16)); m2 = Load(ref Unsafe.Add(ref c, 32)); m3 = Load(ref Unsafe.Add(ref c, 48));
            m4 = Load(ref Unsafe.Add(ref c, 64)); m5 = Load(ref Unsafe.Add(ref c, 80)); m6 = Load(ref Unsafe.Add(ref c, 96)); m7 = Load(ref Unsafe.Add(ref c, 112));
            m8 = Load(ref Unsafe.Add(ref c, 128)); m9 = Load(ref Unsafe.Add(ref c, 144)); m10 = Load(ref Unsafe.Add(ref c, 160)); m11 = Load(ref Unsafe.Add(ref c, 176));
            m12 = Load(ref Unsafe.Add(ref c, 192)); m13 = Load(ref Unsafe.Add(ref c, 208)); m14 = Load(ref Unsafe.Add(ref c, 224)); m15 = Load(ref Unsafe.Add(ref c, 240));
            return;
        }
        // Rows g*4..g*4+3 are 4x4-transposed inside each 128-bit quarter (u_g_k: quarter q holds word 4q+k of those
        // rows); two rounds of 128-bit shuffles then gather quarter q of every u_g_k into m_{4q+k}.
        Quad(ref rows, stride, 0, out var u00, out var u01, out var u02, out var u03);
        Quad(ref rows, stride, 4, out var u10, out var u11, out var u12, out var u13);
        Quad(ref rows, stride, 8, out var u20, out var u21, out var u22, out var u23);
        Quad(ref rows, stride, 12, out var u30, out var u31, out var u32, out var u33);
        Gather(u00, u10, u20, u30, out m0, out m4, out m8, out m12);
        Gather(u01, u11, u21, u31, out m1, out m5, out m9, out m13);
        Gather(u02, u12, u22, u32, out m2, out m6, out m10, out m14);
        Gather(u03, u13, u23, u33, out m3, out m7, out m11, out m15);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quad(ref byte rows, nint stride, int first,
        out Vector512<uint> k0, out Vector512<uint> k1, out Vector512<uint> k2, out Vector512<uint> k3)
    {
        var r0 = Vector512.LoadUnsafe(ref Unsafe.Add(ref rows, first * stride)).AsUInt32();
        var r1 = Vector512.LoadUnsafe(ref Unsafe.Add(ref rows, (first + 1) * stride)).AsUInt32();
        var r2 = Vector512.LoadUnsafe(ref Unsafe.Add(ref rows, (first + 2) * stride)).AsUInt32();
        var r3 = Vector512.LoadUnsafe(ref Unsafe.Add(ref rows, (first + 3) * stride)).AsUInt32();
        var lo01 = Avx512F.UnpackLow(r0, r1).AsUInt64(); var hi01 = Avx512F.UnpackHigh(r0, r1).AsUInt64();
        var lo23 = Avx512F.UnpackLow(r2, r3).AsUInt64(); var hi23 = Avx512F.UnpackHigh(r2, r3).AsUInt64();
        k0 = Avx512F.UnpackLow(lo01, lo23).AsUInt32(); k1 = Avx512F.UnpackHigh(lo01, lo23).AsUInt32();
        k2 = Avx512F.UnpackLow(hi01, hi23).AsUInt32(); k3 = Avx512F.UnpackHigh(hi01, hi23).AsUInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Gather(Vector512<uint> u0, Vector512<uint> u1, Vector512<uint> u2, Vector512<uint> u3,
        out Vector512<uint> q0, out Vector512<uint> q1, out Vector512<uint> q2, out Vector512<uint> q3)
    {
        // 0x88 takes quarters 0 and 2 of each operand, 0xDD quarters 1 and 3.
        var x = Avx512F.Shuffle4x128(u0, u1, 0x88);
        var y = Avx512F.Shuffle4x128(u0, u1, 0xDD);
        var z = Avx512F.Shuffle4x128(u2, u3, 0x88);
        var w = Avx512F.Shuffle4x128(u2, u3, 0xDD);
        q0 = Avx512F.Shuffle4x128(x, z, 0x88);
        q1 = Avx512F.Shuffle4x128(y, w, 0x88);
        q2 = Avx512F.Shuffle4x128(x, z, 0xDD);
        q3 = Avx512F.Shuffle4x128(y, w, 0xDD);
    }
}
