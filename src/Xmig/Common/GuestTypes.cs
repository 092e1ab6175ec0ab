namespace Xmig;

// The vocabulary every layer shares (formats, engines, domain backends): one name for one concept.

/// <summary>
/// The kind of guest. The values are those of the v2 Domain Header <c>type</c> field
/// (v2-stream.md §3.2), so that an engine can cast without a table.
/// </summary>
public enum GuestType : uint
{
    /// <summary>x86 paravirtualised guest.</summary>
    Pv = 1,

    /// <summary>x86 HVM guest (PVH guests are HVM containers too).</summary>
    Hvm = 2,
}

/// <summary>
/// Type of one guest frame, as Xen reports it to a saver and as a stream carries it: the
/// <c>XEN_DOMCTL_PFINFO_*</c> nibble (v2-stream.md §3.5.2, legacy-stream.md §5.3).
/// </summary>
public enum PageType : byte
{
    NoTab = 0x0,
    L1Tab = 0x1,
    L2Tab = 0x2,
    L3Tab = 0x3,
    L4Tab = 0x4,

    /// <summary><c>LPINTAB | L1TAB</c>: an L1 page table to be pinned.</summary>
    L1TabPinned = 0x9,
    L2TabPinned = 0xA,
    L3TabPinned = 0xB,
    L4TabPinned = 0xC,

    /// <summary>Broken page: neither allocated nor carrying data.</summary>
    Broken = 0xD,

    /// <summary>Allocate only; contents come later (a synthetic stream type).</summary>
    XAlloc = 0xE,

    /// <summary>Invalid or not present.</summary>
    XTab = 0xF,
}

public static class PageTypeExtensions
{
    /// <summary>True when a page of this type carries 4096 octets of data in a stream (v2-stream.md §3.5.2).</summary>
    public static bool HasData(this PageType type) => type <= PageType.L4Tab || (type >= PageType.L1TabPinned && type <= PageType.L4TabPinned);

    /// <summary>True when a receiver allocates the pfn for this type (data types plus XALLOC).</summary>
    public static bool IsAllocated(this PageType type) => type.HasData() || type == PageType.XAlloc;

    /// <summary>True for the nibbles a stream may carry (0x5–0x8 are reserved in v2).</summary>
    public static bool IsDefined(this PageType type) => (byte)type <= 0xF && (type <= PageType.L4Tab || type >= PageType.L1TabPinned);

    /// <summary>True for page-table types, pinned or not.</summary>
    public static bool IsPageTable(this PageType type) => type.HasData() && type != PageType.NoTab;
}

/// <summary>The guest frame every stream generation and backend uses: 4 KiB x86 pages (v2-stream.md §3.5.2, legacy-stream.md §5.2).</summary>
public static class GuestPage
{
    /// <summary>Octets in one guest frame.</summary>
    public const int Size = 4096;

    /// <summary>log2 of <see cref="Size"/>.</summary>
    public const int Shift = 12;
}

/// <summary>Indices of the HVM parameters a save/restore engine deals with (<c>public/hvm/params.h</c>; v2-stream.md §3.5.9).</summary>
public static class HvmParam
{
    public const uint StorePfn = 1;
    public const uint StoreEvtchn = 2;
    public const uint PaeEnabled = 4;
    public const uint IoreqPfn = 5;
    public const uint BufioreqPfn = 6;
    public const uint Viridian = 9;
    public const uint IdentPt = 12;
    public const uint Vm86Tss = 15;
    public const uint ConsolePfn = 17;
    public const uint ConsoleEvtchn = 18;
    public const uint AcpiIoportsLocation = 19;
    public const uint PagingRingPfn = 27;
    public const uint MonitorRingPfn = 28;
    public const uint SharingRingPfn = 29;
    public const uint IoreqServerPfn = 32;
    public const uint NrIoreqServerPages = 33;
    public const uint VmGenerationIdAddr = 34;
    public const uint X87FipWidth = 36;
    public const uint Vm86TssSized = 37;
    public const uint McaCap = 38;

    /// <summary>Parameters are indices below this bound (Xen's <c>HVM_NR_PARAMS</c> at the reference revision is 39).</summary>
    public const uint Count = 64;

    /// <summary>The name of a parameter this engine knows (<c>StorePfn</c>), or null.</summary>
    public static string? Name(ulong index) => index switch
    {
        1 => nameof(StorePfn),
        2 => nameof(StoreEvtchn),
        4 => nameof(PaeEnabled),
        5 => nameof(IoreqPfn),
        6 => nameof(BufioreqPfn),
        9 => nameof(Viridian),
        12 => nameof(IdentPt),
        15 => nameof(Vm86Tss),
        17 => nameof(ConsolePfn),
        18 => nameof(ConsoleEvtchn),
        19 => nameof(AcpiIoportsLocation),
        27 => nameof(PagingRingPfn),
        28 => nameof(MonitorRingPfn),
        29 => nameof(SharingRingPfn),
        32 => nameof(IoreqServerPfn),
        33 => nameof(NrIoreqServerPages),
        34 => nameof(VmGenerationIdAddr),
        36 => nameof(X87FipWidth),
        37 => nameof(Vm86TssSized),
        38 => nameof(McaCap),
        _ => null,
    };
}
