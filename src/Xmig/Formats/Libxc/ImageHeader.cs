using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.1: libxc Image Header, 24 octets, always big-endian.
//
//  0                   8         12        16   18   20        24
//  +-------------------+---------+---------+----+----+---------+
//  | marker (all ones) | id XENF | version |opts|rsvd| reserved|
//  +-------------------+---------+---------+----+----+---------+

/// <summary>The libxc Image Header (v2 spec §3.1), big-endian on the wire.</summary>
public readonly struct ImageHeader
{
    public const int Size = 24;

    /// <summary><c>marker</c>: all ones (a legacy image always has a zero bit in its first 8 octets).</summary>
    public const ulong MarkerValue = ulong.MaxValue;

    /// <summary><c>id</c>: ASCII <c>XENF</c>.</summary>
    public const uint IdValue = 0x58454E46;

    /// <summary>The version xmig writes.</summary>
    public const uint CurrentVersion = 3;

    /// <summary>The oldest version readers accept.</summary>
    public const uint MinVersion = 2;

    /// <summary><c>options</c> bit 0: the rest of the stream is big-endian.</summary>
    public const ushort OptionBigEndian = 0x0001;

    public ImageHeader(ulong marker, uint id, uint version, ushort options, ushort reserved1, uint reserved2)
    {
        Marker = marker;
        Id = id;
        Version = version;
        Options = options;
        Reserved1 = reserved1;
        Reserved2 = reserved2;
    }

    /// <summary>A correct little-endian header of <paramref name="version"/>.</summary>
    public static ImageHeader Create(uint version = CurrentVersion) => new(MarkerValue, IdValue, version, 0, 0, 0);

    public ulong Marker { get; }

    public uint Id { get; }

    public uint Version { get; }

    public ushort Options { get; }

    /// <summary>The u16 at offset 18.</summary>
    public ushort Reserved1 { get; }

    /// <summary>The u32 at offset 20.</summary>
    public uint Reserved2 { get; }

    public bool IsBigEndian => (Options & OptionBigEndian) != 0;

    public static ImageHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64BigEndian(source),
        BinaryPrimitives.ReadUInt32BigEndian(source[8..]),
        BinaryPrimitives.ReadUInt32BigEndian(source[12..]),
        BinaryPrimitives.ReadUInt16BigEndian(source[16..]),
        BinaryPrimitives.ReadUInt16BigEndian(source[18..]),
        BinaryPrimitives.ReadUInt32BigEndian(source[20..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, Marker);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Id);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], Version);
        BinaryPrimitives.WriteUInt16BigEndian(destination[16..], Options);
        BinaryPrimitives.WriteUInt16BigEndian(destination[18..], Reserved1);
        BinaryPrimitives.WriteUInt32BigEndian(destination[20..], Reserved2);
    }

    /// <summary>
    /// Throws for what the reference restore rejects (v2 spec §7 rows 1–4): marker, id, version, big-endian.
    /// Reserved bits are left to the verifier.
    /// </summary>
    public void Validate(long offset)
    {
        const string What = "libxc image header";
        if (Marker != MarkerValue)
        {
            throw new StreamFormatException(What, -1, offset, $"marker 0x{Marker:X16} is not all ones (legacy stream?)");
        }

        if (Id != IdValue)
        {
            throw new StreamFormatException(What, -1, offset + 8, $"id 0x{Id:X8} is not XENF (0x{IdValue:X8})");
        }

        if (Version is < MinVersion or > CurrentVersion)
        {
            throw new StreamFormatException(What, -1, offset + 12, $"version {Version} not supported (2 or 3)");
        }

        if (IsBigEndian)
        {
            throw new StreamFormatException(What, -1, offset + 16, "big-endian stream (options bit 0) not supported");
        }
    }
}
