namespace Xmig.Formats.Legacy;

/// <summary>
/// Chunk ids of the legacy libxc image body (legacy-stream.md §5.1, §5.4). Positive ids 1…1024 are page
/// batches (the id is the entry count), 0 ends the body of a checkpoint, −1…−20 are special chunks.
/// </summary>
internal enum LegacyChunkId
{
    EndOfBody = 0,
    EnableVerifyMode = -1,
    VcpuInfo = -2,
    HvmIdentPt = -3,
    HvmVm86Tss = -4,
    Tmem = -5,
    TmemExtra = -6,
    TscInfo = -7,
    HvmConsolePfn = -8,
    LastCheckpoint = -9,
    HvmAcpiIoportsLocation = -10,
    HvmViridian = -11,
    CompressedData = -12,
    EnableCompression = -13,
    HvmGenerationIdAddr = -14,
    HvmPagingRingPfn = -15,

    /// <summary>Also named HVM_MONITOR_RING_PFN (same id, same meaning).</summary>
    HvmAccessRingPfn = -16,
    HvmSharingRingPfn = -17,
    Toolstack = -18,
    HvmIoreqServerPfn = -19,
    HvmNrIoreqServerPages = -20,
}

/// <summary>Names, limits and classification of legacy chunk ids.</summary>
internal static class LegacyChunk
{
    /// <summary>Largest page batch (<c>MAX_BATCH_SIZE</c>, legacy-stream.md §5.1).</summary>
    public const int MaxBatchSize = 1024;

    /// <summary>Lowest known special chunk id.</summary>
    public const int LowestId = -20;

    /// <summary>True for ids a body may contain: 0, 1…1024 and −1…−20.</summary>
    public static bool IsValidId(int id) => id >= LowestId && id <= MaxBatchSize;

    /// <summary>The HVM parameter chunks of legacy-stream.md §5.5.2 (u32 pad + u64 value).</summary>
    public static bool IsHvmParam(LegacyChunkId id) => id is LegacyChunkId.HvmIdentPt or LegacyChunkId.HvmVm86Tss
        or LegacyChunkId.HvmConsolePfn or LegacyChunkId.HvmAcpiIoportsLocation or LegacyChunkId.HvmViridian
        or LegacyChunkId.HvmGenerationIdAddr or LegacyChunkId.HvmPagingRingPfn or LegacyChunkId.HvmAccessRingPfn
        or LegacyChunkId.HvmSharingRingPfn or LegacyChunkId.HvmIoreqServerPfn or LegacyChunkId.HvmNrIoreqServerPages;

    /// <summary>
    /// The HVM parameter index each HVM parameter chunk maps to (legacy-stream.md §5.4, v2-stream.md §9.1).
    /// </summary>
    public static uint HvmParamIndex(LegacyChunkId id) => id switch
    {
        LegacyChunkId.HvmIdentPt => 12,
        LegacyChunkId.HvmVm86Tss => 15,
        LegacyChunkId.HvmConsolePfn => 17,
        LegacyChunkId.HvmAcpiIoportsLocation => 19,
        LegacyChunkId.HvmViridian => 9,
        LegacyChunkId.HvmGenerationIdAddr => 34,
        LegacyChunkId.HvmPagingRingPfn => 27,
        LegacyChunkId.HvmAccessRingPfn => 28,
        LegacyChunkId.HvmSharingRingPfn => 29,
        LegacyChunkId.HvmIoreqServerPfn => 32,
        LegacyChunkId.HvmNrIoreqServerPages => 33,
        _ => throw new ArgumentOutOfRangeException(nameof(id), id, "not an HVM parameter chunk"),
    };

    /// <summary>The spec's name of a chunk id (<c>PAGE_BATCH</c> for 1…1024).</summary>
    public static string Name(int id) => id switch
    {
        > 0 and <= MaxBatchSize => "PAGE_BATCH",
        0 => "END_OF_BODY",
        -1 => "ENABLE_VERIFY_MODE",
        -2 => "VCPU_INFO",
        -3 => "HVM_IDENT_PT",
        -4 => "HVM_VM86_TSS",
        -5 => "TMEM",
        -6 => "TMEM_EXTRA",
        -7 => "TSC_INFO",
        -8 => "HVM_CONSOLE_PFN",
        -9 => "LAST_CHECKPOINT",
        -10 => "HVM_ACPI_IOPORTS_LOCATION",
        -11 => "HVM_VIRIDIAN",
        -12 => "COMPRESSED_DATA",
        -13 => "ENABLE_COMPRESSION",
        -14 => "HVM_GENERATION_ID_ADDR",
        -15 => "HVM_PAGING_RING_PFN",
        -16 => "HVM_ACCESS_RING_PFN",
        -17 => "HVM_SHARING_RING_PFN",
        -18 => "TOOLSTACK",
        -19 => "HVM_IOREQ_SERVER_PFN",
        -20 => "HVM_NR_IOREQ_SERVER_PAGES",
        _ => "chunk",
    };

    public static string Name(LegacyChunkId id) => Name((int)id);
}
