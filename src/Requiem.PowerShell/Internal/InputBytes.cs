using System.Management.Automation;
using System.Text;
using Requiem.Engine;

namespace Requiem.PowerShell.Internal;

/// <summary>Turns an -InputObject value into bytes: a string as UTF-8 (no BOM), a byte[] as is.</summary>
internal static class InputBytes
{
    /// <summary>
    /// A FileInfo piped to a cmdlet with an object-typed -InputObject binds by value before -LiteralPath can bind
    /// by property name; such input means "this file", so callers hash the file instead of refusing it.
    /// </summary>
    public static string? AsFilePath(object? value)
    {
        var baseObject = value is PSObject pso ? pso.BaseObject : value;
        return baseObject is FileSystemInfo info ? info.FullName : null;
    }

    public static byte[] From(object? value)
    {
        var baseObject = value is PSObject pso ? pso.BaseObject : value;
        return baseObject switch
        {
            byte[] bytes => bytes,
            byte b => new[] { b },
            string s => Encoding.UTF8.GetBytes(s),
            null => throw new RequiemException("UnsupportedInputType", ErrorKind.InvalidArgument, "InputObject is null; pass a string or a byte array.", null),
            _ => throw new RequiemException("UnsupportedInputType", ErrorKind.InvalidArgument,
                $"InputObject of type {baseObject.GetType().FullName} cannot be hashed; pass a string, a byte array, or use -Path for files.", baseObject),
        };
    }
}
