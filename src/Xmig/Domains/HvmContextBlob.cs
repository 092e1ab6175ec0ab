using System.Buffers.Binary;

namespace Xmig.Domains;

/// <summary>
/// Xen's HVM save blob (<c>XEN_DOMCTL_gethvmcontext</c>; legacy-stream.md §6.5, v2-stream.md §3.5.8): a sequence
/// of entries, each a descriptor followed by its body, beginning with the header entry and ending with the end
/// entry. The engines carry it opaquely; the simulated domain builds one and checks its framing.
/// </summary>
/// <remarks>
/// <code>
/// entry:   0      2          4          8
///          +------+----------+----------+------------------+
///          | u16  | u16      | u32      | length octets    |
///          | type | instance | length   | body             |
///          +------+----------+----------+------------------+
/// header body (type 1): u32 magic 0x54381286, u32 version 1, u64 changeset, u32 cpuid, u32 gtsc_khz
/// end entry (type 0):   length 0, last in the blob
/// </code>
/// </remarks>
internal static class HvmContextBlob
{
    public const uint Magic = 0x54381286;
    public const uint Version = 1;
    public const ushort TypeEnd = 0;
    public const ushort TypeHeader = 1;
    public const ushort TypeCpu = 2;
    public const int DescriptorSize = 8;
    public const int HeaderBodySize = 24;

    // Entry kinds written by the simulated domain, in Xen's save order (by type code), with plausible body
    // sizes (every body a multiple of 8 octets, as public/hvm/save.h requires): (type, per vCPU?, instances, size).
    private static readonly (ushort Type, bool PerVcpu, int Instances, int Size)[] SimulatedEntries =
    [
        (2, true, 0, 1016),  // CPU
        (3, false, 2, 8),    // PIC (master, slave)
        (4, false, 1, 400),  // IOAPIC
        (5, true, 0, 24),    // LAPIC
        (6, true, 0, 1024),  // LAPIC_REGS
        (7, false, 1, 32),   // PCI_IRQ
        (8, false, 1, 8),    // ISA_IRQ
        (9, false, 1, 8),    // PCI_LINK
        (10, false, 1, 64),  // PIT
        (11, false, 1, 24),  // RTC
        (12, false, 1, 208), // HPET
        (13, false, 1, 16),  // PMTIMER
        (14, true, 0, 456),  // MTRR
        (16, true, 0, 848),  // CPU_XSAVE
    ];

    /// <summary>Builds a valid-looking blob for <paramref name="vcpus"/> vCPUs, deterministic in <paramref name="seed"/>.</summary>
    public static byte[] Build(int vcpus, ulong seed, uint gtscKhz)
    {
        var size = DescriptorSize + HeaderBodySize + DescriptorSize;
        foreach (var (_, perVcpu, instances, body) in SimulatedEntries)
        {
            size += (perVcpu ? vcpus : instances) * (DescriptorSize + body);
        }

        var blob = new byte[size];
        var span = blob.AsSpan();
        var at = WriteDescriptor(span, TypeHeader, 0, HeaderBodySize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 16)..], 0x000906EA);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 20)..], gtscKhz);
        at += HeaderBodySize;
        var prng = new Prng(Prng.Mix(seed, 0x48564D43)); // "HVMC"
        foreach (var (type, perVcpu, instances, body) in SimulatedEntries)
        {
            var count = perVcpu ? vcpus : instances;
            for (var instance = 0; instance < count; instance++)
            {
                at += WriteDescriptor(span[at..], type, (ushort)instance, (uint)body);
                prng.Fill(span.Slice(at, body));
                at += body;
            }
        }

        WriteDescriptor(span[at..], TypeEnd, 0, 0);
        return blob;
    }

    /// <summary>
    /// Checks the framing: a header entry first (magic, version), entries that fit, an end entry exactly at the
    /// end. Returns null when valid, else what is wrong.
    /// </summary>
    public static string? Validate(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < DescriptorSize + HeaderBodySize + DescriptorSize)
        {
            return $"{blob.Length} octets is too short for a header and an end entry";
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(blob) != TypeHeader)
        {
            return $"first entry has type {BinaryPrimitives.ReadUInt16LittleEndian(blob)}, expected the header (1)";
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(blob[4..]) < HeaderBodySize)
        {
            return "header entry too short";
        }

        var magic = BinaryPrimitives.ReadUInt32LittleEndian(blob[DescriptorSize..]);
        if (magic != Magic)
        {
            return $"header magic 0x{magic:X8}, expected 0x{Magic:X8}";
        }

        var at = 0;
        while (true)
        {
            if (blob.Length - at < DescriptorSize)
            {
                return $"entry at offset {at} truncated";
            }

            var type = BinaryPrimitives.ReadUInt16LittleEndian(blob[at..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(blob[(at + 4)..]);
            if (length > (uint)(blob.Length - at - DescriptorSize))
            {
                return $"entry type {type} at offset {at}: length {length} runs past the end";
            }

            at += DescriptorSize + (int)length;
            if (type == TypeEnd)
            {
                return at == blob.Length ? null : $"{blob.Length - at} octets after the end entry";
            }
        }
    }

    /// <summary>Number of vCPUs described (highest CPU-entry instance + 1); 0 when the blob is not well framed.</summary>
    public static int CountVcpus(ReadOnlySpan<byte> blob)
    {
        var at = 0;
        var count = 0;
        while (blob.Length - at >= DescriptorSize)
        {
            var type = BinaryPrimitives.ReadUInt16LittleEndian(blob[at..]);
            var instance = BinaryPrimitives.ReadUInt16LittleEndian(blob[(at + 2)..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(blob[(at + 4)..]);
            if (type == TypeEnd || length > (uint)(blob.Length - at - DescriptorSize))
            {
                break;
            }

            if (type == TypeCpu)
            {
                count = Math.Max(count, instance + 1);
            }

            at += DescriptorSize + (int)length;
        }

        return count;
    }

    /// <summary>
    /// The body of the entry of <paramref name="type"/> and <paramref name="instance"/> (for a CPU entry, the vCPU id);
    /// false when the blob has none before its end entry or is not well framed there.
    /// </summary>
    public static bool TryFindEntry(ReadOnlySpan<byte> blob, ushort type, ushort instance, out ReadOnlySpan<byte> body)
    {
        var at = 0;
        while (blob.Length - at >= DescriptorSize)
        {
            var entryType = BinaryPrimitives.ReadUInt16LittleEndian(blob[at..]);
            var entryInstance = BinaryPrimitives.ReadUInt16LittleEndian(blob[(at + 2)..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(blob[(at + 4)..]);
            if (entryType == TypeEnd || length > (uint)(blob.Length - at - DescriptorSize))
            {
                break;
            }

            if (entryType == type && entryInstance == instance)
            {
                body = blob.Slice(at + DescriptorSize, (int)length);
                return true;
            }

            at += DescriptorSize + (int)length;
        }

        body = default;
        return false;
    }

    private static int WriteDescriptor(Span<byte> span, ushort type, ushort instance, uint length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(span, type);
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], instance);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], length);
        return DescriptorSize;
    }
}
