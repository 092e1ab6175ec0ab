using System.Buffers.Binary;

namespace Xmig.Formats.Libxl;

// v2-stream.md §4.1: libxl Stream Header, 16 octets, big-endian.
//
//  0                      8         12        16
//  +----------------------+---------+---------+
//  | ident "LibxlFmt"     | version | options |
//  +----------------------+---------+---------+

/// <summary>The libxl Stream Header (v2 spec §4.1), big-endian on the wire.</summary>
public readonly struct StreamHeader
{
    public const int Size = 16;

    /// <summary>ASCII <c>LibxlFmt</c>.</summary>
    public const ulong IdentValue = 0x4C6962786C466D74;

    /// <summary>The only version.</summary>
    public const uint CurrentVersion = 2;

    /// <summary>options bit 0: big-endian.</summary>
    public const uint OptionBigEndian = 0x1;

    /// <summary>options bit 1: produced by the legacy converter.</summary>
    public const uint OptionLegacy = 0x2;

    public StreamHeader(ulong ident, uint version, uint options)
    {
        Ident = ident;
        Version = version;
        Options = options;
    }

    /// <summary>A correct little-endian header; <paramref name="legacy"/> sets the converter bit.</summary>
    public static StreamHeader Create(bool legacy = false) =>
        new(IdentValue, CurrentVersion, legacy ? OptionLegacy : 0);

    public ulong Ident { get; }

    public uint Version { get; }

    public uint Options { get; }

    public bool IsBigEndian => (Options & OptionBigEndian) != 0;

    public bool IsLegacy => (Options & OptionLegacy) != 0;

    public static StreamHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64BigEndian(source),
        BinaryPrimitives.ReadUInt32BigEndian(source[8..]),
        BinaryPrimitives.ReadUInt32BigEndian(source[12..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, Ident);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], Options);
    }

    /// <summary>Throws for what the reference libxl reader rejects (v2 spec §7 L2): ident, version, big-endian.</summary>
    public void Validate(long offset)
    {
        const string What = "libxl stream header";
        if (Ident != IdentValue)
        {
            throw new StreamFormatException(What, -1, offset, $"ident 0x{Ident:X16} is not LibxlFmt");
        }

        if (Version != CurrentVersion)
        {
            throw new StreamFormatException(What, -1, offset + 8, $"version {Version} not supported (2)");
        }

        if (IsBigEndian)
        {
            throw new StreamFormatException(What, -1, offset + 12, "big-endian stream (options bit 0) not supported");
        }
    }
}
