using System.Management.Automation;
using Requiem.Engine.Proof;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>New-RequiemSigningKey: creates an ECDSA P-256 key pair for signing proof bundles (PEM files).</summary>
[Cmdlet(VerbsCommon.New, "RequiemSigningKey", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(SigningKeyInfo))]
public sealed class NewRequiemSigningKeyCommand : RequiemCmdlet
{
    /// <summary>Where the private key (PKCS#8 PEM, mode 0600) is written.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Where the public key (SubjectPublicKeyInfo PEM) is written; default: the private key path with .pub.pem.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? PublicKeyPath { get; set; }

    /// <summary>Replace existing key files.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessingCore()
    {
        var priv = ResolveNewPath(Path);
        var pub = PublicKeyPath is null ? DefaultPublicPath(priv) : ResolveNewPath(PublicKeyPath);
        if (!ShouldProcess($"{priv} (private), {pub} (public)", "Create ECDSA P-256 signing key pair")) return;
        WriteObject(Run(() => SigningKey.CreateKeyPair(priv, pub, Force)));
    }

    private static string DefaultPublicPath(string priv)
    {
        var ext = System.IO.Path.GetExtension(priv);
        var stem = ext.Equals(".pem", StringComparison.OrdinalIgnoreCase) ? priv[..^ext.Length] : priv;
        return stem + ".pub.pem";
    }
}
