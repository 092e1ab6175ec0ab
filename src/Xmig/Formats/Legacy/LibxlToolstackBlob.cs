using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Xmig.Formats.Legacy;

/// <summary>One QEMU physmap entry of the libxl toolstack blob.</summary>
internal readonly record struct LibxlPhysmapEntry(ulong PhysOffset, ulong StartAddr, ulong Size, byte[]? Name);

/// <summary>
/// The libxl blob carried in a TOOLSTACK (−18) chunk, version 1 (legacy-stream.md §5.5.4), including the quirk
/// that a 64-bit libxl leaves 4 undefined octets after each entry's name.
/// </summary>
/// <remarks>
/// <code>
/// u32 version (= 1)  u32 count
/// count × { u64 phys_offset, u64 start_addr, u64 size, u32 namelen, namelen octets name (NUL-terminated),
///           [4 junk octets if the saving libxl was 64-bit] }
/// </code>
/// </remarks>
internal static class LibxlToolstackBlob
{
    public const uint Version = 1;
    private const int HeaderSize = 8;
    private const int EntryFixedSize = 28;
    private const int Junk64 = 4;
    private static readonly byte[] JunkOctets = new byte[Junk64];

    /// <summary>
    /// Decodes the blob written by a libxl whose word width was <paramref name="width"/> octets.
    /// Throws <see cref="StreamFormatException"/> located at <paramref name="offset"/> (the blob's first octet).
    /// </summary>
    public static List<LibxlPhysmapEntry> Parse(ReadOnlySpan<byte> blob, int width, long offset, long chunkIndex)
    {
        if (blob.Length < HeaderSize)
        {
            throw Fail(chunkIndex, offset, $"libxl toolstack data of {blob.Length} octets is shorter than its 8-octet header");
        }

        var version = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        var count = BinaryPrimitives.ReadUInt32LittleEndian(blob[4..]);
        if (version != Version)
        {
            throw Fail(chunkIndex, offset, $"libxl toolstack version {version} is not 1");
        }

        if (count > (uint)(blob.Length - HeaderSize) / EntryFixedSize)
        {
            throw Fail(chunkIndex, offset + 4, $"libxl toolstack count {count} does not fit in {blob.Length} octets");
        }

        var entries = new List<LibxlPhysmapEntry>((int)count);
        var pos = HeaderSize;
        for (var i = 0; i < count; i++)
        {
            if (blob.Length - pos < EntryFixedSize)
            {
                throw Fail(chunkIndex, offset + pos, $"physmap entry {i} truncated: {blob.Length - pos} octets left, header needs {EntryFixedSize}");
            }

            var phys = BinaryPrimitives.ReadUInt64LittleEndian(blob[pos..]);
            var start = BinaryPrimitives.ReadUInt64LittleEndian(blob[(pos + 8)..]);
            var size = BinaryPrimitives.ReadUInt64LittleEndian(blob[(pos + 16)..]);
            var nameLength = BinaryPrimitives.ReadUInt32LittleEndian(blob[(pos + 24)..]);
            pos += EntryFixedSize;
            var stride = (long)nameLength + (width == 8 ? Junk64 : 0);
            if (stride > blob.Length - pos)
            {
                throw Fail(chunkIndex, offset + pos - 4, $"physmap entry {i}: name length {nameLength} runs past the end of the toolstack data");
            }

            byte[]? name = null;
            if (nameLength > 0)
            {
                var raw = blob.Slice(pos, (int)nameLength);
                if (raw[^1] != 0)
                {
                    throw Fail(chunkIndex, offset + pos, $"physmap entry {i}: name is not NUL-terminated");
                }

                name = raw[..^1].ToArray();
            }

            pos += (int)stride;
            entries.Add(new LibxlPhysmapEntry(phys, start, size, name));
        }

        return entries;
    }

    /// <summary>Encodes entries as a libxl of word width <paramref name="width"/> would (junk octets written as zero).</summary>
    public static byte[] Build(IReadOnlyList<LibxlPhysmapEntry> entries, int width)
    {
        using var ms = new MemoryStream();
        Span<byte> b = stackalloc byte[EntryFixedSize];
        BinaryPrimitives.WriteUInt32LittleEndian(b, Version);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (uint)entries.Count);
        ms.Write(b[..HeaderSize]);
        foreach (var e in entries)
        {
            var nameLength = e.Name is null ? 0 : e.Name.Length + 1;
            BinaryPrimitives.WriteUInt64LittleEndian(b, e.PhysOffset);
            BinaryPrimitives.WriteUInt64LittleEndian(b[8..], e.StartAddr);
            BinaryPrimitives.WriteUInt64LittleEndian(b[16..], e.Size);
            BinaryPrimitives.WriteUInt32LittleEndian(b[24..], (uint)nameLength);
            ms.Write(b);
            if (e.Name is not null)
            {
                ms.Write(e.Name);
                ms.WriteByte(0);
            }

            if (width == 8)
            {
                ms.Write(JunkOctets);
            }
        }

        return ms.ToArray();
    }

    /// <summary>
    /// The xenstore pairs libxl writes for the entries, as NUL-terminated key and value strings in order
    /// (<c>physmap/&lt;phys_offset hex&gt;/start_addr</c>, <c>…/size</c>, <c>…/name</c>), the body of a v2
    /// EMULATOR_XENSTORE_DATA record after its sub-header (v2-stream.md §9.1).
    /// </summary>
    public static void AppendXenstorePairs(IReadOnlyList<LibxlPhysmapEntry> entries, List<byte> destination)
    {
        foreach (var e in entries)
        {
            var root = "physmap/" + e.PhysOffset.ToString("x", CultureInfo.InvariantCulture);
            AppendString(destination, root + "/start_addr");
            AppendString(destination, e.StartAddr.ToString("x", CultureInfo.InvariantCulture));
            AppendString(destination, root + "/size");
            AppendString(destination, e.Size.ToString("x", CultureInfo.InvariantCulture));
            if (e.Name is not null)
            {
                AppendString(destination, root + "/name");
                destination.AddRange(e.Name);
                destination.Add(0);
            }
        }
    }

    private static void AppendString(List<byte> destination, string s)
    {
        destination.AddRange(Encoding.ASCII.GetBytes(s));
        destination.Add(0);
    }

    private static StreamFormatException Fail(long chunkIndex, long offset, string detail) =>
        new(LegacyChunk.Name(LegacyChunkId.Toolstack), chunkIndex, offset, detail);
}
