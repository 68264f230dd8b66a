using System.Buffers;
using System.Text;
using Requiem.Engine.Cas;

namespace Requiem.Engine.Processes;

/// <summary>
/// Captures at most <c>max</c> bytes of a stream (in memory up to 1 MiB, then in a temp file in the CAS), reads and
/// discards the rest with one fixed buffer — memory stays flat — and after <see cref="OverflowDrainBytes"/>
/// discarded bytes stops reading and closes the pipe. Used for the output of runs started by <see cref="ProcessHost"/>.
/// </summary>
public sealed class BoundedCapture : IDisposable
{
    /// <summary>Bytes read and discarded after the cap before the pipe is closed (the writer then gets SIGPIPE/EPIPE).</summary>
    public const long OverflowDrainBytes = 16L << 20;
    /// <summary>Captured output beyond this many bytes moves from memory to a temp file in the CAS.</summary>
    internal const int SpillThreshold = 1 << 20;

    private readonly long _max;
    private readonly CasStore _store;
    private MemoryStream? _memory = new();
    private FileStream? _file;
    private string? _tempPath;

    public BoundedCapture(long max, CasStore store)
    {
        _max = max;
        _store = store;
    }

    public long Captured { get; private set; }
    public long Discarded { get; private set; }
    public bool Truncated { get; private set; }

    /// <summary>Reads the stream to its end (blocking; run on a dedicated thread).</summary>
    public void Pump(Stream source)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (true)
            {
                int n;
                try
                {
                    n = source.Read(buffer, 0, 64 * 1024);
                }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
                {
                    return;
                }
                if (n == 0) return;
                var keep = (int)Math.Min(n, _max - Captured);
                if (keep > 0) Write(buffer.AsSpan(0, keep));
                if (keep < n)
                {
                    Truncated = true;
                    Discarded += n - keep;
                    if (Discarded > OverflowDrainBytes)
                    {
                        try { source.Dispose(); } catch (IOException) { }
                        return;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Write(ReadOnlySpan<byte> data)
    {
        if (_memory is not null && _memory.Length + data.Length > SpillThreshold)
        {
            _tempPath = _store.NewTempPath();
            Directory.CreateDirectory(Path.GetDirectoryName(_tempPath)!);
            _file = new FileStream(_tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 1 << 16);
            _memory.Position = 0;
            _memory.CopyTo(_file);
            _memory = null;
        }
        if (_memory is not null) _memory.Write(data);
        else _file!.Write(data);
        Captured += data.Length;
    }

    /// <summary>The first bytes captured, as UTF-8 text (for recognising a launcher's own error message).</summary>
    public string Head(int maxBytes)
    {
        if (_memory is not null) return Encoding.UTF8.GetString(_memory.GetBuffer(), 0, (int)Math.Min(maxBytes, _memory.Length));
        var buffer = new byte[maxBytes];
        _file!.Flush();
        var n = RandomAccess.Read(_file.SafeFileHandle, buffer, 0);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>Stages the captured bytes in <paramref name="batch"/> (visible and durable at its commit).</summary>
    public CasPutResult Store(CasWriteBatch batch)
    {
        if (_memory is not null) return batch.PutBytes(_memory.GetBuffer().AsSpan(0, (int)_memory.Length));
        _file!.Flush(flushToDisk: false);
        return batch.PutFile(_tempPath!);
    }

    public void Dispose()
    {
        _file?.Dispose();
        if (_tempPath is not null)
        {
            try { File.Delete(_tempPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
