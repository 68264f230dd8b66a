using System.Collections;
using Requiem.Engine.Sandbox;

namespace Requiem.Engine.Execution;

/// <summary>A request resolved against this machine: paths confined, command found, environment built, sandbox chosen.</summary>
public sealed class ExecPlan
{
    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    public required ExecRequest Request { get; init; }
    public required string WorkspaceRoot { get; init; }
    public required string WorkingDirectory { get; init; }
    public required string CommandPath { get; init; }
    public required SortedDictionary<string, string> Environment { get; init; }
    public required IReadOnlyList<(string Relative, string Full)> Inputs { get; init; }
    /// <summary>
    /// Every control the run was planned with, in planning order: the one record of what is enforced, what is missing
    /// (and why, and whether the request asked for it) and what the request opted out of. The views below read it.
    /// </summary>
    public required IReadOnlyList<PlannedControl> Planned { get; init; }
    /// <summary>Controls that will be applied to this run.</summary>
    public IEnumerable<string> Enforced => Planned.Where(c => c.Enforced).Select(c => c.Control);
    /// <summary>Controls the request asked for (or that are always wanted, or that it opted out of) that this run goes without.</summary>
    public IEnumerable<string> NotEnforced => Planned.Where(c => !c.Enforced).Select(c => c.Control);
    /// <summary>The missing controls this machine could not apply (an opt-out is not a gap); the confidence deductions are computed from these.</summary>
    public IEnumerable<PlannedControl> Gaps => Planned.Where(c => c.Reason is not null);
    /// <summary>Why each missing control is missing (goes into determinism_confidence.reasons).</summary>
    public IEnumerable<string> Reasons => Gaps.Select(g => g.Reason!);
    /// <summary>Requested controls that are missing.</summary>
    public IEnumerable<string> RequestedButMissing => Gaps.Where(g => g.Requested).Select(g => g.Control);
    /// <summary>Problems with the request under its policy (denylisted explicit variables, strict-mode gaps).</summary>
    public required List<string> Violations { get; init; }
    /// <summary>What was in force for this run's files: <c>host</c>, <c>workspace</c> or <c>hermetic</c> (host when isolation could not be applied).</summary>
    public string FilesystemInForce => Filesystem is { IsHost: false } ? Request.Policy.Filesystem : FilesystemView.Host;
    /// <summary>Whether the run is planned with <paramref name="control"/> in force.</summary>
    public bool Enforces(string control) => Planned.Any(c => c.Enforced && c.Control == control);
    public required SandboxProbe Probe { get; init; }
    /// <summary>The mounts for <c>policy.filesystem</c> when they can be enforced here (null: the host's tree).</summary>
    public FilesystemLayout? Filesystem { get; init; }

    public static ExecPlan Create(ExecRequest req, SandboxProbe probe, IDictionary? hostEnvironment = null)
    {
        var policy = req.Policy;
        var root = WorkspacePaths.ResolveRoot(req.WorkspaceRoot);
        var cwd = WorkspacePaths.Confine(root, req.Cwd, "cwd");
        if (!Directory.Exists(cwd))
            throw new RequiemException("WorkingDirectoryNotFound", ErrorKind.ObjectNotFound, $"cwd '{req.Cwd}' is not a directory inside the workspace.", req.Cwd);

        var violations = new List<string>();
        var env = BuildEnvironment(req, hostEnvironment ?? System.Environment.GetEnvironmentVariables(), violations);
        var command = ResolveCommand(req, root, env);
        ArgumentLimits.Check(command, req.Argv, env);

        var inputs = new List<(string, string)>();
        var declaredInputs = new List<string>();
        foreach (var input in req.Inputs)
        {
            var full = WorkspacePaths.Confine(root, input, "input");
            declaredInputs.Add(full);
            if (Directory.Exists(full))
            {
                foreach (var f in Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                {
                    var real = WorkspacePaths.RealPath(f);
                    if (!WorkspacePaths.IsWithin(root, real))
                        throw new RequiemException("SymlinkEscapesWorkspace", ErrorKind.SecurityError, $"input '{f}' resolves outside the workspace.", f);
                    inputs.Add((Relative(root, f), real));
                }
            }
            else if (File.Exists(full)) inputs.Add((Relative(root, Path.Combine(root, input)), full));
            else throw new RequiemException("InputNotFound", ErrorKind.ObjectNotFound, $"input '{input}' does not exist in the workspace.", input);
        }
        foreach (var output in req.Outputs) WorkspacePaths.Confine(root, output, "output");

        var controls = new List<PlannedControl>
        {
            PlannedControl.InForce(Controls.CleanEnvironment), PlannedControl.InForce(Controls.OutputLimit), PlannedControl.InForce(Controls.Timeout),
        };
        if (req.Stdin is null) controls.Add(PlannedControl.InForce(Controls.StdinClosed));

        void Want(string control, bool requested)
        {
            var cap = probe.Capabilities.FirstOrDefault(c => c.Name == control);
            if (cap is { State: CapabilityStatus.Enforced } || (cap is { State: CapabilityStatus.Partial } && control == Controls.ProcessLimit))
            {
                controls.Add(PlannedControl.InForce(control));
                return;
            }
            controls.Add(new PlannedControl(control, false, requested, $"{control} {(requested ? "requested but " : "")}not enforced on this machine: {cap?.Detail ?? "unsupported"}"));
        }

        Want(Controls.ProcessTreeKill, false);
        // Both come from one mount layout: it is applied only when the probe saw both hold, so neither is claimed alone.
        var isolateFiles = policy.Filesystem != FilesystemView.Host
                           && probe.StatusOf(Controls.FilesystemIsolation) == CapabilityStatus.Enforced && probe.StatusOf(Controls.WorkspaceConfinement) == CapabilityStatus.Enforced;
        foreach (var control in new[] { Controls.FilesystemIsolation, Controls.WorkspaceConfinement })
        {
            if (policy.Filesystem == FilesystemView.Host) controls.Add(new PlannedControl(control, false, false, null));
            else if (isolateFiles) controls.Add(PlannedControl.InForce(control));
            else Want(control, true);
        }
        if (policy.DenyNetwork) Want(Controls.NetworkIsolation, true);
        if (policy.Seccomp && probe.Platform == "linux") Want(Controls.SeccompBpf, true);
        if (policy.MaxMemoryBytes is not null) Want(Controls.MemoryLimit, true);
        if (policy.MaxCpuSeconds is not null) Want(Controls.CpuLimit, true);
        if (policy.MaxOpenFiles is not null) Want(Controls.OpenFilesLimit, true);
        if (policy.MaxProcesses is not null) Want(Controls.ProcessLimit, true);
        if (probe.Platform == "windows") Want(Controls.JobObjects, false);

        if (policy.IsStrict)
        {
            foreach (var m in controls.Where(c => c.Reason is not null && c.Requested)) violations.Add($"strict policy: {m.Control} is requested but cannot be enforced here");
        }
        return new ExecPlan
        {
            Request = req,
            WorkspaceRoot = root,
            WorkingDirectory = cwd,
            CommandPath = command,
            Environment = env,
            Inputs = inputs,
            Planned = controls,
            Violations = violations,
            Probe = probe,
            Filesystem = isolateFiles
                ? FilesystemView.Layout(policy.Filesystem, root, declaredInputs, policy.ReadonlyPaths, policy.HiddenPaths)
                : null,
        };
    }



    public static string Relative(string root, string full) => Path.GetRelativePath(root, full).Replace('\\', '/');

    /// <summary>
    /// Nothing is inherited unless a name matches env_allowlist (exact, or a prefix pattern ending in '*') and no
    /// env_denylist entry; PATH defaults to a fixed system path; TZ=UTC, LC_ALL=C and LANG=C are fixed; the request's
    /// own env entries come last (a denylisted explicit entry is dropped and reported as a violation).
    /// </summary>
    public static SortedDictionary<string, string> BuildEnvironment(ExecRequest req, IDictionary host, List<string> violations)
    {
        var cmp = OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;
        var env = new SortedDictionary<string, string>(cmp);
        var policy = req.Policy;
        foreach (DictionaryEntry e in host)
        {
            var name = (string)e.Key;
            if (Matches(policy.EnvAllowlist, name) && !Matches(policy.EnvDenylist, name)) env[name] = (string?)e.Value ?? "";
        }
        if (!env.ContainsKey("PATH"))
            env["PATH"] = OperatingSystem.IsWindows() ? (System.Environment.GetEnvironmentVariable("PATH") ?? "") : DefaultPath;
        if (OperatingSystem.IsWindows())
        {
            foreach (var n in new[] { "SystemRoot", "windir", "SystemDrive" })
            {
                if (!env.ContainsKey(n) && System.Environment.GetEnvironmentVariable(n) is { } v) env[n] = v;
            }
        }
        env["TZ"] = "UTC";
        env["LC_ALL"] = "C";
        env["LANG"] = "C";
        foreach (var (k, v) in req.Env)
        {
            if (Matches(policy.EnvDenylist, k))
            {
                violations.Add($"env variable '{k}' is set explicitly but is on env_denylist; it is not passed to the command");
                continue;
            }
            env[k] = v;
        }
        return env;
    }

    public static bool Matches(IEnumerable<string> patterns, string name)
    {
        var cmp = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        foreach (var p in patterns)
        {
            if (p == "*") return true;
            if (p.EndsWith('*') ? name.StartsWith(p[..^1], cmp) : string.Equals(p, name, cmp)) return true;
        }
        return false;
    }

    private static string ResolveCommand(ExecRequest req, string root, SortedDictionary<string, string> env)
    {
        var command = req.Command;
        var hasSeparator = command.Contains('/') || (OperatingSystem.IsWindows() && command.Contains('\\'));
        if (Path.IsPathFullyQualified(command))
        {
            if (File.Exists(command)) return command;
            throw NotFound(command);
        }
        if (hasSeparator)
        {
            var rel = req.Cwd is "." or "" ? command : req.Cwd.TrimEnd('/', '\\') + "/" + command;
            var full = WorkspacePaths.Confine(root, rel, "command");
            if (File.Exists(full)) return full;
            throw NotFound(command);
        }
        var exts = OperatingSystem.IsWindows()
            ? (System.Environment.GetEnvironmentVariable("PATHEXT") ?? ".COM;.EXE;.BAT;.CMD").Split(';').Prepend("").ToArray()
            : new[] { "" };
        env.TryGetValue("PATH", out var path);
        foreach (var dir in (path ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0 || !Path.IsPathFullyQualified(dir)) continue;
            foreach (var ext in exts)
            {
                var candidate = Path.Combine(dir, command + ext);
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw NotFound(command);
    }

    private static RequiemException NotFound(string command) =>
        new("CommandNotFound", ErrorKind.ObjectNotFound, $"The command '{command}' was not found (searched the run's PATH, or the given path).", command);
}

/// <summary>
/// One control of a planned run: in force, or not — with <see cref="Reason"/> when this machine cannot apply it
/// (<see cref="Requested"/>: the request asked for it) and null when the request opted out (filesystem <c>host</c>).
/// </summary>
public sealed record PlannedControl(string Control, bool Enforced, bool Requested, string? Reason)
{
    public static PlannedControl InForce(string control) => new(control, true, false, null);
}
