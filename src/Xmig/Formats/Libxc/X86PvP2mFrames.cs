using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.4: X86_PV_P2M_FRAMES.
//
//  0               4             8                   8+8F
//  +---------------+-------------+-------------------+
//  | p2m_start_pfn | p2m_end_pfn | p2m_pfn[F] (u64)  |
//  +---------------+-------------+-------------------+
//  F = end/fpp - start/fpp + 1, fpp = 4096 / guest_width.

/// <summary>An X86_PV_P2M_FRAMES body in the read buffer (v2 spec §3.5.4).</summary>
public readonly ref struct X86PvP2mFramesView
{
    public const int HeaderSize = 8;

    public X86PvP2mFramesView(ReadOnlySpan<byte> body)
    {
        StartPfn = BinaryPrimitives.ReadUInt32LittleEndian(body);
        EndPfn = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        Body = body;
    }

    public uint StartPfn { get; }

    /// <summary>Last pfn covered (inclusive): the guest's max pfn.</summary>
    public uint EndPfn { get; }

    public ReadOnlySpan<byte> Body { get; }

    public int FrameCount => (Body.Length - HeaderSize) / 8;

    public ulong Frame(int i) => BinaryPrimitives.ReadUInt64LittleEndian(Body.Slice(HeaderSize + (8 * i), 8));

    /// <summary>F for a guest of <paramref name="guestWidth"/> octets (4 or 8).</summary>
    public static long ExpectedFrameCount(uint start, uint end, int guestWidth)
    {
        var fpp = 4096 / guestWidth;
        return (end / fpp) - (start / fpp) + 1;
    }
}
