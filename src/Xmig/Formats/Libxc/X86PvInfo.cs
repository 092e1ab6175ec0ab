using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.3: X86_PV_INFO, 8 octets.
//
//  0           1          2                    8
//  +-----------+----------+--------------------+
//  |guest_width| pt_levels| reserved (6, zero) |
//  +-----------+----------+--------------------+

/// <summary>X86_PV_INFO body (v2 spec §3.5.3). Valid (width, levels): (4, 3) and (8, 4).</summary>
public readonly struct X86PvInfo
{
    public const int Size = 8;

    public X86PvInfo(byte guestWidth, byte ptLevels, ulong reserved = 0)
    {
        GuestWidth = guestWidth;
        PtLevels = ptLevels;
        Reserved = reserved;
    }

    /// <summary>4 (32-bit PV) or 8 (64-bit PV).</summary>
    public byte GuestWidth { get; }

    /// <summary>3 or 4.</summary>
    public byte PtLevels { get; }

    /// <summary>Octets 2–7 as a 48-bit little-endian number.</summary>
    public ulong Reserved { get; }

    /// <summary>True for the pairs the reference restore accepts.</summary>
    public bool IsValidPair => (GuestWidth, PtLevels) is (4, 3) or (8, 4);

    public static X86PvInfo Read(ReadOnlySpan<byte> source) =>
        new(source[0], source[1], BinaryPrimitives.ReadUInt64LittleEndian(source) >> 16);

    public void Write(Span<byte> destination) =>
        BinaryPrimitives.WriteUInt64LittleEndian(destination, (Reserved << 16) | ((ulong)PtLevels << 8) | GuestWidth);
}
