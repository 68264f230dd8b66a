using Microsoft.Win32.SafeHandles;
using Requiem.Engine.Cas;
using Requiem.Engine.IO;

namespace Requiem.Engine.Execution;

/// <summary>A declared output that exists but was not captured, and why (<c>skipped_outputs</c> in a result).</summary>
public sealed class SkippedOutput
{
    /// <summary>Not a regular file: a FIFO, device, socket or other special file (reading it could block or never end).</summary>
    public const string NotRegularFile = "not_regular_file";
    /// <summary>A regular file with more than one hard link: it may be a host file the command linked into the workspace.</summary>
    public const string HardLink = "hard_link";
    /// <summary>Larger than the policy's <c>max_output_file_bytes</c>.</summary>
    public const string TooLarge = "too_large";
    /// <summary>The last component became a symbolic link between resolving and opening it.</summary>
    public const string Symlink = "symlink";
    /// <summary>It could not be opened or read (permissions, an I/O error).</summary>
    public const string Unreadable = "unreadable";

    public string Path { get; set; } = "";
    public string Reason { get; set; } = "";
    public string Detail { get; set; } = "";

    public override string ToString() => $"{Path}: {Reason} ({Detail})";
}

/// <summary>
/// Captures one output file without trusting what the command left behind: the file is opened without following a
/// symbolic link and without blocking (a FIFO opens at once), its type, link count and size are read from the opened
/// descriptor, and only a regular file with one link and at most the size cap is read — never more than the cap.
/// </summary>
internal static class OutputFileCapture
{
    /// <summary>
    /// Whether <paramref name="path"/> (links followed) is a regular file, checked with statx, which never opens it: a FIFO
    /// or a device named as a command must not be opened for hashing (the open or the read would never end). True off Linux.
    /// </summary>
    public static bool IsRegularFile(string path)
    {
        if (!OperatingSystem.IsLinux()) return true;
        return Interop.Libc.Statx(NoFollowOpen.AT_FDCWD, path, 0, NoFollowOpen.STATX_TYPE, out var st) == 0
            && (st.Mode & NoFollowOpen.S_IFMT) == NoFollowOpen.S_IFREG;
    }

    /// <summary>What happened to one output: stored (<see cref="Put"/>), skipped (<see cref="Skipped"/>), or gone (both null).</summary>
    public readonly record struct Outcome(CasPutResult? Put, SkippedOutput? Skipped);

    /// <param name="batch">Stages small files in this batch; null stores them in <paramref name="store"/> directly.</param>
    public static Outcome Capture(string fullPath, string relative, long maxBytes, CasWriteBatch? batch, CasStore store, CancellationToken cancel)
    {
        if (!OperatingSystem.IsLinux()) return CapturePortable(fullPath, relative, maxBytes, batch, store, cancel);
        var opened = NoFollowOpen.Open(fullPath, statMask: NoFollowOpen.STATX_MODE | NoFollowOpen.STATX_NLINK | NoFollowOpen.STATX_SIZE);
        switch (opened.Status)
        {
            case NoFollowStatus.Missing when opened.Errno == NoFollowOpen.ENOENT: return new Outcome(null, null);
            case NoFollowStatus.Symlink: return Skip(relative, SkippedOutput.Symlink, "the path is a symbolic link");
            case NoFollowStatus.NoDevice: return Skip(relative, SkippedOutput.NotRegularFile, "a socket or a device without a driver");
            case NoFollowStatus.NotRegular: return Skip(relative, SkippedOutput.NotRegularFile, opened.TypeName);
            case NoFollowStatus.Regular: break;
            default: return Skip(relative, SkippedOutput.Unreadable, opened.ErrorText);
        }
        using var handle = new SafeFileHandle(opened.Descriptor, ownsHandle: true);
        var st = opened.Stat;
        if (st.Nlink != 1)
            return Skip(relative, SkippedOutput.HardLink, $"{st.Nlink} hard links: the same file may be reachable outside the workspace");
        if (st.Size > (ulong)maxBytes)
            return Skip(relative, SkippedOutput.TooLarge, $"{st.Size} bytes; max_output_file_bytes is {maxBytes}");
        try
        {
            return Read(handle, (long)st.Size, relative, maxBytes, batch, store, cancel);
        }
        catch (IOException ex)
        {
            return Skip(relative, SkippedOutput.Unreadable, ex.Message);
        }
    }

    private static Outcome Read(SafeFileHandle handle, long size, string relative, long maxBytes, CasWriteBatch? batch, CasStore store, CancellationToken cancel)
    {
        if (size <= CasStore.SmallObjectLimit)
        {
            // One byte more than fstat's size tells a file that grew since (a process still writing it) from one that did not.
            var buffer = new byte[size + 1];
            var total = 0;
            while (total < buffer.Length)
            {
                cancel.ThrowIfCancellationRequested();
                var n = RandomAccess.Read(handle, buffer.AsSpan(total), total);
                if (n == 0) break;
                total += n;
            }
            if (total > maxBytes) return Skip(relative, SkippedOutput.TooLarge, $"grew past max_output_file_bytes ({maxBytes}) while it was read");
            if (total < buffer.Length) return new Outcome(batch is not null ? batch.PutBytes(buffer.AsSpan(0, total)) : store.PutBytes(buffer.AsSpan(0, total)), null);
            // It grew past the small-object size while being read: stream it (still capped).
        }
        using var input = new CappedStream(new FileStream(handle, FileAccess.Read, 1), maxBytes);
        try
        {
            return new Outcome(store.PutStream(input, cancel: cancel), null);
        }
        catch (OutputTooLargeException)
        {
            return Skip(relative, SkippedOutput.TooLarge, $"grew past max_output_file_bytes ({maxBytes}) while it was read");
        }
    }

    private static Outcome CapturePortable(string fullPath, string relative, long maxBytes, CasWriteBatch? batch, CasStore store, CancellationToken cancel)
    {
        var info = new FileInfo(fullPath);
        if (!info.Exists) return new Outcome(null, null);
        if (info.LinkTarget is not null) return Skip(relative, SkippedOutput.Symlink, "the path is a symbolic link");
        if (info.Length > maxBytes) return Skip(relative, SkippedOutput.TooLarge, $"{info.Length} bytes; max_output_file_bytes is {maxBytes}");
        return new Outcome(batch is not null ? batch.PutFile(fullPath, cancel: cancel) : store.PutFile(fullPath, cancel: cancel), null);
    }

    private static Outcome Skip(string relative, string reason, string detail) =>
        new(null, new SkippedOutput { Path = relative, Reason = reason, Detail = detail });

    private sealed class OutputTooLargeException : Exception;

    /// <summary>Reads through to <paramref name="inner"/> and throws once more than <paramref name="max"/> bytes came.</summary>
    private sealed class CappedStream(Stream inner, long max) : Stream
    {
        private long _read;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = inner.Read(buffer);
            _read += n;
            if (_read > max) throw new OutputTooLargeException();
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
