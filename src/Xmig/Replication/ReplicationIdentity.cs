using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Xmig.Formats.Xl;

namespace Xmig.Replication;

/// <summary>
/// Who owns a replicated domain: its lineage (16 random octets, fixed when the domain is first replicated) and its
/// epoch (1 at first, raised by one each time another host takes it over, by failover or switchover). Kept in
/// <c>replication.json</c> in the domain directory (README "Replication epochs").
/// </summary>
internal sealed record ReplicationIdentity(byte[] Lineage, uint Epoch, int Checkpoint = 0, string? Digest = null)
{
    public const string FileName = "replication.json";

    public string LineageHex => Convert.ToHexStringLower(Lineage);

    /// <summary>The identity kept in <paramref name="directory"/>, or null when it has none (never replicated) or it is unreadable.</summary>
    public static ReplicationIdentity? Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            var lineage = Convert.FromHexString(root.GetProperty("lineage").GetString() ?? "");
            if (lineage.Length != 16)
            {
                return null;
            }

            var checkpoint = root.TryGetProperty("checkpoint", out var c) ? c.GetInt32() : 0;
            var digest = root.TryGetProperty("digest", out var d) ? d.GetString() : null;
            return new ReplicationIdentity(lineage, root.GetProperty("epoch").GetUInt32(), checkpoint, digest);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException or IOException)
        {
            return null;
        }
    }

    /// <summary>The identity of <paramref name="directory"/>'s domain, made (lineage new, epoch 1) and saved when it has none.</summary>
    public static ReplicationIdentity LoadOrCreate(string directory)
    {
        if (Load(directory) is { } known)
        {
            return known;
        }

        var created = new ReplicationIdentity(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16), 1);
        created.Save(directory);
        return created;
    }

    public void Save(string directory)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{{\"lineage\":\"{LineageHex}\",\"epoch\":{Epoch},\"checkpoint\":{Checkpoint},\"digest\":{(Digest is null ? "null" : "\"" + Digest + "\"")}}}\n");
        var path = Path.Combine(directory, FileName);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, text, Encoding.ASCII);
        File.Move(temporary, path, overwrite: true);
    }
}

/// <summary>
/// The primary's replication offer, an xmig extension in the xl header's optional data after the config (v2-stream.md
/// §5: "extra trailing optional data is ignored", so xl and a plain reader skip it). It names the domain's lineage
/// and the epoch the primary replicates at; an xmig secondary accepts it with XMIG_HELLO on the back channel, after
/// which every checkpoint carries the epoch.
/// </summary>
/// <remarks>
/// <code>
/// 0          8         12      16        32      36
/// +----------+---------+-------+---------+-------+
/// | XMIGREPL | version | epoch | lineage | flags |   u32 fields little-endian; flags bit 0: COLO
/// +----------+---------+-------+---------+-------+
/// </code>
/// </remarks>
internal readonly record struct ReplicationOffer(uint Epoch, byte[] Lineage, bool Colo)
{
    public const int Size = 36;

    public const uint Version = 1;

    private static ReadOnlySpan<byte> Magic => "XMIGREPL"u8;

    public byte[] ToBytes()
    {
        var block = new byte[Size];
        Magic.CopyTo(block);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(12), Epoch);
        Lineage.AsSpan(0, 16).CopyTo(block.AsSpan(16));
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(32), Colo ? 1u : 0u);
        return block;
    }

    /// <summary>The offer in an xl header's optional data (config block, then the offer), or null when there is none.</summary>
    public static ReplicationOffer? Find(ReadOnlySpan<byte> optionalData)
    {
        if (!XlHeader.TryGetConfig(optionalData, out var config))
        {
            return null;
        }

        var rest = optionalData[(4 + config.Length)..];
        if (rest.Length < Size || !rest[..8].SequenceEqual(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]) != Version)
        {
            return null;
        }

        return new ReplicationOffer(BinaryPrimitives.ReadUInt32LittleEndian(rest[12..]), rest.Slice(16, 16).ToArray(), (BinaryPrimitives.ReadUInt32LittleEndian(rest[32..]) & 1) != 0);
    }
}
