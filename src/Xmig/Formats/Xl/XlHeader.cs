using System.Buffers.Binary;
using System.Globalization;

namespace Xmig.Formats.Xl;

// v2-stream.md §5: xl save-file / migration header, 48 octets + optional data; u32 fields in native (LE) order.
//
//  0                                 32          36          40          44          48
//  +---------------------------------+-----------+-----------+-----------+-----------+--------------------+
//  | magic "Xen saved domain, xl ..."| byteorder | mandatory | optional  | optlen    | optional data      |
//  +---------------------------------+-----------+-----------+-----------+-----------+--------------------+
//  optional data (as xl writes it): u32 config_len, config_len octets of config (JSON with its NUL).

/// <summary>xl header mandatory flags (v2 spec §5).</summary>
[Flags]
public enum XlMandatoryFlags : uint
{
    None = 0,

    /// <summary>The config is libxl JSON.</summary>
    Json = 1,

    /// <summary>The payload is a libxl v2 stream (otherwise legacy).</summary>
    StreamV2 = 2,
}

/// <summary>The fixed 48 octets of the xl save-file header (v2 spec §5).</summary>
public readonly struct XlHeader
{
    public const int Size = 48;

    /// <summary><c>0x01020304</c> in the saver's order.</summary>
    public const uint ByteOrderValue = 0x01020304;

    /// <summary>xmig's bound on the optional data block (xl writes a config of a few KiB).</summary>
    public const int MaxOptionalDataLength = 16 << 20;

    /// <summary>Flags this reader understands; any other mandatory flag makes xl refuse the file.</summary>
    public const XlMandatoryFlags KnownMandatoryFlags = XlMandatoryFlags.Json | XlMandatoryFlags.StreamV2;

    public XlHeader(bool magicOk, uint byteOrder, uint mandatoryFlags, uint optionalFlags, uint optionalDataLength)
    {
        MagicOk = magicOk;
        ByteOrder = byteOrder;
        MandatoryFlags = mandatoryFlags;
        OptionalFlags = optionalFlags;
        OptionalDataLength = optionalDataLength;
    }

    /// <summary>The 32-octet magic: <c>Xen saved domain, xl format\n \0 \r</c>.</summary>
    public static ReadOnlySpan<byte> Magic => "Xen saved domain, xl format\n \0 \r"u8;

    /// <summary>A correct header for <paramref name="optionalDataLength"/> octets of optional data.</summary>
    public static XlHeader Create(XlMandatoryFlags flags, uint optionalDataLength) =>
        new(true, ByteOrderValue, (uint)flags, 0, optionalDataLength);

    public bool MagicOk { get; }

    public uint ByteOrder { get; }

    public uint MandatoryFlags { get; }

    public uint OptionalFlags { get; }

    public uint OptionalDataLength { get; }

    /// <summary>True when the payload is a libxl v2 stream.</summary>
    public bool IsStreamV2 => (MandatoryFlags & (uint)XlMandatoryFlags.StreamV2) != 0;

    /// <summary>True if <paramref name="head"/> starts with the xl magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> head) => head.StartsWith(Magic);

    public static XlHeader Read(ReadOnlySpan<byte> source) => new(
        source.StartsWith(Magic),
        BinaryPrimitives.ReadUInt32LittleEndian(source[32..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[36..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[40..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[44..]));

    /// <summary>Writes the 48 octets (the magic is always the correct one).</summary>
    public void Write(Span<byte> destination)
    {
        Magic.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[32..], ByteOrder);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[36..], MandatoryFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[40..], OptionalFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[44..], OptionalDataLength);
    }

    /// <summary>Throws for what xl rejects (v2 spec §7 L1): magic, byte order, unknown mandatory flags.</summary>
    public void Validate(long offset)
    {
        const string What = "xl header";
        if (!MagicOk)
        {
            throw new StreamFormatException(What, -1, offset, "magic is not \"Xen saved domain, xl format\"");
        }

        if (ByteOrder != ByteOrderValue)
        {
            throw new StreamFormatException(What, -1, offset + 32, F($"byteorder 0x{ByteOrder:X8} is not 0x01020304 (little-endian)"));
        }

        var unknown = MandatoryFlags & ~(uint)KnownMandatoryFlags;
        if (unknown != 0)
        {
            throw new StreamFormatException(What, -1, offset + 36, F($"unknown mandatory flags 0x{unknown:X8}"));
        }

        if (OptionalDataLength > MaxOptionalDataLength)
        {
            throw new StreamFormatException(What, -1, offset + 44, F($"optional data length {OptionalDataLength} exceeds {MaxOptionalDataLength}"));
        }
    }

    /// <summary>Reads and validates the header and its optional data block.</summary>
    public static XlHeader ReadFrom(InputBuffer input, out byte[] optionalData)
    {
        ArgumentNullException.ThrowIfNull(input);
        var offset = input.Position;
        if (!input.TryRead(Size, out var bytes, out var available))
        {
            throw new StreamFormatException("xl header", -1, offset, F($"truncated: {available} of {Size} octets"));
        }

        var header = Read(bytes);
        header.Validate(offset);
        var length = (int)header.OptionalDataLength;
        if (!input.TryRead(length, out var data, out available))
        {
            throw new StreamFormatException("xl header", -1, offset, F($"optional data truncated: {available} of {length} octets"));
        }

        optionalData = data.ToArray();
        return header;
    }

    /// <summary>Writes the header for <paramref name="optionalData"/>, then the data.</summary>
    public static void WriteTo(OutputBuffer output, XlMandatoryFlags flags, ReadOnlySpan<byte> optionalData)
    {
        ArgumentNullException.ThrowIfNull(output);
        Create(flags, (uint)optionalData.Length).Write(output.GetSpan(Size));
        output.Advance(Size);
        output.Write(optionalData);
    }

    /// <summary>
    /// Reads the header in front of a legacy libxc image (legacy-stream.md §3.1) and its optional data, kept verbatim
    /// so that a converter can copy them through. The payload must be legacy: <c>STREAMv2</c> clear.
    /// </summary>
    public static XlHeader ReadLegacy(InputBuffer input, out byte[] optionalData)
    {
        ArgumentNullException.ThrowIfNull(input);
        const string What = "xl header";
        var start = input.Position;
        if (!input.TryRead(Size, out var head, out var available))
        {
            throw new StreamFormatException(What, -1, start, F($"truncated: {available} of {Size} header octets"));
        }

        var header = Read(head);
        if (!header.MagicOk)
        {
            throw new StreamFormatException(What, -1, start, "no xl header: the first 32 octets are not \"Xen saved domain, xl format\"");
        }

        if (header.ByteOrder != ByteOrderValue)
        {
            throw new StreamFormatException(What, -1, start + 32, F($"byteorder 0x{header.ByteOrder:X8} is not 0x01020304 written little-endian"));
        }

        var unknown = header.MandatoryFlags & ~(uint)KnownMandatoryFlags;
        if (unknown != 0)
        {
            throw new StreamFormatException(What, -1, start + 36, F($"unknown mandatory flags 0x{unknown:X}"));
        }

        if (header.IsStreamV2)
        {
            throw new StreamFormatException(What, -1, start + 36, "mandatory flag STREAMv2 is set: the payload is a Migration v2 stream, not a legacy image");
        }

        if (header.OptionalDataLength > MaxOptionalDataLength)
        {
            throw new StreamFormatException(What, -1, start + 44, F($"optional_data_len {header.OptionalDataLength} exceeds {MaxOptionalDataLength}"));
        }

        optionalData = new byte[header.OptionalDataLength];
        var got = input.ReadInto(optionalData);
        if (got < optionalData.Length)
        {
            throw new StreamFormatException(What, -1, start + Size, F($"optional data truncated: {got} of {optionalData.Length} octets"));
        }

        return header;
    }

    /// <summary>Writes a header with raw flags, then <paramref name="optionalData"/> verbatim (a converter copying one through).</summary>
    public static void WriteTo(OutputBuffer output, uint mandatoryFlags, uint optionalFlags, ReadOnlySpan<byte> optionalData)
    {
        ArgumentNullException.ThrowIfNull(output);
        new XlHeader(true, ByteOrderValue, mandatoryFlags, optionalFlags, (uint)optionalData.Length).Write(output.GetSpan(Size));
        output.Advance(Size);
        output.Write(optionalData);
    }

    /// <summary>Builds xl's optional data block for a config: u32 config_len then the config.</summary>
    public static byte[] BuildConfigBlock(ReadOnlySpan<byte> config)
    {
        var block = new byte[4 + config.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(block, (uint)config.Length);
        config.CopyTo(block.AsSpan(4));
        return block;
    }

    /// <summary>
    /// Extracts the config from an optional data block as xl writes it; false when the block does not hold a
    /// u32 length and that many octets (xl would then report the file truncated).
    /// </summary>
    public static bool TryGetConfig(ReadOnlySpan<byte> optionalData, out ReadOnlySpan<byte> config)
    {
        config = default;
        if (optionalData.Length < 4)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(optionalData);
        if (length > optionalData.Length - 4)
        {
            return false;
        }

        config = optionalData.Slice(4, (int)length);
        return true;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
