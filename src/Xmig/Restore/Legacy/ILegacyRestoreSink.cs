using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Restore.Legacy;

/// <summary>What the legacy image header said (legacy-stream.md §4).</summary>
internal sealed record LegacyImageInfo(
    int Width,
    GuestType Guest,
    ulong P2mSize,
    int GuestWidth,
    bool HasVcpuBlock,
    bool HasExtendedVcpuContext,
    uint XsaveRecordSize,
    byte[] Vcpu0Context,
    ulong[] P2mFrames);

/// <summary>
/// Receives a legacy image checkpoint by checkpoint from <see cref="LegacyCheckpointDecision"/>, in stream order.
/// Only complete checkpoints are delivered between <see cref="BeginCheckpoint"/> and <see cref="CommitCheckpoint"/>:
/// the first checkpoint is streamed as it is read (a failure in it ends with <see cref="DiscardCheckpoint"/> and the
/// restore fails, as in Xen); later checkpoints are buffered (bounded, on disk) and replayed only once their tail
/// is complete, so a sink never sees a checkpoint that is later discarded.
/// </summary>
/// <remarks>
/// Spans are valid only during the call. Compressed checkpoints arrive already decoded: <see cref="PageBatch"/>
/// always carries full pages. To decode them the engine asks <see cref="TryReadPage"/> for the committed content of a
/// page (what this sink was last given for that pfn).
/// </remarks>
internal interface ILegacyRestoreSink
{
    /// <summary>Once, before the first checkpoint.</summary>
    void Header(LegacyImageInfo info);

    void BeginCheckpoint(int number);

    /// <summary>
    /// One page batch: raw entries (type nibble and pfn, XTAB fillers included) and 4096 octets per data-carrying
    /// entry (<see cref="LegacyPfnEntry.HasData(uint)"/>), in entry order.
    /// </summary>
    void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages);

    /// <summary>Copies the committed content of <paramref name="pfn"/>; false if this sink holds none.</summary>
    bool TryReadPage(uint pfn, Span<byte> destination);

    /// <summary>Payload-less markers: ENABLE_VERIFY_MODE, LAST_CHECKPOINT, ENABLE_COMPRESSION.</summary>
    void Marker(LegacyChunkId id);

    void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap);

    /// <summary>An HVM parameter chunk; <see cref="LegacyChunk.HvmParamIndex"/> gives the parameter number.</summary>
    void HvmParam(LegacyChunkId id, ulong value);

    void TscInfo(LegacyTscInfo tsc);

    void Toolstack(ReadOnlySpan<byte> blob);

    /// <summary>Chunk 0: the body of this checkpoint is complete; the tail follows.</summary>
    void EndOfBody();

    /// <summary>PV tail: unmapped pfns, in slices (at least one call, possibly empty).</summary>
    void UnmappedPfns(ReadOnlySpan<ulong> pfns);

    /// <summary>PV tail: one online vCPU (extended and xsave parts empty when absent).</summary>
    void PvVcpu(int vcpuId, ReadOnlySpan<byte> context, ReadOnlySpan<byte> extendedContext, ReadOnlySpan<byte> xsaveRecord);

    void SharedInfo(ReadOnlySpan<byte> page);

    void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn);

    /// <summary>HVM context blob of <paramref name="length"/> octets, read from <paramref name="data"/>.</summary>
    void HvmContext(long length, Stream data);

    /// <summary>Device-model record; <paramref name="length"/> is −1 for a QemuDeviceModelRecord that runs to end of stream.</summary>
    void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data);

    void CommitCheckpoint(int number);

    /// <summary>The streamed first checkpoint failed part-way; the restore fails.</summary>
    void DiscardCheckpoint(int number);
}

/// <summary>Content a restore cannot carry out, for example TMEM (legacy-stream.md §5.5.5).</summary>
internal sealed class LegacyUnsupportedContentException(string what, long index, long offset, string detail)
    : Exception(index >= 0 ? $"{what} #{index} at offset 0x{offset:X}: {detail}" : $"{what} at offset 0x{offset:X}: {detail}")
{
    public long Offset { get; } = offset;
}
