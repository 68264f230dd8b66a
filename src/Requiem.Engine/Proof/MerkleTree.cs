using System.Text;
using Requiem.Engine.Hashing;

namespace Requiem.Engine.Proof;

/// <summary>One leaf of a proof's Merkle tree: a label (the bundle field, with "/i" for array items) and its value bytes.</summary>
public sealed class MerkleLeaf
{
    public MerkleLeaf(string label, byte[] value)
    {
        Label = label;
        Value = value;
    }

    /// <summary>e.g. <c>input_digests/0</c>, <c>policy_digest</c>, <c>engine_version</c>.</summary>
    public string Label { get; }

    /// <summary>The 32 raw bytes of a digest field, or the UTF-8 bytes of a text field.</summary>
    public byte[] Value { get; }
}

/// <summary>
/// The documented Merkle construction of a proof bundle (docs/CONTRACT.md, "Proof bundle"):
/// <code>
/// leaf = BLAKE3("leaf:" ‖ UTF-8(label) ‖ 0x00 ‖ value)
/// node = BLAKE3("node:" ‖ left ‖ right)            (left and right are 32-byte hashes)
/// </code>
/// Leaves in the fixed order of <see cref="ProofBundle.Leaves"/>; each level pairs neighbours left to right; an
/// odd last hash is promoted unchanged to the next level (never duplicated); the root is the single hash left.
/// </summary>
public static class MerkleTree
{
    private static readonly byte[] LeafPrefix = "leaf:"u8.ToArray();
    private static readonly byte[] NodePrefix = "node:"u8.ToArray();

    public static byte[] LeafHash(HashPrimitive hash, string label, ReadOnlySpan<byte> value)
    {
        var labelBytes = Encoding.UTF8.GetBytes(label);
        var buffer = new byte[LeafPrefix.Length + labelBytes.Length + 1 + value.Length];
        LeafPrefix.CopyTo(buffer, 0);
        labelBytes.CopyTo(buffer, LeafPrefix.Length);
        buffer[LeafPrefix.Length + labelBytes.Length] = 0;
        value.CopyTo(buffer.AsSpan(LeafPrefix.Length + labelBytes.Length + 1));
        return Convert.FromHexString(hash.HashBytes(buffer, HashDomain.None));
    }

    public static byte[] NodeHash(HashPrimitive hash, ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buffer = stackalloc byte[NodePrefix.Length + left.Length + right.Length];
        NodePrefix.CopyTo(buffer);
        left.CopyTo(buffer[NodePrefix.Length..]);
        right.CopyTo(buffer[(NodePrefix.Length + left.Length)..]);
        return Convert.FromHexString(hash.HashBytes(buffer, HashDomain.None));
    }

    /// <summary>The root (lowercase hex) over the leaves in the given order. At least one leaf is required.</summary>
    public static string Root(HashPrimitive hash, IReadOnlyList<MerkleLeaf> leaves)
    {
        if (leaves.Count == 0)
            throw new RequiemException("InvalidProofBundle", ErrorKind.InvalidData, "A Merkle tree needs at least one leaf.");
        var level = new List<byte[]>(leaves.Count);
        foreach (var leaf in leaves) level.Add(LeafHash(hash, leaf.Label, leaf.Value));
        while (level.Count > 1)
        {
            var next = new List<byte[]>((level.Count + 1) / 2);
            for (var i = 0; i + 1 < level.Count; i += 2) next.Add(NodeHash(hash, level[i], level[i + 1]));
            if (level.Count % 2 == 1) next.Add(level[^1]);
            level = next;
        }
        return Hex.ToLower(level[0]);
    }
}
