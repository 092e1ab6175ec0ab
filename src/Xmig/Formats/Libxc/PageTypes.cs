namespace Xmig.Formats.Libxc;

/// <summary>pfn entry encoding and page type classes (v2 spec §3.5.2).</summary>
public static class PageTypes
{
    /// <summary>The pin bit (<c>XEN_DOMCTL_PFINFO_LPINTAB</c>) within the nibble.</summary>
    public const byte PinBit = 0x8;

    /// <summary>Bits 51..0 of an entry: the pfn.</summary>
    public const ulong PfnMask = (1UL << 52) - 1;

    /// <summary>Bits 59..52 of an entry: reserved, zero.</summary>
    public const ulong ReservedMask = 0xFFUL << 52;

    /// <summary>Page data follows for nibbles 0x0–0x4 and 0x9–0xC.</summary>
    public static bool HasData(int nibble) => nibble <= 0x4 || (nibble >= 0x9 && nibble <= 0xC);

    /// <summary>The receiver populates the pfn: the data-carrying types plus XALLOC.</summary>
    public static bool IsAllocated(int nibble) => HasData(nibble) || nibble == (int)PageType.XAlloc;

    /// <summary>0x5–0x8: reserved, restore fails.</summary>
    public static bool IsReserved(int nibble) => nibble is >= 0x5 and <= 0x8;

    /// <summary>The type nibble of an encoded entry.</summary>
    public static int TypeOf(ulong entry) => (int)(entry >> 60);

    /// <summary>The pfn of an encoded entry.</summary>
    public static ulong PfnOf(ulong entry) => entry & PfnMask;

    /// <summary>Encodes an entry: type in bits 63–60, pfn in bits 51–0.</summary>
    public static ulong Encode(ulong pfn, PageType type) => ((ulong)type << 60) | (pfn & PfnMask);

    private static readonly string[] Names =
    [
        "NOTAB", "L1TAB", "L2TAB", "L3TAB", "L4TAB", "RESERVED_5", "RESERVED_6", "RESERVED_7", "RESERVED_8",
        "L1TAB|PIN", "L2TAB|PIN", "L3TAB|PIN", "L4TAB|PIN", "BROKEN", "XALLOC", "XTAB",
    ];

    /// <summary>Spec name of a nibble (<c>NOTAB</c>, <c>L2TAB|PIN</c>, <c>XTAB</c>).</summary>
    public static string Name(int nibble) => Names[nibble & 0xF];
}
