using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;

namespace Xmig.Verify;

/// <summary>
/// The per-record checks of a Migration v2 stream that <c>verify</c> (<see cref="StreamVerifier"/>) and
/// <c>restore</c> both apply, written once so that the two cannot disagree on what is a valid stream. Where v2 §7
/// (what the reference receiver checks) and §8 (what <c>verify-stream-v2</c> checks) differ, the stricter side is
/// taken: reserved fields and padding must be zero (§2, §8 V5, V8, V16, V17, V20, V23, V26), unknown libxl records
/// are refused (§7 L3), HVM_PARAMS indices are below 64 (§3.5.9), and an HVM stream is complete only with an
/// HVM_CONTEXT and some memory (§7 row 28, §3.6). Each method throws <see cref="StreamFormatException"/> naming
/// the record and offset.
/// </summary>
internal static class V2RecordChecks
{
    /// <summary>§2, §8 V8, V23: record padding octets must be zero (the reference readers ignore them).</summary>
    public static void Begin(RecordReader reader) => reader.StrictPadding = true;

    /// <summary>§3.1, §8 V16, V17: reserved option bits and reserved fields of the libxc image header are zero.</summary>
    public static void ImageHeader(ImageHeader h, long offset)
    {
        const string What = "libxc image header";
        if ((h.Options & ~Formats.Libxc.ImageHeader.OptionBigEndian) != 0)
        {
            throw new StreamFormatException(What, -1, offset + 16, Invariant($"reserved option bits set (options 0x{h.Options:X4})"));
        }

        if (h.Reserved1 != 0 || h.Reserved2 != 0)
        {
            throw new StreamFormatException(What, -1, offset + 18, Invariant($"reserved fields not zero (0x{h.Reserved1:X4}, 0x{h.Reserved2:X8})"));
        }
    }

    /// <summary>§3.2, §8 V20: the reserved u16 of the domain header is zero.</summary>
    public static void DomainHeader(DomainHeader h, long offset)
    {
        if (h.Reserved != 0)
        {
            throw new StreamFormatException("libxc domain header", -1, offset + 6, Invariant($"reserved field 0x{h.Reserved:X4} not zero"));
        }
    }

    /// <summary>§4.1, §8 V5: libxl stream header option bits 2–31 are reserved and zero.</summary>
    public static void LibxlHeader(StreamHeader h, long offset)
    {
        var reserved = h.Options & ~(StreamHeader.OptionBigEndian | StreamHeader.OptionLegacy);
        if (reserved != 0)
        {
            throw new StreamFormatException("libxl stream header", -1, offset + 12, Invariant($"reserved option bits set (options 0x{h.Options:X8})"));
        }
    }

    /// <summary>§8 V22, §7 row 4: END, CHECKPOINT, VERIFY, STATIC_DATA_END, LIBXC_CONTEXT, libxl END and CHECKPOINT_END have no body.</summary>
    public static void EmptyBody(RecordReader reader)
    {
        if (reader.Header.Length != 0)
        {
            throw reader.Error(Invariant($"length {reader.Header.Length} (must be 0)"));
        }
    }

    /// <summary>§3.5.2, §8 V26: the reserved u32 after the PAGE_DATA count is zero.</summary>
    public static void PageDataHeader(LibxcReader reader, uint reserved) => Reserved(reader, reserved);

    /// <summary>§3.5.2, §8 V27: bits 52–59 of a PAGE_DATA pfn entry are reserved and zero.</summary>
    public static void PageDataEntry(LibxcReader reader, int index, ulong entry)
    {
        if ((entry & PageTypes.ReservedMask) != 0)
        {
            throw reader.Error(Invariant($"pfn entry {index}: reserved bits 52-59 set (0x{entry:X16})"));
        }
    }

    /// <summary>§3.5.11: the reserved u32 of X86_TSC_INFO is zero.</summary>
    public static void TscInfo(LibxcReader reader, X86TscInfo tsc) => Reserved(reader, tsc.Reserved);

    /// <summary>§3.5.9: an HVM_PARAMS index names one of Xen's 64 HVM parameters (<c>xc_hvm_param_set</c> refuses others).</summary>
    public static void HvmParamIndex(LibxcReader reader, int entry, ulong index)
    {
        if (index >= HvmParam.Count)
        {
            throw reader.Error(Invariant($"parameter {entry}: index {index} is not a valid HVM parameter (below {HvmParam.Count})"));
        }
    }

    /// <summary>§7 L3: libxl refuses every unknown record type, the optional bit notwithstanding.</summary>
    public static StreamFormatException UnknownLibxlRecord(LibxlReader reader) =>
        reader.Error(reader.Header.IsOptional
            ? Invariant($"unknown optional libxl record type 0x{reader.Header.Type:X8} (libxl refuses every unknown type)")
            : Invariant($"unknown mandatory libxl record type 0x{reader.Header.Type:X8}"));

    /// <summary>§4.3.3, §8 V11, V12: emulator_id is 0 (unknown), 1 (QEMU traditional) or 2 (QEMU upstream).</summary>
    public static void EmulatorId(LibxlReader reader, uint id)
    {
        if (id > (uint)Formats.Libxl.EmulatorId.QemuUpstream)
        {
            throw reader.Error(Invariant($"emulator_id {id} is not 0, 1 or 2"));
        }
    }

    /// <summary>
    /// §7 row 28 and completion (§3.6): an HVM guest cannot run without its vCPU state (HVM_CONTEXT) or without
    /// memory. Checked at END and at every CHECKPOINT.
    /// </summary>
    public static void HvmCompletion(RecordReader reader, bool hvmContext, bool anyPage)
    {
        if (!hvmContext)
        {
            throw reader.Error("HVM stream without HVM_CONTEXT (the guest's vCPU state is missing)");
        }

        if (!anyPage)
        {
            throw reader.Error("the stream carries no memory (no PAGE_DATA entry)");
        }
    }

    /// <summary>§3.5.3, §8 V32: octets 2–7 of X86_PV_INFO are reserved and zero.</summary>
    public static void PvInfo(LibxcReader reader, X86PvInfo info)
    {
        if (info.Reserved != 0)
        {
            throw reader.Error("reserved octets 2-7 not zero");
        }
    }

    /// <summary>
    /// A reserved u32 that must be zero: after the vcpu_id of the X86_PV_VCPU_* records (§3.5.5, V34), after the
    /// HVM_PARAMS count (§3.5.9, V38).
    /// </summary>
    public static void Reserved(LibxcReader reader, uint reserved)
    {
        if (reserved != 0)
        {
            throw reader.Error(Invariant($"reserved field 0x{reserved:X8} not zero"));
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
