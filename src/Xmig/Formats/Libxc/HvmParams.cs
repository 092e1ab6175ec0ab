using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.9: HVM_PARAMS.
//
//  0       4          8                    8+16C
//  +-------+----------+--------------------+
//  | count | reserved | {u64 index, u64 value}[count] |
//  +-------+----------+--------------------+

/// <summary>One HVM parameter (v2 spec §3.5.9).</summary>
public readonly record struct HvmParamEntry(ulong Index, ulong Value)
{
    public const int Size = 16;
}

/// <summary>An HVM_PARAMS body in the read buffer.</summary>
public readonly ref struct HvmParamsView
{
    public const int HeaderSize = 8;

    public HvmParamsView(ReadOnlySpan<byte> body)
    {
        Count = BinaryPrimitives.ReadUInt32LittleEndian(body);
        Reserved = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        Body = body;
    }

    public uint Count { get; }

    public uint Reserved { get; }

    public ReadOnlySpan<byte> Body { get; }

    public HvmParamEntry this[int i] => new(
        BinaryPrimitives.ReadUInt64LittleEndian(Body.Slice(HeaderSize + (16 * i), 8)),
        BinaryPrimitives.ReadUInt64LittleEndian(Body.Slice(HeaderSize + (16 * i) + 8, 8)));

    /// <summary>The exact body length for <paramref name="count"/> parameters.</summary>
    public static long BodyLength(long count) => HeaderSize + (16 * count);
}
