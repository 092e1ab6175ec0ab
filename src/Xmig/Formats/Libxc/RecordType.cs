namespace Xmig.Formats.Libxc;

/// <summary>libxc record types (v2 spec §3.4). Bit 31 marks an optional record.</summary>
public enum RecordType : uint
{
    End = 0x00,
    PageData = 0x01,
    X86PvInfo = 0x02,
    X86PvP2mFrames = 0x03,
    X86PvVcpuBasic = 0x04,
    X86PvVcpuExtended = 0x05,
    X86PvVcpuXsave = 0x06,
    SharedInfo = 0x07,
    X86TscInfo = 0x08,
    HvmContext = 0x09,
    HvmParams = 0x0A,
    Toolstack = 0x0B,
    X86PvVcpuMsrs = 0x0C,
    Verify = 0x0D,
    Checkpoint = 0x0E,
    CheckpointDirtyPfnList = 0x0F,
    StaticDataEnd = 0x10,
    X86CpuidPolicy = 0x11,
    X86MsrPolicy = 0x12,
}

/// <summary>Names and classes of libxc record types.</summary>
public static class RecordTypes
{
    /// <summary>The highest type defined at the reference revision.</summary>
    public const uint MaxDefined = (uint)RecordType.X86MsrPolicy;

    private static readonly string[] Names =
    [
        "END", "PAGE_DATA", "X86_PV_INFO", "X86_PV_P2M_FRAMES", "X86_PV_VCPU_BASIC", "X86_PV_VCPU_EXTENDED",
        "X86_PV_VCPU_XSAVE", "SHARED_INFO", "X86_TSC_INFO", "HVM_CONTEXT", "HVM_PARAMS", "TOOLSTACK",
        "X86_PV_VCPU_MSRS", "VERIFY", "CHECKPOINT", "CHECKPOINT_DIRTY_PFN_LIST", "STATIC_DATA_END",
        "X86_CPUID_POLICY", "X86_MSR_POLICY",
    ];

    /// <summary>True for 0x00..0x12.</summary>
    public static bool IsDefined(uint type) => type <= MaxDefined;

    /// <summary>The spec name (<c>PAGE_DATA</c>); unknown types read <c>UNKNOWN_0x00000013</c>.</summary>
    public static string Name(uint type) =>
        type <= MaxDefined ? Names[type] : $"UNKNOWN_0x{type:X8}";

    /// <summary>The spec name of a known type.</summary>
    public static string Name(RecordType type) => Name((uint)type);

    /// <summary>True for the four X86_PV_VCPU_* records sharing the vcpu_id layout (§3.5.5).</summary>
    public static bool IsPvVcpu(uint type) =>
        type is (uint)RecordType.X86PvVcpuBasic or (uint)RecordType.X86PvVcpuExtended
            or (uint)RecordType.X86PvVcpuXsave or (uint)RecordType.X86PvVcpuMsrs;
}
