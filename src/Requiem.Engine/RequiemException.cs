namespace Requiem.Engine;

/// <summary>What kind of failure an engine error is; cmdlets map it to a PowerShell ErrorCategory.</summary>
public enum ErrorKind
{
    InvalidArgument,
    InvalidData,
    ObjectNotFound,
    ReadError,
    WriteError,
    PermissionDenied,
    ResourceUnavailable,
    SecurityError,
    OperationStopped,
    NotImplemented,
    InvalidOperation,
    LimitsExceeded,
    ResourceExists,
}

/// <summary>
/// Every failure the engine reports on purpose. <see cref="ErrorId"/> is a stable PascalCase word that
/// scripts may match on (it becomes the first part of the FullyQualifiedErrorId); <see cref="Target"/> is the
/// offending input (a path, a hash, a request field).
/// </summary>
public sealed class RequiemException : Exception
{
    public RequiemException(string errorId, ErrorKind kind, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
    }

    public string ErrorId { get; }
    public ErrorKind Kind { get; }
    public object? Target { get; }
}
