using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.7: X86_TSC_INFO, 24 octets.
//
//  0      4      8            16            20         24
//  +------+------+------------+-------------+----------+
//  | mode | khz  | nsec (u64) | incarnation | reserved |
//  +------+------+------------+-------------+----------+

/// <summary>X86_TSC_INFO body (v2 spec §3.5.7).</summary>
public readonly struct X86TscInfo
{
    public const int Size = 24;

    public X86TscInfo(uint mode, uint khz, ulong nsec, uint incarnation, uint reserved = 0)
    {
        Mode = mode;
        Khz = khz;
        Nsec = nsec;
        Incarnation = incarnation;
        Reserved = reserved;
    }

    /// <summary>0 default, 1 always emulate, 2 never emulate, 3 pvrdtscp.</summary>
    public uint Mode { get; }

    public uint Khz { get; }

    public ulong Nsec { get; }

    public uint Incarnation { get; }

    public uint Reserved { get; }

    public static X86TscInfo Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source),
        BinaryPrimitives.ReadUInt32LittleEndian(source[4..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[16..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[20..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Mode);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], Khz);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Nsec);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], Incarnation);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], Reserved);
    }
}
