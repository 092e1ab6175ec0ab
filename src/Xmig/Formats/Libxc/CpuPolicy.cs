using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.12: X86_CPUID_POLICY (xen_cpuid_leaf_t[]) and X86_MSR_POLICY (xen_msr_entry_t[]).
//
//  CPUID leaf, 24 octets:  0 leaf | 4 subleaf | 8 a | 12 b | 16 c | 20 d
//  MSR entry, 16 octets:   0 idx  | 4 flags (zero) | 8 val (u64)

/// <summary>One <c>xen_cpuid_leaf_t</c> (v2 spec §3.5.12).</summary>
public readonly record struct CpuidLeaf(uint Leaf, uint Subleaf, uint A, uint B, uint C, uint D)
{
    public const int Size = 24;

    /// <summary>Subleaf value meaning "no subleaf".</summary>
    public const uint NoSubleaf = 0xFFFF_FFFF;

    public static CpuidLeaf Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[8..]), BinaryPrimitives.ReadUInt32LittleEndian(s[12..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[16..]), BinaryPrimitives.ReadUInt32LittleEndian(s[20..]));

    public void Write(Span<byte> d)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(d, Leaf);
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Subleaf);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], A);
        BinaryPrimitives.WriteUInt32LittleEndian(d[12..], B);
        BinaryPrimitives.WriteUInt32LittleEndian(d[16..], C);
        BinaryPrimitives.WriteUInt32LittleEndian(d[20..], D);
    }
}

/// <summary>One <c>xen_msr_entry_t</c> (v2 spec §3.5.12); also the X86_PV_VCPU_MSRS element.</summary>
public readonly record struct MsrEntry(uint Index, uint Flags, ulong Value)
{
    public const int Size = 16;

    public static MsrEntry Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[8..]));

    public void Write(Span<byte> d)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(d, Index);
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(d[8..], Value);
    }
}
