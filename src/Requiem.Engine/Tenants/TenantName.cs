using System.Text.RegularExpressions;

namespace Requiem.Engine.Tenants;

/// <summary>
/// Tenant names: 1 to 63 characters, lowercase letters, digits, '_' and '-', starting with a letter or digit. A name is
/// one directory name under <c>tenants/</c>, so nothing in it can reach another directory ('/', '\', '..', a drive).
/// </summary>
public static partial class TenantName
{
    public const string EnvironmentVariable = "REQUIEM_TENANT";

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}\\z", RegexOptions.CultureInvariant)] // \z, not $: $ also matches before a final newline
    private static partial Regex Pattern();

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name);

    /// <summary>Returns the name, or throws <c>InvalidTenantName</c> (the name as target) saying where it came from.</summary>
    public static string Validate(string? name, string source = "-Tenant")
    {
        if (IsValid(name)) return name!;
        throw new RequiemException("InvalidTenantName", ErrorKind.InvalidArgument,
            $"'{name}' (from {source}) is not a valid tenant name: use 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit.", name);
    }
}
