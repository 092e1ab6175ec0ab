namespace Xmig.Formats.Legacy;

/// <summary>What <see cref="LegacyStreamReader.Read"/> has just read.</summary>
internal enum LegacyItemKind
{
    None,

    /// <summary>Header: <c>ulong p2m_size</c> (§4.1).</summary>
    P2mSize,

    /// <summary>Header, PV: one extended-info block (§4.2).</summary>
    ExtendedInfoBlock,

    /// <summary>Header, PV: the p2m frame list (§4.3).</summary>
    P2mFrameList,

    /// <summary>Body: a page batch (§5.2); entries and, in format A, page data.</summary>
    PageBatch,

    /// <summary>Body: a special chunk −1…−20 (§5.4); see <see cref="LegacyStreamReader.ChunkId"/>.</summary>
    Chunk,

    /// <summary>Body: chunk 0, the end of this checkpoint's body.</summary>
    EndOfBody,

    /// <summary>PV tail: a slice (up to 1024) of the unmapped-pfn list (§6.1); at least one item, possibly empty.</summary>
    PvUnmappedPfns,

    /// <summary>PV tail: one online vCPU's context, extended context and xsave record (§6.1, §6.3).</summary>
    PvVcpu,

    /// <summary>PV tail: the shared-info page (§6.4).</summary>
    PvSharedInfo,

    /// <summary>HVM tail: the three magic pfns (§6.5).</summary>
    HvmMagicPfns,

    /// <summary>HVM tail: the HVM context blob (§6.5); read it with the blob methods.</summary>
    HvmContext,

    /// <summary>HVM tail: the device-model record (§6.6); read it with the blob methods.</summary>
    DeviceModelRecord,

    /// <summary>The checkpoint's tail is complete. The reader stops here until told to read another checkpoint.</summary>
    EndOfCheckpoint,
}

/// <summary>The three device-model record signatures (legacy-stream.md §6.6).</summary>
internal enum LegacyDeviceModelSignature
{
    None,

    /// <summary><c>QemuDeviceModelRecord</c>: raw QEMU state until end of stream (xend, libxl 4.0).</summary>
    QemuDeviceModelRecord,

    /// <summary><c>DeviceModelRecord0002</c>: <c>u32</c> length then the state (libxl ≥ 4.1).</summary>
    DeviceModelRecord0002,

    /// <summary><c>RemusDeviceModelState</c>: same layout as DeviceModelRecord0002 (xend-era Remus).</summary>
    RemusDeviceModelState,
}

/// <summary>TSC_INFO (−7) payload, packed on the wire (legacy-stream.md §5.5.3).</summary>
internal readonly record struct LegacyTscInfo(uint Mode, ulong ElapsedNsec, uint GtscKhz, uint Incarnation);

/// <summary>What a TMEM (−5) or TMEM_EXTRA (−6) chunk contained, found by parsing it (legacy-stream.md §5.5.5).</summary>
internal readonly record struct LegacyTmemSummary(uint Version, uint MaxPools, uint ClientFlags, int Pools, long Pages, long Entries, long Length);

/// <summary>Generation of the sender as far as the stream shows it.</summary>
internal enum LegacySenderGeneration
{
    /// <summary>Nothing seen yet that tells.</summary>
    Unknown,

    /// <summary>
    /// One checkpoint without LAST_CHECKPOINT: written as Xen before 4.1 did (<c>legacy-4.0</c>), or a checkpointed
    /// stream cut after its first checkpoint (the stream cannot tell; see the minimum sender version).
    /// </summary>
    Legacy40,

    /// <summary>LAST_CHECKPOINT seen: Xen 4.1–4.5 (<c>legacy-4.1</c>).</summary>
    Legacy41,

    /// <summary>Several checkpoints without LAST_CHECKPOINT: a checkpointed (Remus) sender.</summary>
    Checkpointed,
}
