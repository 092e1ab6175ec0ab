using System.Buffers.Binary;

namespace Xmig.Formats;

// v2-stream.md §3.3 (libxc) and §4.2 (libxl): the common record header, stream endianness (always LE here).
//
//  0     4     8
//  +-----+-----+----------------+---------+
//  | type| len | body (len)     | pad 0-7 |
//  +-----+-----+----------------+---------+

/// <summary>The 8-octet record header shared by the libxc and libxl layers (v2 spec §3.3, §4.2).</summary>
public readonly struct RecordHeader
{
    /// <summary>On-wire size of the header.</summary>
    public const int Size = 8;

    /// <summary>Record types with this bit set are optional: a receiver that does not know one may skip it.</summary>
    public const uint OptionalBit = 0x8000_0000;

    public RecordHeader(uint type, uint length)
    {
        Type = type;
        Length = length;
    }

    /// <summary>Record type (bit 31 = optional).</summary>
    public uint Type { get; }

    /// <summary>Body length in octets, excluding padding.</summary>
    public uint Length { get; }

    /// <summary>True when bit 31 of the type is set.</summary>
    public bool IsOptional => (Type & OptionalBit) != 0;

    /// <summary>Zero octets that follow the body: <c>(8 - L mod 8) mod 8</c>.</summary>
    public int PaddingLength => PaddingFor(Length);

    /// <summary>Total on-wire size: header, body and padding.</summary>
    public long WireSize => Size + (long)Length + PaddingLength;

    /// <summary>Padding after a body of <paramref name="length"/> octets.</summary>
    public static int PaddingFor(long length) => (int)((8 - (length & 7)) & 7);

    public static RecordHeader Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(source), BinaryPrimitives.ReadUInt32LittleEndian(source[4..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Type);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], Length);
    }
}
