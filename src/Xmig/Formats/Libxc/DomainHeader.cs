using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.2: Domain Header, 16 octets, stream endianness.
//
//  0      4          6      8           12          16
//  +------+----------+------+-----------+-----------+
//  | type |page_shift| rsvd | xen_major | xen_minor |
//  +------+----------+------+-----------+-----------+

/// <summary>The libxc Domain Header (v2 spec §3.2).</summary>
public readonly struct DomainHeader
{
    public const int Size = 16;

    /// <summary>The only page shift x86 uses.</summary>
    public const ushort X86PageShift = 12;

    public DomainHeader(uint type, ushort pageShift, ushort reserved, uint xenMajor, uint xenMinor)
    {
        Type = type;
        PageShift = pageShift;
        Reserved = reserved;
        XenMajor = xenMajor;
        XenMinor = xenMinor;
    }

    /// <summary>A correct header for an x86 guest.</summary>
    public static DomainHeader Create(GuestType type, uint xenMajor, uint xenMinor) =>
        new((uint)type, X86PageShift, 0, xenMajor, xenMinor);

    /// <summary>Raw <c>type</c> (see <see cref="GuestType"/>).</summary>
    public uint Type { get; }

    public GuestType GuestType => (GuestType)Type;

    public ushort PageShift { get; }

    public ushort Reserved { get; }

    /// <summary>Major version of the saving Xen; 0 means the legacy converter produced the stream.</summary>
    public uint XenMajor { get; }

    public uint XenMinor { get; }

    public static DomainHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source),
        BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[12..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Type);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], PageShift);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], Reserved);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], XenMajor);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], XenMinor);
    }

    /// <summary>Throws for what no x86 restore accepts (v2 spec §7 rows 6–7): type not 1/2, page size not 4096.</summary>
    public void Validate(long offset)
    {
        const string What = "libxc domain header";
        if (Type is not ((uint)GuestType.Pv or (uint)GuestType.Hvm))
        {
            throw new StreamFormatException(What, -1, offset, $"domain type {Type} is not x86 PV (1) or HVM (2)");
        }

        if (PageShift != X86PageShift)
        {
            throw new StreamFormatException(What, -1, offset + 4, $"page_shift {PageShift} is not 12");
        }
    }
}
