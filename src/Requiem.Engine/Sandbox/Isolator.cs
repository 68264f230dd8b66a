using Requiem.Engine.Processes;

namespace Requiem.Engine.Sandbox;

/// <summary>
/// One isolation mechanism, probed once per process (each type's static <c>Probe</c>, which tries the mechanism by
/// launching real commands exactly as runs are launched) and then starting every run: the Linux types derive from
/// <see cref="LinuxIsolator"/> (a command line around the command), Windows has <see cref="WindowsJobIsolator"/>
/// (the command created suspended inside a Job Object).
/// </summary>
public abstract class Isolator
{
    /// <summary>The name health reports (<c>isolator</c>) for a Linux mechanism; null for none, and on Windows.</summary>
    public abstract string? Name { get; }

    /// <summary>
    /// Starts <paramref name="spec"/>'s command inside the isolation, ready for <see cref="ProcessSupervisor"/>; the
    /// environment, working directory and pipes come from <paramref name="command"/>.
    /// </summary>
    public abstract ISupervisedProcess Start(LaunchSpec spec, SupervisedCommand command);
}
