using System.Globalization;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// requiem-launch (src/native): one exec sets up the namespaces, the file-system view, the cgroup, the rlimits, the
/// capability drop and the seccomp filter with the kernel's own calls.
/// </summary>
public sealed class LauncherIsolator : LinuxIsolator
{
    /// <summary>requiem-launch's exit status when it could not set up the sandbox (its message starts "requiem-launch: ").</summary>
    public const int SetupFailed = 125;

    public LauncherIsolator(string path, bool userNamespace)
    {
        Path = path;
        UserNamespace = userNamespace;
    }

    public string Path { get; }
    /// <summary><c>--userns</c>: a user namespace mapping the caller to itself, because we are not root.</summary>
    public bool UserNamespace { get; }
    /// <summary>deny_network runs join one held empty namespace (<see cref="SharedNetworkNamespace"/>).</summary>
    public bool SharedNetns { get; init; }
    /// <summary>The launcher applies the spec's rlimits (probed).</summary>
    public bool Limits { get; init; }

    public override string Name => "requiem-launch";

    /// <summary>The launcher and its namespace's init.</summary>
    public override int CgroupOverhead => 2;

    public override LaunchCommand Build(LaunchSpec spec)
    {
        var chain = new List<string> { Path };
        if (UserNamespace) chain.Add("--userns");
        chain.Add("--pidns");
        if (spec.DenyNetwork)
        {
            if (SharedNetns && SharedNetworkNamespace.Get(Path) is { } shared)
                chain.AddRange(new[] { "--join-netns", shared.Path, "--netns-inode", shared.Inode.ToString(CultureInfo.InvariantCulture) });
            else
                chain.Add("--netns");
        }
        if (spec.CgroupProcs is not null) chain.AddRange(new[] { "--cgroup-procs", spec.CgroupProcs });
        if (spec.Filesystem is { IsHost: false } layout) chain.AddRange(FilesystemView.LauncherArgs(layout));
        if (spec.Seccomp) chain.Add("--seccomp");
        if (Limits)
        {
            AddLimit(chain, "--as", spec.MaxMemoryBytes);
            AddLimit(chain, "--cpu", spec.MaxCpuSeconds);
            AddLimit(chain, "--nofile", spec.MaxOpenFiles);
            AddLimit(chain, "--nproc", spec.MaxProcessesRlimit);
        }
        chain.Add("--");
        chain.Add(spec.Command);
        chain.AddRange(spec.Argv);
        return ToCommand(chain);
    }

    public override bool IsSetupFailure(int exitCode, string stderrHead) =>
        exitCode == SetupFailed && stderrHead.StartsWith("requiem-launch: ", StringComparison.Ordinal);

    private static void AddLimit(List<string> chain, string option, long? value)
    {
        if (value is not { } v) return;
        chain.Add(option);
        chain.Add(v.ToString(CultureInfo.InvariantCulture));
    }
}
