using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

/// <summary>
/// The xl save-file header in front of a legacy libxc image (legacy-stream.md §3.1). A legacy payload has the
/// mandatory flag <c>STREAMv2</c> clear. The header and its optional data are kept verbatim so that a converter
/// can copy them through.
/// </summary>
/// <remarks>
/// <code>
///  0      32 magic "Xen saved domain, xl format" 0A 20 00 20 0D
/// 32       4 byteorder 0x01020304 (LE: 04 03 02 01)
/// 36       4 mandatory_flags  bit 0 JSON, bit 1 STREAMv2
/// 40       4 optional_flags
/// 44       4 optional_data_len
/// 48       n optional data: u32 config_len, config_len octets (anything after is ignored)
/// </code>
/// </remarks>
internal sealed class LegacyXlHeader
{
    public const int Size = 48;
    public const uint ByteOrderMarker = 0x0102_0304;
    public const uint FlagJson = 1;
    public const uint FlagStreamV2 = 2;
    public const uint KnownMandatoryFlags = FlagJson | FlagStreamV2;

    /// <summary>Bound on the optional data a reader buffers.</summary>
    public const int MaxOptionalDataLength = 16 * 1024 * 1024;

    private const int MagicLength = 32;
    private const int ByteOrderOffset = 32;
    private const int MandatoryFlagsOffset = 36;
    private const int OptionalFlagsOffset = 40;
    private const int OptionalDataLengthOffset = 44;

    private LegacyXlHeader(uint mandatoryFlags, uint optionalFlags, byte[] optionalData)
    {
        MandatoryFlags = mandatoryFlags;
        OptionalFlags = optionalFlags;
        OptionalData = optionalData;
        if (optionalData.Length >= 4)
        {
            var configLength = BinaryPrimitives.ReadUInt32LittleEndian(optionalData);
            if (configLength <= optionalData.Length - 4)
            {
                ConfigLength = (int)configLength;
            }
        }
    }

    /// <summary>The 32-octet magic.</summary>
    public static ReadOnlySpan<byte> Magic => "Xen saved domain, xl format\n \0 \r"u8;

    public uint MandatoryFlags { get; }

    public uint OptionalFlags { get; }

    /// <summary>The optional data block, verbatim.</summary>
    public byte[] OptionalData { get; }

    /// <summary>
    /// Length of the domain configuration when the optional data holds a well-formed <c>u32 config_len</c> prefix;
    /// null when it does not (xl would refuse such a file as truncated, Xen's converter copies it through).
    /// </summary>
    public int? ConfigLength { get; }

    /// <summary>The domain configuration, when <see cref="ConfigLength"/> is known.</summary>
    public ReadOnlySpan<byte> Config => ConfigLength is int n ? OptionalData.AsSpan(4, n) : default;

    /// <summary>Octets occupied by the header and its optional data.</summary>
    public int TotalLength => Size + OptionalData.Length;

    /// <summary>True when the first octets are the xl magic.</summary>
    public static bool StartsWithMagic(ReadOnlySpan<byte> head) => head.Length >= MagicLength && head[..MagicLength].SequenceEqual(Magic);

    /// <summary>Reads the header and its optional data; the payload must be legacy (<c>STREAMv2</c> clear).</summary>
    public static LegacyXlHeader Read(InputBuffer input)
    {
        var start = input.Position;
        if (!input.TryRead(Size, out var head, out var available))
        {
            throw Fail(start, $"truncated: {available} of {Size} header octets");
        }

        if (!head[..MagicLength].SequenceEqual(Magic))
        {
            throw Fail(start, "no xl header: the first 32 octets are not \"Xen saved domain, xl format\"");
        }

        var byteOrder = BinaryPrimitives.ReadUInt32LittleEndian(head[ByteOrderOffset..]);
        if (byteOrder != ByteOrderMarker)
        {
            throw Fail(start + ByteOrderOffset, $"byteorder 0x{byteOrder:X8} is not 0x01020304 written little-endian");
        }

        var mandatory = BinaryPrimitives.ReadUInt32LittleEndian(head[MandatoryFlagsOffset..]);
        var optional = BinaryPrimitives.ReadUInt32LittleEndian(head[OptionalFlagsOffset..]);
        var optLength = BinaryPrimitives.ReadUInt32LittleEndian(head[OptionalDataLengthOffset..]);
        if ((mandatory & ~KnownMandatoryFlags) != 0)
        {
            throw Fail(start + MandatoryFlagsOffset, $"unknown mandatory flags 0x{mandatory & ~KnownMandatoryFlags:X}");
        }

        if ((mandatory & FlagStreamV2) != 0)
        {
            throw Fail(start + MandatoryFlagsOffset, "mandatory flag STREAMv2 is set: the payload is a Migration v2 stream, not a legacy image");
        }

        if (optLength > MaxOptionalDataLength)
        {
            throw Fail(start + OptionalDataLengthOffset, $"optional_data_len {optLength} exceeds {MaxOptionalDataLength}");
        }

        var data = new byte[optLength];
        var got = input.ReadInto(data);
        if (got < data.Length)
        {
            throw Fail(start + Size, $"optional data truncated: {got} of {optLength} octets");
        }

        return new LegacyXlHeader(mandatory, optional, data);
    }

    /// <summary>Writes a header with the given flags and optional data (which is written verbatim).</summary>
    public static void Write(OutputBuffer output, uint mandatoryFlags, uint optionalFlags, ReadOnlySpan<byte> optionalData)
    {
        var span = output.GetSpan(Size);
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt32LittleEndian(span[ByteOrderOffset..], ByteOrderMarker);
        BinaryPrimitives.WriteUInt32LittleEndian(span[MandatoryFlagsOffset..], mandatoryFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(span[OptionalFlagsOffset..], optionalFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(span[OptionalDataLengthOffset..], (uint)optionalData.Length);
        output.Advance(Size);
        output.Write(optionalData);
    }

    /// <summary>Builds optional data in the form xl writes: <c>u32 config_len</c> then the configuration.</summary>
    public static byte[] MakeOptionalData(ReadOnlySpan<byte> config)
    {
        var data = new byte[4 + config.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(data, (uint)config.Length);
        config.CopyTo(data.AsSpan(4));
        return data;
    }

    private static StreamFormatException Fail(long offset, string detail) => new("xl header", -1, offset, detail);
}
