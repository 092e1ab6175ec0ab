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
