using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Requiem.Engine.Proof;

/// <summary>Key identifiers and PEM handling shared by signing and verification keys (ECDSA P-256 only).</summary>
public static class ProofKeys
{
    public const string Algorithm = "ECDSA-P256-SHA256";
    private const string P256Oid = "1.2.840.10045.3.1.7";

    /// <summary>keyid = lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (what <c>openssl pkey -pubin -outform DER | sha256sum</c> prints).</summary>
    public static string KeyId(ECDsa key) => Convert.ToHexString(SHA256.HashData(key.ExportSubjectPublicKeyInfo())).ToLowerInvariant();

    /// <summary>Imports one PEM block as an ECDSA P-256 key; anything else is <paramref name="errorId"/> naming the source.</summary>
    internal static ECDsa ImportP256(string block, string errorId, string kind, string source)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(block);
            RequireP256(key, errorId, source);
            return key;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new RequiemException(errorId, ErrorKind.InvalidData, $"'{source}' is not a usable ECDSA P-256 {kind} key: {ex.Message}", source, ex);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    internal static void RequireP256(ECDsa key, string errorId, object? target)
    {
        ECParameters p;
        try { p = key.ExportParameters(false); }
        catch (CryptographicException ex) { throw new RequiemException(errorId, ErrorKind.InvalidData, $"'{target}' holds an unusable EC key: {ex.Message}", target, ex); }
        var oid = p.Curve.Oid?.Value;
        var name = p.Curve.Oid?.FriendlyName;
        if (!(p.Curve.IsNamed && (oid == P256Oid || name is "nistP256" or "ECDSA_P256" or "secp256r1" or "prime256v1")))
            throw new RequiemException(errorId, ErrorKind.InvalidData,
                $"'{target}' holds an EC key on curve '{name ?? oid ?? "explicit"}'; only P-256 (prime256v1) is supported.", target);
    }

    /// <summary>The PEM blocks in a text: (label, full block text).</summary>
    internal static List<(string Label, string Text)> PemBlocks(string text)
    {
        var blocks = new List<(string, string)>();
        var offset = 0;
        while (offset < text.Length && PemEncoding.TryFind(text.AsSpan(offset), out var fields))
        {
            var slice = text.AsSpan(offset);
            blocks.Add((slice[fields.Label].ToString(), slice[fields.Location].ToString()));
            offset += fields.Location.End.GetOffset(slice.Length);
        }
        return blocks;
    }

    internal static string ReadText(string path, string errorId)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new RequiemException("FileNotFound", ErrorKind.ObjectNotFound, $"Key file '{path}' does not exist.", path);
            if (info.Length > 1 << 20) throw new RequiemException(errorId, ErrorKind.InvalidData, $"'{path}' is too large to be a key file.", path);
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RequiemException("FileReadError", ErrorKind.ReadError, $"Cannot read key file '{path}': {ex.Message}", path, ex);
        }
    }
}

/// <summary>An ECDSA P-256 private key used to sign proof envelopes.</summary>
public sealed class SigningKey : IDisposable
{
    private readonly ECDsa _key;

    private SigningKey(ECDsa key, string? path)
    {
        _key = key;
        Path = path;
        KeyId = ProofKeys.KeyId(key);
    }

    public string KeyId { get; }
    public string? Path { get; }

    /// <summary>True when the key file could be read by group or others (POSIX); the cmdlet warns.</summary>
    public bool InsecurePermissions { get; private init; }

    public static SigningKey Generate() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256), null);

    /// <summary>Loads a PEM private key: PKCS#8 <c>PRIVATE KEY</c> or SEC1 <c>EC PRIVATE KEY</c>; errors are <c>InvalidSigningKey</c>.</summary>
    public static SigningKey Load(string path)
    {
        var text = ProofKeys.ReadText(path, "InvalidSigningKey");
        var blocks = ProofKeys.PemBlocks(text);
        if (blocks.Count == 0)
            throw new RequiemException("InvalidSigningKey", ErrorKind.InvalidData, $"'{path}' contains no PEM block; expected '-----BEGIN PRIVATE KEY-----'.", path);
        var (label, block) = blocks[0];
        if (label == "ENCRYPTED PRIVATE KEY")
            throw new RequiemException("InvalidSigningKey", ErrorKind.InvalidData,
                $"'{path}' is an encrypted private key; decrypt it first (openssl pkey -in {path} -out plain.pem) and keep the result owner-only.", path);
        if (label is not ("PRIVATE KEY" or "EC PRIVATE KEY"))
            throw new RequiemException("InvalidSigningKey", ErrorKind.InvalidData,
                $"'{path}' holds a '{label}' PEM block, not a private key ('PRIVATE KEY' or 'EC PRIVATE KEY').", path);
        var key = ProofKeys.ImportP256(block, "InvalidSigningKey", "private", path);
        var insecure = false;
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            insecure = (mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0;
        }
        return new SigningKey(key, path) { InsecurePermissions = insecure };
    }

    /// <summary>ASN.1 DER ECDSA signature over SHA-256 of <paramref name="data"/>, in low-S form (<see cref="EcdsaSignatureForm"/>).</summary>
    public byte[] Sign(byte[] data) =>
        EcdsaSignatureForm.ToLowS(_key.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));

    public string PrivateKeyPem() => _key.ExportPkcs8PrivateKeyPem();

    public string PublicKeyPem() => _key.ExportSubjectPublicKeyInfoPem();

    public VerificationKey PublicKey() => VerificationKey.FromSubjectPublicKeyInfo(_key.ExportSubjectPublicKeyInfo(), Path);

    /// <summary>
    /// Generates a key pair and writes the private key (PKCS#8 PEM) to a file created with mode 0600 from the start
    /// (a temp file in the same directory, renamed into place), and the public key (SubjectPublicKeyInfo PEM) next to it.
    /// Refuses to overwrite either file unless <paramref name="force"/>.
    /// </summary>
    public static SigningKeyInfo CreateKeyPair(string privatePath, string publicPath, bool force)
    {
        privatePath = System.IO.Path.GetFullPath(privatePath);
        publicPath = System.IO.Path.GetFullPath(publicPath);
        if (string.Equals(privatePath, publicPath, StringComparison.Ordinal))
            throw new RequiemException("InvalidKeyPath", ErrorKind.InvalidArgument, "The private and public key paths must differ.", privatePath);
        foreach (var p in new[] { privatePath, publicPath })
        {
            if (Directory.Exists(p)) throw new RequiemException("InvalidKeyPath", ErrorKind.InvalidArgument, $"'{p}' is a directory.", p);
            if (!force && File.Exists(p))
                throw new RequiemException("KeyFileExists", ErrorKind.ResourceExists, $"'{p}' already exists; use -Force to replace it.", p);
        }
        using var key = Generate();
        var info = new SigningKeyInfo(key.KeyId, privatePath, publicPath, ProofKeys.Algorithm);
        WriteAtomically(privatePath, key.PrivateKeyPem() + "\n", ownerOnly: true, force);
        WriteAtomically(publicPath, key.PublicKeyPem() + "\n", ownerOnly: false, force);
        return info;
    }

    private static void WriteAtomically(string path, string text, bool ownerOnly, bool force)
    {
        var dir = System.IO.Path.GetDirectoryName(path)!;
        var tmp = System.IO.Path.Combine(dir, "." + System.IO.Path.GetFileName(path) + "." + Guid.NewGuid().ToString("n") + ".tmp");
        try
        {
            Directory.CreateDirectory(dir);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = ownerOnly
                    ? UnixFileMode.UserRead | UnixFileMode.UserWrite
                    : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
            }
            using (var fs = new FileStream(tmp, options))
            {
                fs.Write(Encoding.ASCII.GetBytes(text));
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: force);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (!force && File.Exists(path))
                throw new RequiemException("KeyFileExists", ErrorKind.ResourceExists, $"'{path}' already exists; use -Force to replace it.", path, ex);
            throw new RequiemException("KeyWriteError", ErrorKind.WriteError, $"Cannot write key file '{path}': {ex.Message}", path, ex);
        }
    }

    public void Dispose() => _key.Dispose();
}

/// <summary>What New-RequiemSigningKey reports.</summary>
public sealed class SigningKeyInfo
{
    public SigningKeyInfo(string keyId, string path, string publicKeyPath, string algorithm)
    {
        KeyId = keyId;
        Path = path;
        PublicKeyPath = publicKeyPath;
        Algorithm = algorithm;
    }

    public string KeyId { get; }
    public string Path { get; }
    public string PublicKeyPath { get; }
    public string Algorithm { get; }
}

/// <summary>An ECDSA P-256 public key that verifies envelope signatures.</summary>
public sealed class VerificationKey
{
    private readonly ECDsa _key;

    private VerificationKey(ECDsa key, string? source, string? name)
    {
        _key = key;
        Source = source;
        Name = name;
        KeyId = ProofKeys.KeyId(key);
    }

    public string KeyId { get; }
    public string? Source { get; }
    public string? Name { get; }

    public bool Verify(byte[] data, byte[] derSignature)
    {
        try
        {
            return _key.VerifyData(data, derSignature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    internal static VerificationKey FromSubjectPublicKeyInfo(byte[] spki, string? source)
    {
        var key = ECDsa.Create();
        key.ImportSubjectPublicKeyInfo(spki, out _);
        return new VerificationKey(key, source, null);
    }

    /// <summary>Loads one PEM public key (<c>PUBLIC KEY</c>, SubjectPublicKeyInfo); errors are <c>InvalidPublicKey</c>.</summary>
    public static VerificationKey Load(string path)
    {
        var text = ProofKeys.ReadText(path, "InvalidPublicKey");
        var blocks = ProofKeys.PemBlocks(text);
        if (blocks.Count == 0)
            throw new RequiemException("InvalidPublicKey", ErrorKind.InvalidData, $"'{path}' contains no PEM block; expected '-----BEGIN PUBLIC KEY-----'.", path);
        return FromPem(blocks[0].Label, blocks[0].Text, path, null);
    }

    private static VerificationKey FromPem(string label, string block, string source, string? name)
    {
        if (label is "PRIVATE KEY" or "EC PRIVATE KEY" or "ENCRYPTED PRIVATE KEY")
            throw new RequiemException("InvalidPublicKey", ErrorKind.InvalidData,
                $"'{source}' holds a private key; give the public key instead (the -PublicKeyPath file of New-RequiemSigningKey). Never share the private key.", source);
        if (label != "PUBLIC KEY")
            throw new RequiemException("InvalidPublicKey", ErrorKind.InvalidData, $"'{source}' holds a '{label}' PEM block, not a 'PUBLIC KEY'.", source);
        var key = ProofKeys.ImportP256(block, "InvalidPublicKey", "public", source);
        return new VerificationKey(key, source, name);
    }

    /// <summary>
    /// Loads a trusted-keys file: either JSON <c>{"trusted_keys":[{"keyid","public_key","name"}]}</c>
    /// (schemas/trusted-keys.schema.json), or one or more concatenated <c>PUBLIC KEY</c> PEM blocks.
    /// Errors are <c>InvalidTrustedKeys</c>.
    /// </summary>
    public static List<VerificationKey> LoadTrusted(string path)
    {
        var text = ProofKeys.ReadText(path, "InvalidTrustedKeys");
        var keys = new List<VerificationKey>();
        if (text.TrimStart().StartsWith('{'))
        {
            try
            {
                using var doc = JsonDocument.Parse(text);
                if (!doc.RootElement.TryGetProperty("trusted_keys", out var arr) || arr.ValueKind != JsonValueKind.Array)
                    throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData, $"'{path}' has no 'trusted_keys' array.", path);
                var i = 0;
                foreach (var e in arr.EnumerateArray())
                {
                    var pem = e.ValueKind == JsonValueKind.Object && e.TryGetProperty("public_key", out var pk) && pk.ValueKind == JsonValueKind.String ? pk.GetString()! : null;
                    if (pem is null || !PemEncoding.TryFind(pem, out var f))
                        throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData, $"'{path}': trusted_keys[{i}].public_key is not a PEM public key.", path);
                    var name = e.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                    VerificationKey key;
                    try { key = FromPem(pem[f.Label], pem[f.Location], $"{path}#trusted_keys[{i}]", name); }
                    catch (RequiemException ex) { throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData, ex.Message, path, ex); }
                    if (e.TryGetProperty("keyid", out var kid) && kid.ValueKind == JsonValueKind.String && kid.GetString() != key.KeyId)
                        throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData,
                            $"'{path}': trusted_keys[{i}].keyid '{kid.GetString()}' is not the keyid of its public key ({key.KeyId}).", path);
                    keys.Add(key);
                    i++;
                }
            }
            catch (JsonException ex)
            {
                throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData, $"'{path}' is not valid JSON: {ex.Message}", path, ex);
            }
        }
        else
        {
            var blocks = ProofKeys.PemBlocks(text);
            foreach (var (label, block) in blocks)
            {
                try { keys.Add(FromPem(label, block, path, null)); }
                catch (RequiemException ex) { throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData, ex.Message, path, ex); }
            }
        }
        if (keys.Count == 0)
            throw new RequiemException("InvalidTrustedKeys", ErrorKind.InvalidData, $"'{path}' lists no public keys.", path);
        return keys;
    }
}
