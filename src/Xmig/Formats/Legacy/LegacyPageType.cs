namespace Xmig.Formats.Legacy;

/// <summary>
/// The type nibble of a legacy pfn entry (bits 28–31, legacy-stream.md §5.3), with the pin bit (bit 31)
/// included: 0x9…0xC are pinned page tables, but 0xD/0xE/0xF are BROKEN/XALLOC/XTAB, not "pinned 5…7".
/// </summary>
internal enum LegacyPageType : byte
{
    NoTab = 0x0,
    L1Tab = 0x1,
    L2Tab = 0x2,
    L3Tab = 0x3,
    L4Tab = 0x4,
    PinnedNoTab = 0x8,
    PinnedL1Tab = 0x9,
    PinnedL2Tab = 0xA,
    PinnedL3Tab = 0xB,
    PinnedL4Tab = 0xC,
    Broken = 0xD,
    XAlloc = 0xE,
    XTab = 0xF,
}

/// <summary>Decoding of one legacy pfn entry: bits 0–27 pfn, bits 28–31 type (legacy-stream.md §5.3).</summary>
internal static class LegacyPfnEntry
{
    public const int TypeShift = 28;
    public const uint PfnMask = 0x0FFF_FFFF;
    public const uint TypeMask = 0xF000_0000;

    /// <summary>The XTAB filler entry the sender writes for pages it could not map (no pfn).</summary>
    public const uint Filler = 0xF000_0000;

    /// <summary>Largest pfn the format can carry (28 bits).</summary>
    public const uint MaxPfn = PfnMask;

    public static uint Pfn(uint entry) => entry & PfnMask;

    public static LegacyPageType Type(uint entry) => (LegacyPageType)(entry >> TypeShift);

    public static uint Make(uint pfn, LegacyPageType type) => (pfn & PfnMask) | ((uint)type << TypeShift);

    /// <summary>
    /// True if 4096 octets of page data follow for this entry: every nibble below 0xD, including the undefined
    /// 0x5–0x7 (they are counted and read before being rejected, legacy-stream.md §12 item 5).
    /// </summary>
    public static bool HasData(uint entry) => (entry >> TypeShift) < 0xD;

    public static bool HasData(LegacyPageType type) => (byte)type < 0xD;

    /// <summary>True for the undefined nibbles 0x5–0x7 (with or without the pin bit removed).</summary>
    public static bool IsUndefined(LegacyPageType type) => ((byte)type & 0x7) is >= 5 and <= 7 && (byte)type < 0xD;

    /// <summary>True for L1…L4, pinned or not.</summary>
    public static bool IsPageTable(LegacyPageType type) => ((byte)type & 0x7) is >= 1 and <= 4 && (byte)type < 0xD;

    /// <summary>The spec's name of a type nibble.</summary>
    public static string Name(LegacyPageType type) => type switch
    {
        LegacyPageType.NoTab => "NOTAB",
        LegacyPageType.L1Tab => "L1TAB",
        LegacyPageType.L2Tab => "L2TAB",
        LegacyPageType.L3Tab => "L3TAB",
        LegacyPageType.L4Tab => "L4TAB",
        LegacyPageType.PinnedNoTab => "LPINTAB|NOTAB",
        LegacyPageType.PinnedL1Tab => "LPINTAB|L1TAB",
        LegacyPageType.PinnedL2Tab => "LPINTAB|L2TAB",
        LegacyPageType.PinnedL3Tab => "LPINTAB|L3TAB",
        LegacyPageType.PinnedL4Tab => "LPINTAB|L4TAB",
        LegacyPageType.Broken => "BROKEN",
        LegacyPageType.XAlloc => "XALLOC",
        LegacyPageType.XTab => "XTAB",
        _ => $"type 0x{(byte)type:X}",
    };
}
