using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

/// <summary>
/// XMIG_EPOCH: an xmig extension record, not Xen's. A replicating primary writes it in every checkpoint, before its
/// end-of-checkpoint records, once the secondary has accepted the epoch it offered (README "Replication epochs"). Its type has the
/// optional bit set (v2-stream.md §3.3), so a v2 reader that does not know it skips it.
/// </summary>
/// <remarks>
/// <code>
/// 0     4        8            16
/// +-----+--------+------------+
/// |epoch|reserved| checkpoint |   u32 epoch, u32 reserved (0), u64 checkpoint number (from 1); little-endian
/// +-----+--------+------------+
/// </code>
/// </remarks>
internal static class XmigEpoch
{
    /// <summary>Libxc record type: optional bit, then "xm" and 1.</summary>
    public const uint Type = 0x8078_6D01;

    public const int Length = 16;

    public static void Write(Span<byte> body, uint epoch, ulong checkpoint)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(body, epoch);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], checkpoint);
    }

    /// <summary>Reads the body; false (with the reason) when it is not 16 octets or its reserved field is not zero.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, out uint epoch, out ulong checkpoint, out string problem)
    {
        epoch = 0;
        checkpoint = 0;
        if (body.Length != Length)
        {
            problem = $"length {body.Length}, expected {Length}";
            return false;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0)
        {
            problem = "reserved field not zero";
            return false;
        }

        epoch = BinaryPrimitives.ReadUInt32LittleEndian(body);
        checkpoint = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        problem = "";
        return true;
    }
}
