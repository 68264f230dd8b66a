using System.Diagnostics;
using System.Globalization;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// One empty network namespace kept alive for the life of this process (<c>requiem-launch --hold-netns</c>, which exits
/// when our end of its stdin pipe closes), joined by every deny_network run instead of creating one per run: that
/// saves about 0.5 ms per run here plus the kernel's deferred teardown work. The namespace has only a loopback
/// interface, down, and runs cannot bring it up (the launcher drops CAP_NET_ADMIN and CAP_SYS_ADMIN), so runs can
/// reach nothing over IP — not the host, not each other. The launcher checks the namespace's inode before joining,
/// so a holder that died and a reused pid can never lead a run into another namespace. Root only (a user namespace
/// per run is needed otherwise).
/// </summary>
public static class SharedNetworkNamespace
{
    private static readonly object s_lock = new();
    private static Process? s_holder;
    private static string? s_path;
    private static ulong s_inode;

    /// <summary>The namespace path and inode to pass to the launcher, or null when no holder can be kept (use a fresh namespace).</summary>
    public static (string Path, ulong Inode)? Get(string launcher)
    {
        lock (s_lock)
        {
            if (s_holder is { HasExited: false } && s_path is not null) return (s_path, s_inode);
            s_holder?.Dispose();
            s_holder = null;
            s_path = null;
            Process? holder = null;
            try
            {
                holder = LauncherHolder.Start(launcher, new[] { "--hold-netns" });
                if (LauncherHolder.ReadLine(holder, DateTime.UtcNow + LauncherHolder.ReadyTimeout) != "ready") throw new IOException("the holder did not report ready");
                var path = $"/proc/{holder.Id.ToString(CultureInfo.InvariantCulture)}/ns/net";
                var inode = NamespaceInode(path) ?? throw new IOException("cannot read " + path);
                if (NamespaceInode("/proc/self/ns/net") == inode) throw new IOException("the holder is in our own network namespace");
                s_holder = holder;
                s_path = path;
                s_inode = inode;
                holder = null;
                return (s_path, s_inode);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or System.ComponentModel.Win32Exception or AggregateException)
            {
                return null;
            }
            finally
            {
                if (holder is not null)
                {
                    try { holder.Kill(); } catch (InvalidOperationException) { }
                    holder.Dispose();
                }
            }
        }
    }

    /// <summary>The inode of a namespace file, read from its link text (<c>net:[4026532177]</c>).</summary>
    internal static ulong? NamespaceInode(string path)
    {
        string? target;
        try { target = new FileInfo(path).LinkTarget; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
        if (target is null) return null;
        var open = target.IndexOf('[', StringComparison.Ordinal);
        var close = target.IndexOf(']', StringComparison.Ordinal);
        return open >= 0 && close > open && ulong.TryParse(target.AsSpan(open + 1, close - open - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var inode)
            ? inode
            : null;
    }
}
