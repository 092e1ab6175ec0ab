using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

/// <summary>What the first octets of a legacy image say about the saver (legacy-stream.md §1, §12 items 1 and 19).</summary>
internal readonly record struct LegacyDetectionResult(int Width, GuestType Guest, string Evidence);

/// <summary>
/// Detects the toolstack width <c>W</c> and the guest type of a legacy libxc image from its first 16 octets
/// (legacy-stream.md §1 table). Either may be given; the other is then detected. The heuristic assumes the PV
/// extended-info block (present since Xen 3.0.x); where the octets do not decide, detection fails with a clear
/// message naming the option to pass.
/// </summary>
internal static class LegacyDetection
{
    /// <summary>Octets needed for a decision.</summary>
    public const int ProbeLength = 16;

    // legacy-stream.md §1:
    //   octets 0..W-1   p2m_size (< 2^28, so octets 4-7 are zero when W = 8)
    //   octets W..      PV: ext-info marker ~0 (W octets); HVM: first chunk id (i32)
    public static LegacyDetectionResult Detect(ReadOnlySpan<byte> head, long offset, int? width, GuestType? guest)
    {
        if (width is int w && w is not (4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "width must be 4 or 8 octets");
        }

        if (width is int known && guest is GuestType g)
        {
            return new LegacyDetectionResult(known, g, "given");
        }

        if (head.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(head) == ulong.MaxValue)
        {
            throw Fail(offset, "the image starts with eight 0xFF octets: this is a Migration v2 stream, not a legacy one");
        }

        if (head.Length < 12)
        {
            throw Fail(offset, $"only {head.Length} octets: too short to detect the toolstack width and guest type");
        }

        var w4 = BinaryPrimitives.ReadInt32LittleEndian(head[4..]);
        int detectedWidth;
        string evidence;
        if (width is int given)
        {
            detectedWidth = given;
            evidence = "width given";
        }
        else if (w4 == 0)
        {
            detectedWidth = 8;
            evidence = "octets 4-7 are zero (upper half of a 64-bit p2m_size)";
        }
        else if (w4 == -1 || LegacyChunk.IsValidId(w4))
        {
            detectedWidth = 4;
            evidence = w4 == -1
                ? "octets 4-7 are the 32-bit extended-info marker ~0"
                : $"octets 4-7 are a chunk id ({w4}) right after a 32-bit p2m_size";
        }
        else
        {
            throw Fail(offset, $"cannot detect the toolstack width: octets 4-7 (0x{(uint)w4:X8}) are neither zero, ~0 nor a chunk id; pass -w 32 or -w 64");
        }

        if (head.Length < detectedWidth + 8 && guest is null)
        {
            throw Fail(offset, "too short to detect the guest type; pass -g pv or -g hvm");
        }

        var p2mSize = detectedWidth == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(head) : BinaryPrimitives.ReadUInt32LittleEndian(head);
        if (p2mSize == 0 || p2mSize > LegacyStreamOptions.MaxP2mSizeLimit)
        {
            throw Fail(offset, $"p2m_size {p2mSize} read with a {detectedWidth * 8}-bit toolstack word is not a plausible guest size; pass -w and -g");
        }

        if (guest is GuestType known2)
        {
            return new LegacyDetectionResult(detectedWidth, known2, evidence);
        }

        var next = head[detectedWidth..];
        var marker = detectedWidth == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(next) == ulong.MaxValue : BinaryPrimitives.ReadUInt32LittleEndian(next) == uint.MaxValue;
        if (marker)
        {
            return new LegacyDetectionResult(detectedWidth, GuestType.Pv, evidence + "; the PV extended-info marker ~0 follows p2m_size");
        }

        var id = BinaryPrimitives.ReadInt32LittleEndian(next);
        if (id != 0 && LegacyChunk.IsValidId(id))
        {
            return new LegacyDetectionResult(detectedWidth, GuestType.Hvm, evidence + $"; a chunk id ({id}, {LegacyChunk.Name(id)}) follows p2m_size");
        }

        throw Fail(offset + detectedWidth, $"cannot detect the guest type: after p2m_size there is neither the PV extended-info marker nor a chunk id (0x{(uint)id:X8}); a PV stream without extended info (Xen < 3.0.x) needs -g pv");
    }

    private static StreamFormatException Fail(long offset, string detail) =>
        new("legacy image header", -1, offset, detail);
}
