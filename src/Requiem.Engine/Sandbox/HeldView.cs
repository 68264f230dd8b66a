using System.Diagnostics;
using System.Globalization;
using Requiem.Engine.IO;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// Hermetic and workspace file-system views built once per layout and copied by each run (root only, like
/// <see cref="SharedNetworkNamespace"/>). <c>requiem-launch --hold-view</c> builds the per-layout part of the view (the
/// read-only root, the read-only binds and symlinks, /dev's nodes, the mount points of what each run mounts) in a mount
/// namespace of its own; this process opens that namespace (<c>/proc/PID/ns/mnt</c>) and keeps the descriptor, so the
/// namespace lives exactly as long as the engine and no process is left holding it. A run passes
/// <c>--join-view /proc/OURPID/fd/N --view-inode INODE</c>: the launcher copies the view and mounts only the run's own
/// parts (its workspace, /tmp, /var/tmp, /dev/shm, devpts, /proc). That takes the set-up of the view's ≈ 25 mounts,
/// the pivot_root and the old root's detach off every run (docs/BENCH.md 1f).
/// <para>
/// Freshness. A directory bound read-only is live (a file changed, added or removed in it is seen at once), but what a
/// path resolved to is fixed when the view is built: a file replaced by rename, a directory replaced, a symlink
/// re-pointed, a path appearing or vanishing, a mount made on the host. So a view is reused only while (1) the layout is
/// the same — the key is the launcher's view options, which come from <see cref="FilesystemView.Layout"/>, and that
/// resolves <c>readonly_paths</c> again whenever a directory it read changed — and (2) every source still is what the
/// holder bound: the holder reports the device and inode of each bound source (the bind pins that inode, so its number
/// cannot be given to a new file while the view exists) and the target of each symlink it recreated, and each run
/// re-checks them, and each hidden path (workspace mode) must still be the directory whose tmpfs covers it (one statx or
/// readlink per path; the declared inputs, like the workspace, are captured by each run
/// itself, so they are neither in the key nor checked); and (3) this mount namespace's mount table has not changed since
/// (/proc/self/mountinfo is polled; any mount or unmount retires every view). A layout gets a held view from its second
/// run on (one-off layouts, such as a fresh workspace per run, never pay for a holder); at most
/// <see cref="MaxViews"/> are kept, least recently used first out. A retired view's descriptor is closed only after
/// <see cref="RetireDelay"/>, so a run that was given it a moment before still finds it (and if not, the launcher's
/// inode check refuses it rather than join another namespace).
/// </para>
/// </summary>
public static class HeldView
{
    public const int MaxViews = 4;
    internal static readonly TimeSpan RetireDelay = TimeSpan.FromSeconds(30);

    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
    private const uint STATX_INO = 0x100;
    private const short POLLPRI = 0x2, POLLERR = 0x8;

    private static readonly object s_lock = new();
    private static readonly LinkedList<View> s_views = new();
    private static readonly List<(int Fd, DateTime At)> s_retired = new();
    private static readonly Dictionary<string, int> s_seen = new(StringComparer.Ordinal);
    private static int s_mountinfo = -2;

    /// <summary>Why the last holder could not be built (for the health notes); null after a success.</summary>
    public static string? LastError { get; private set; }

    /// <summary>How many views were built in this process (tests check that a run reused one, or that a change rebuilt it).</summary>
    public static int Built { get; private set; }

    /// <summary>What the holder reports of one read-only bind: the bound source's identity, or the target of a recreated symlink.</summary>
    private sealed record Source(string Path, string? LinkTarget, uint Major, uint Minor, ulong Inode);

    private sealed record View(string Key, int Fd, string JoinPath, ulong Inode, Source[] Sources);

    /// <summary>
    /// The view to join for <paramref name="layout"/> (path and namespace inode for the launcher), or null: build the view
    /// per run (a layout seen for the first time unless <paramref name="eager"/>, one that cannot be held, or a holder
    /// that failed — <see cref="LastError"/> says why).
    /// </summary>
    public static (string Path, ulong Inode)? Get(string launcher, FilesystemLayout layout, bool eager)
    {
        if (!CanHold(layout)) return null;
        // The declared inputs are the run's own (captured per run, like the workspace): not part of the held view or its key.
        var held = layout with { Mounts = layout.Mounts.Where(m => !IsRunInput(layout, m)).ToArray() };
        var args = FilesystemView.LauncherArgs(held);
        var key = launcher + "\0" + string.Join('\0', args);
        lock (s_lock)
        {
            CloseRetired();
            if (!WatchingMounts())
            {
                LastError = "cannot watch /proc/self/mountinfo for mount changes";
                return null;
            }
            if (MountTableChanged()) RetireAll();
            for (var node = s_views.First; node is not null; node = node.Next)
            {
                if (node.Value.Key != key) continue;
                if (StillBound(node.Value))
                {
                    s_views.Remove(node);
                    s_views.AddFirst(node);
                    return (node.Value.JoinPath, node.Value.Inode);
                }
                Retire(node);
                break;
            }
            if (!eager)
            {
                if (s_seen.Count > 256) s_seen.Clear();
                s_seen[key] = s_seen.TryGetValue(key, out var n) ? n + 1 : 1;
                if (s_seen[key] < 2) return null;
            }
            var built = Build(launcher, key, args, held);
            if (built is null) return null;
            s_views.AddFirst(built);
            while (s_views.Count > MaxViews) Retire(s_views.Last!);
            return (built.JoinPath, built.Inode);
        }
    }

    /// <summary>
    /// Hermetic and workspace layouts (a workspace view holds the host's tree as its mounts were when it was built: any
    /// mount or unmount since retires it, as for every view), and none with a path the holder takes from the host (read-only bind, hidden path, /dev) at or below one a run mounts over it (a
    /// private tmpfs, the workspace): the run's mount would cover it. Declared inputs (read-only binds inside the
    /// workspace) are the run's own, attached per run. The launcher applies the same rules.
    /// </summary>
    internal static bool CanHold(FilesystemLayout layout)
    {
        if (layout.Mode is not (FilesystemView.Hermetic or FilesystemView.Workspace)) return false;
        var perRun = layout.Mounts.Where(m => m.Kind is MountKind.Tmpfs or MountKind.Bind).Select(m => m.Path).ToArray();
        return layout.Mounts.Where(m => m.Kind is not (MountKind.Tmpfs or MountKind.Bind) && !IsRunInput(layout, m))
            .All(m => !perRun.Any(p => IsUnder(m.Path, p)));
    }

    /// <summary>A read-only bind at or below a read-write one: a declared input inside the workspace.</summary>
    private static bool IsRunInput(FilesystemLayout layout, FilesystemMount m) =>
        m.Kind == MountKind.ReadOnlyBind && layout.Mounts.Any(b => b.Kind == MountKind.Bind && IsUnder(m.Path, b.Path));

    private static bool IsUnder(string path, string dir) => path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal);

    /// <summary>Every view retired (tests; and a changed mount table).</summary>
    public static void Reset()
    {
        lock (s_lock)
        {
            RetireAll();
            s_seen.Clear();
        }
    }

    private static View? Build(string launcher, string key, List<string> args, FilesystemLayout layout)
    {
        var bound = layout.Mounts.Where(m => m.Kind == MountKind.ReadOnlyBind).Select(m => m.Path).ToArray();
        // A hidden path's tmpfs covers the directory that was at the path when the holder mounted it: stat before the
        // holder starts and again once it is ready, so a directory swapped in between is never taken as hidden.
        var hidden = layout.Mounts.Where(m => m.Kind == MountKind.Hide).Select(m => Identity(m.Path)).ToArray();
        if (hidden.Any(h => h is null)) { LastError = "a hidden path could not be examined"; return null; }
        Process? holder = null;
        var fd = -1;
        try
        {
            holder = LauncherHolder.Start(launcher, args.Prepend("--hold-view"));
            var sources = new List<Source>();
            var deadline = DateTime.UtcNow + LauncherHolder.ReadyTimeout;
            for (;;)
            {
                var line = LauncherHolder.ReadLine(holder, deadline) ?? throw new IOException("the holder did not report ready: " + StderrHead(holder));
                if (line == "ready") break;
                if (sources.Count == bound.Length) throw new IOException("the holder reported more sources than it was given");
                sources.Add(ParseSource(bound[sources.Count], line));
            }
            if (sources.Count != bound.Length) throw new IOException("the holder reported fewer sources than it was given");
            if (!hidden.All(h => SameIdentity(h!))) throw new IOException("a hidden path was replaced while its view was built");
            sources.AddRange(hidden!);
            var nsPath = $"/proc/{holder.Id.ToString(CultureInfo.InvariantCulture)}/ns/mnt";
            fd = Interop.Libc.Open(nsPath, O_RDONLY | O_CLOEXEC);
            if (fd < 0) throw new IOException($"cannot open {nsPath} (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
            var joinPath = $"/proc/{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}/fd/{fd.ToString(CultureInfo.InvariantCulture)}";
            var inode = SharedNetworkNamespace.NamespaceInode(joinPath) ?? throw new IOException("cannot read " + joinPath);
            if (SharedNetworkNamespace.NamespaceInode("/proc/self/ns/mnt") == inode) throw new IOException("the holder is in our own mount namespace");
            var view = new View(key, fd, joinPath, inode, sources.ToArray());
            fd = -1;
            LastError = null;
            Built++;
            return view;
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or System.ComponentModel.Win32Exception or AggregateException or FormatException)
        {
            LastError = ex.Message;
            return null;
        }
        finally
        {
            if (fd >= 0) Interop.Libc.Close(fd);
            if (holder is not null)
            {
                // Our descriptor holds the namespace now: the holder's stdin reaching EOF ends it.
                try { holder.StandardInput.Close(); } catch (IOException) { }
                if (!holder.WaitForExit(1000))
                {
                    try { holder.Kill(); } catch (InvalidOperationException) { }
                }
                holder.Dispose();
            }
        }
    }

    private static string StderrHead(Process holder)
    {
        try
        {
            if (!holder.WaitForExit(1000)) return "(still running)";
            var text = holder.StandardError.ReadToEnd().Trim();
            return text.Length > 400 ? text[..400] : text;
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException) { return "(no message)"; }
    }

    private static Source ParseSource(string path, string line)
    {
        if (line.StartsWith("link ", StringComparison.Ordinal)) return new Source(path, line[5..], 0, 0, 0);
        var f = line.Split(' ');
        if (f.Length != 4 || f[0] != "bind") throw new FormatException("the holder reported: " + line);
        return new Source(path, null, uint.Parse(f[1], CultureInfo.InvariantCulture), uint.Parse(f[2], CultureInfo.InvariantCulture),
            ulong.Parse(f[3], CultureInfo.InvariantCulture));
    }

    /// <summary>A directory's identity now, as a <see cref="Source"/> (a hidden path: the directory its tmpfs covers); null when it cannot be examined.</summary>
    private static Source? Identity(string path) =>
        Interop.Libc.Statx(NoFollowOpen.AT_FDCWD, path, 0, STATX_INO, out var st) == 0 ? new Source(path, null, st.DevMajor, st.DevMinor, st.Ino) : null;

    private static bool SameIdentity(Source s) =>
        Interop.Libc.Statx(NoFollowOpen.AT_FDCWD, s.Path, 0, STATX_INO, out var st) == 0 && st.Ino == s.Inode && st.DevMajor == s.Major && st.DevMinor == s.Minor;

    /// <summary>
    /// Each bound source still resolves to the inode the holder bound, each recreated symlink still has its target, and
    /// each hidden path still is the directory its tmpfs covers.
    /// </summary>
    private static bool StillBound(View view)
    {
        foreach (var s in view.Sources)
        {
            if (s.LinkTarget is { } target)
            {
                string? now;
                try { now = new FileInfo(s.Path).LinkTarget; }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
                if (now != target) return false;
                continue;
            }
            if (!SameIdentity(s)) return false;
        }
        return true;
    }

    /// <summary>/proc/self/mountinfo open for <see cref="MountTableChanged"/> (opened once; without it nothing is held).</summary>
    private static bool WatchingMounts()
    {
        if (s_mountinfo == -2) s_mountinfo = Interop.Libc.Open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        return s_mountinfo >= 0;
    }

    /// <summary>True when a mount or unmount happened in this process's mount namespace since the last call (poll on mountinfo).</summary>
    private static bool MountTableChanged()
    {
        var p = new Interop.Libc.PollFd { Fd = s_mountinfo, Events = POLLPRI };
        return Interop.Libc.Poll(ref p, 1, 0) > 0 && (p.Revents & (POLLPRI | POLLERR)) != 0;
    }

    private static void Retire(LinkedListNode<View> node)
    {
        s_views.Remove(node);
        s_retired.Add((node.Value.Fd, DateTime.UtcNow));
    }

    private static void RetireAll()
    {
        while (s_views.First is { } node) Retire(node);
    }

    private static void CloseRetired()
    {
        var now = DateTime.UtcNow;
        for (var i = s_retired.Count - 1; i >= 0; i--)
        {
            if (now - s_retired[i].At < RetireDelay) continue;
            Interop.Libc.Close(s_retired[i].Fd);
            s_retired.RemoveAt(i);
        }
    }
}
