using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Requiem.Engine.Hashing;

/// <summary>
/// The module's BLAKE3: the specification's incremental tree (a chunk state plus a stack of subtree chaining values),
/// with whole chunks handed to <see cref="Blake3Lanes"/> as aligned power-of-two subtrees, hashed 4, 8 or 16 chunks
/// side by side and, for large inputs, on several cores. Small inputs run the scalar compression, which is optimised
/// code from the first call (a short pwsh pipeline over many small files otherwise spends its time in tier-0 code).
/// Cross-checked against the Blake3 package, b3sum and the official vectors in the unit tests.
/// </summary>
internal sealed class Blake3Compact
{
    private const int BlockLen = 64;
    private const int ChunkLen = 1024;
    private const uint ChunkStart = 1, ChunkEnd = 2, Parent = 4, Root = 8;

    /// <summary>Largest subtree (in chunks) one task hashes from memory: its chaining values fit in 32 KiB.</summary>
    internal const int MaxPieceChunks = 1024;

    /// <summary>Below this many whole chunks an update stays on the calling thread.</summary>
    internal const int ParallelMinChunks = 256;

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

    public Blake3Compact() => Reset();

    public void Reset()
    {
        IV.CopyTo(_cv, 0);
        _blockLen = 0;
        _blocksCompressed = 0;
        _chunkCounter = 0;
        _stackLen = 0;
    }

    /// <summary>Bytes of the current chunk absorbed so far (0 at a chunk boundary, 1024 when a full chunk waits).</summary>
    internal int ChunkBytes() => _blocksCompressed * BlockLen + _blockLen;

    public void Update(ReadOnlySpan<byte> input) => Update(input, 1);

    /// <summary>Absorbs <paramref name="input"/>; whole chunks that cannot be the last go to up to <paramref name="maxThreads"/> cores.</summary>
    public void Update(ReadOnlySpan<byte> input, int maxThreads)
    {
        while (!input.IsEmpty)
        {
            // A complete chunk is only finished once more input follows: until then it may be the root.
            if (ChunkBytes() == ChunkLen) FinishChunk();
            if (_blockLen == BlockLen)
            {
                LoadBlock(_block, _words);
                Compress(_cv, _words, _chunkCounter, BlockLen, ChunkFlags(end: false), _cv);
                _blocksCompressed++;
                _blockLen = 0;
            }
            if (ChunkBytes() == 0 && input.Length > ChunkLen)
            {
                // Whole chunks that are certainly not the last one: subtrees, many chunks side by side.
                var whole = (input.Length - 1) / ChunkLen * ChunkLen;
                AbsorbWholeChunks(input[..whole], maxThreads);
                input = input[whole..];
                continue;
            }
            var take = Math.Min(BlockLen - _blockLen, Math.Min(input.Length, ChunkLen - ChunkBytes()));
            input[..take].CopyTo(_block.AsSpan(_blockLen));
            _blockLen += take;
            input = input[take..];
        }
    }

    /// <summary>
    /// Finishes a full pending chunk (the caller knows more input follows), so that the state sits on a chunk
    /// boundary; returns the number of the next chunk. Fails if the current chunk is only partly filled.
    /// </summary>
    internal ulong AlignToChunk()
    {
        if (ChunkBytes() == ChunkLen) FinishChunk();
        if (ChunkBytes() != 0) throw new InvalidOperationException("The BLAKE3 state is inside a chunk.");
        return _chunkCounter;
    }

    /// <summary>
    /// The largest subtree (in chunks) that can start at chunk <paramref name="counter"/>: a power of two that divides
    /// the counter (subtrees are aligned, as in the specification's tree) and is at most <paramref name="available"/>
    /// and <paramref name="max"/>.
    /// </summary>
    private static int SubtreeChunks(ulong counter, long available, int max)
    {
        var limit = (int)Math.Min(available, max);
        var size = 1 << BitOperations.Log2((uint)limit);
        if (counter != 0) size = (int)Math.Min((ulong)size, counter & (~counter + 1));
        return size;
    }

    /// <summary>
    /// Pushes the chaining value of an aligned subtree of <paramref name="chunks"/> chunks that starts at the current
    /// chunk counter, merging completed subtrees as the specification's incremental tree does. Never the root.
    /// </summary>
    internal void PushSubtree(ReadOnlySpan<uint> cv, int chunks)
    {
        Span<uint> merged = stackalloc uint[8];
        cv[..8].CopyTo(merged);
        _chunkCounter += (ulong)chunks;
        AddChainingValue(merged, _chunkCounter >> BitOperations.TrailingZeroCount(chunks));
    }

    private unsafe void AbsorbWholeChunks(ReadOnlySpan<byte> data, int maxThreads)
    {
        var chunks = data.Length / ChunkLen;
        if (chunks < 16)
        {
            // A few chunks (small files): side by side in one pass, then merged one by one.
            Span<uint> few = stackalloc uint[16 * 8];
            Blake3Lanes.HashChunks(data, _chunkCounter, chunks, few);
            for (var i = 0; i < chunks; i++) PushSubtree(few.Slice(i * 8, 8), 1);
            return;
        }
        var threads = chunks < ParallelMinChunks ? 1 : maxThreads;
        // One core: the largest pieces. Several: about four pieces per core, so that an uneven split costs little.
        var pieceMax = threads <= 1 ? MaxPieceChunks
            : (int)Math.Clamp(BitOperations.RoundUpToPowerOf2((uint)(chunks / (threads * 4)) + 1) >> 1, 16, MaxPieceChunks);
        fixed (byte* p = data)
        {
            var basePtr = (nint)p;
            AbsorbSubtrees(chunks, pieceMax, threads, (first, count, cv) =>
                Blake3Lanes.SubtreeChainingValue(new ReadOnlySpan<byte>((void*)(basePtr + (nint)(first * ChunkLen)), count * ChunkLen),
                    cv.Counter, cv.Output));
        }
    }

    /// <summary>Where an aligned subtree's chaining value goes, with the chunk counter of its first chunk.</summary>
    internal readonly ref struct SubtreeTarget
    {
        public SubtreeTarget(ulong counter, Span<uint> output) { Counter = counter; Output = output; }
        public ulong Counter { get; }
        public Span<uint> Output { get; }
    }

    /// <summary>Hashes the subtree of <paramref name="chunks"/> chunks that starts <paramref name="first"/> chunks into the run.</summary>
    internal delegate void SubtreeHasher(long first, int chunks, SubtreeTarget target);

    /// <summary>Pieces planned but not yet merged, at most: bounds the chaining values held (32 bytes each).</summary>
    private const int SubtreeWindow = 64;

    /// <summary>
    /// The one planner of the parallel tree: absorbs <paramref name="wholeChunks"/> whole chunks (none of them the last
    /// of the input) from the state's chunk boundary. They are cut into aligned power-of-two subtrees of at most
    /// <paramref name="pieceMax"/> chunks, which the calling thread and up to <paramref name="maxThreads"/> - 1 pool
    /// threads take one at a time (no barrier between groups of pieces: a core that finishes early takes the next piece);
    /// chaining values are merged in input order as soon as the pieces before them are done, so the digest does not
    /// depend on the thread count. At most <see cref="SubtreeWindow"/> pieces are in flight. <paramref name="progress"/>
    /// runs on the calling thread with the number of chunks merged so far; cancellation is checked before every piece.
    /// </summary>
    internal void AbsorbSubtrees(long wholeChunks, int pieceMax, int maxThreads, SubtreeHasher hashPiece,
        CancellationToken cancel = default, Action<long>? progress = null)
    {
        if (wholeChunks <= 0) return;
        var run = new SubtreeRun(this, wholeChunks, pieceMax, hashPiece, cancel);
        var helpers = (int)Math.Min(maxThreads - 1, (wholeChunks - 1) / pieceMax);
        HashConcurrencyProbe.CountHelpers(helpers);
        for (var i = 0; i < helpers; i++) _ = Task.Run(run.Help);
        var probe = HashConcurrencyProbe.Enter();
        try { run.Work(progress); }
        finally { HashConcurrencyProbe.Exit(probe); }
        run.Complete();
    }

    /// <summary>The shared state of one <see cref="AbsorbSubtrees"/> call; every field is guarded by the instance's lock.</summary>
    private sealed class SubtreeRun
    {
        private readonly object _gate = new();
        private readonly Blake3Compact _state;
        private readonly long _wholeChunks;
        private readonly int _pieceMax;
        private readonly SubtreeHasher _hashPiece;
        private readonly CancellationToken _cancel;
        private readonly ulong _firstCounter;
        private readonly uint[] _cvs = new uint[SubtreeWindow * 8];
        private readonly int[] _sizes = new int[SubtreeWindow];
        private readonly bool[] _done = new bool[SubtreeWindow];
        private long _planned;      // chunks handed out
        private long _issued;       // pieces handed out
        private long _merged;       // pieces pushed onto the tree
        private long _mergedChunks;
        private Exception? _failure;
        private int _helping;       // pool threads inside Work
        private bool _closed;       // the caller is done: a helper that starts now has nothing to do

        public SubtreeRun(Blake3Compact state, long wholeChunks, int pieceMax, SubtreeHasher hashPiece, CancellationToken cancel)
        {
            _state = state;
            _wholeChunks = wholeChunks;
            _pieceMax = pieceMax;
            _hashPiece = hashPiece;
            _cancel = cancel;
            _firstCounter = state.AlignToChunk();
        }

        public void Work(Action<long>? progress)
        {
            while (true)
            {
                long piece, first;
                int size;
                lock (_gate)
                {
                    while (true)
                    {
                        if (_failure is not null || _cancel.IsCancellationRequested || _planned >= _wholeChunks) return;
                        if (_issued - _merged < SubtreeWindow) break;
                        Monitor.Wait(_gate);
                    }
                    piece = _issued++;
                    first = _planned;
                    size = SubtreeChunks(_firstCounter + (ulong)first, _wholeChunks - first, _pieceMax);
                    _planned += size;
                    _sizes[piece % SubtreeWindow] = size;
                }
                try
                {
                    // The slot is this thread's until it is marked done: the merge reads it only after that, under the lock.
                    _hashPiece(first, size, new SubtreeTarget(_firstCounter + (ulong)first, _cvs.AsSpan((int)(piece % SubtreeWindow) * 8, 8)));
                }
                catch (Exception ex)
                {
                    lock (_gate)
                    {
                        _failure ??= ex;
                        Monitor.PulseAll(_gate);
                    }
                    return;
                }
                long merged;
                lock (_gate)
                {
                    _done[piece % SubtreeWindow] = true;
                    while (_merged < _issued && _done[_merged % SubtreeWindow])
                    {
                        var slot = (int)(_merged % SubtreeWindow);
                        _state.PushSubtree(_cvs.AsSpan(slot * 8, 8), _sizes[slot]);
                        _mergedChunks += _sizes[slot];
                        _done[slot] = false;
                        _merged++;
                    }
                    merged = _mergedChunks;
                    Monitor.PulseAll(_gate);
                }
                progress?.Invoke(merged);
            }
        }

        /// <summary>
        /// A pool thread's share. The caller never waits for a helper that has not started (on a busy pool it may start
        /// only after the work is done, and then returns at once), only for those inside <see cref="Work"/>.
        /// </summary>
        public void Help()
        {
            lock (_gate)
            {
                if (_closed) return;
                _helping++;
            }
            var probe = HashConcurrencyProbe.Enter();
            try { Work(null); }
            finally
            {
                HashConcurrencyProbe.Exit(probe);
                lock (_gate)
                {
                    _helping--;
                    Monitor.PulseAll(_gate);
                }
            }
        }

        /// <summary>After the caller's own share: waits for the helpers still working, then rethrows the first failure or the cancellation.</summary>
        public void Complete()
        {
            lock (_gate)
            {
                _closed = true;
                while (_helping > 0) Monitor.Wait(_gate);
            }
            if (_failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_failure).Throw();
            _cancel.ThrowIfCancellationRequested();
            if (_mergedChunks != _wholeChunks) throw new InvalidOperationException("BLAKE3 subtree run ended early.");
        }
    }

    private void FinishChunk()
    {
        OutputChainingValue(_cv, _block, _blockLen, _chunkCounter, ChunkFlags(end: true), _chunkCv);
        _chunkCounter++;
        AddChainingValue(_chunkCv, _chunkCounter);
        IV.CopyTo(_cv, 0);
        _blockLen = 0;
        _blocksCompressed = 0;
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

    private void AddChainingValue(Span<uint> cv, ulong totalChunks)
    {
        // Merge completed subtrees: one merge per trailing zero bit of the count (in units of the new subtree's size).
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
    /// The BLAKE3 compression function; writes the first 8 words of the output (the chaining value). Fully unrolled
    /// over locals, with the message schedule of each round written out, so the JIT keeps the state in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Compress(ReadOnlySpan<uint> cv, ReadOnlySpan<uint> m, ulong counter, uint blockLen, uint flags, Span<uint> output)
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
