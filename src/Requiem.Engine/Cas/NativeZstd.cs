using System.Runtime.InteropServices;

namespace Requiem.Engine.Cas;

/// <summary>
/// Streaming zstd compression through the system's native libzstd (the library the zstd CLI uses) when it can be
/// loaded; callers fall back to the managed ZstdSharp port otherwise. The output is the same format either way: one
/// standard zstd frame with the content size in its header when it was pledged.
/// </summary>
internal sealed unsafe class NativeZstdCompressStream : IO.WriteOnlyStream
{
    private static readonly IntPtr s_lib = Load();
    private static readonly delegate* unmanaged<IntPtr> s_createCCtx;
    private static readonly delegate* unmanaged<IntPtr, nuint> s_freeCCtx;
    private static readonly delegate* unmanaged<IntPtr, int, int, nuint> s_setParameter;
    private static readonly delegate* unmanaged<IntPtr, ulong, nuint> s_setPledgedSrcSize;
    private static readonly delegate* unmanaged<IntPtr, Buffer*, Buffer*, int, nuint> s_compressStream2;
    private static readonly delegate* unmanaged<nuint, uint> s_isError;
    private static readonly delegate* unmanaged<nuint, IntPtr> s_getErrorName;

    private const int ZSTD_c_compressionLevel = 100;
    private const int ZSTD_e_continue = 0;
    private const int ZSTD_e_end = 2;
    private const int OutSize = 1 << 17;

    [StructLayout(LayoutKind.Sequential)]
    private struct Buffer
    {
        public void* Ptr;
        public nuint Size;
        public nuint Pos;
    }

    static NativeZstdCompressStream()
    {
        if (s_lib == IntPtr.Zero) return;
        try
        {
            s_createCCtx = (delegate* unmanaged<IntPtr>)NativeLibrary.GetExport(s_lib, "ZSTD_createCCtx");
            s_freeCCtx = (delegate* unmanaged<IntPtr, nuint>)NativeLibrary.GetExport(s_lib, "ZSTD_freeCCtx");
            s_setParameter = (delegate* unmanaged<IntPtr, int, int, nuint>)NativeLibrary.GetExport(s_lib, "ZSTD_CCtx_setParameter");
            s_setPledgedSrcSize = (delegate* unmanaged<IntPtr, ulong, nuint>)NativeLibrary.GetExport(s_lib, "ZSTD_CCtx_setPledgedSrcSize");
            s_compressStream2 = (delegate* unmanaged<IntPtr, Buffer*, Buffer*, int, nuint>)NativeLibrary.GetExport(s_lib, "ZSTD_compressStream2");
            s_isError = (delegate* unmanaged<nuint, uint>)NativeLibrary.GetExport(s_lib, "ZSTD_isError");
            s_getErrorName = (delegate* unmanaged<nuint, IntPtr>)NativeLibrary.GetExport(s_lib, "ZSTD_getErrorName");
            Available = true;
        }
        catch (EntryPointNotFoundException)
        {
            Available = false;
        }
    }

    private static IntPtr Load()
    {
        foreach (var name in new[] { "libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd.dylib", "libzstd.dll", "zstd.dll" })
        {
            if (NativeLibrary.TryLoad(name, out var h)) return h;
        }
        return IntPtr.Zero;
    }

    /// <summary>True when the native library was found (and not disabled for tests).</summary>
    public static bool Available { get; private set; }

    /// <summary>False forces the managed port (tests of the fallback).</summary>
    public static bool Enabled { get; set; } = true;

    private readonly Stream _inner;
    private readonly byte[] _out = new byte[OutSize];
    private IntPtr _cctx;

    public NativeZstdCompressStream(Stream inner, int level, long pledgedSize)
    {
        _inner = inner;
        _cctx = s_createCCtx();
        if (_cctx == IntPtr.Zero) throw new InvalidOperationException("ZSTD_createCCtx failed.");
        Check(s_setParameter(_cctx, ZSTD_c_compressionLevel, level));
        if (pledgedSize >= 0) Check(s_setPledgedSrcSize(_cctx, (ulong)pledgedSize));
    }


    public override void Write(ReadOnlySpan<byte> data)
    {
        fixed (byte* src = data)
        {
            var input = new Buffer { Ptr = src, Size = (nuint)data.Length, Pos = 0 };
            while (input.Pos < input.Size) Step(&input, ZSTD_e_continue);
        }
    }

    private nuint Step(Buffer* input, int op)
    {
        fixed (byte* dst = _out)
        {
            var output = new Buffer { Ptr = dst, Size = (nuint)_out.Length, Pos = 0 };
            var remaining = Check(s_compressStream2(_cctx, &output, input, op));
            if (output.Pos > 0) _inner.Write(_out, 0, (int)output.Pos);
            return remaining;
        }
    }

    /// <summary>Ends the frame (writes the epilogue).</summary>
    public void Finish()
    {
        var empty = new Buffer { Ptr = null, Size = 0, Pos = 0 };
        while (Step(&empty, ZSTD_e_end) != 0) { }
    }

    private static nuint Check(nuint code)
    {
        if (s_isError(code) != 0)
            throw new IOException("zstd: " + (Marshal.PtrToStringUTF8(s_getErrorName(code)) ?? "error"));
        return code;
    }

    protected override void Dispose(bool disposing)
    {
        if (_cctx != IntPtr.Zero)
        {
            s_freeCCtx(_cctx);
            _cctx = IntPtr.Zero;
        }
        base.Dispose(disposing);
    }
}
