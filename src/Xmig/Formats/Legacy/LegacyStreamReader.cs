using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

/// <summary>
/// Pull reader for a legacy libxc image (legacy-stream.md §4–§6): header, then per checkpoint a body of chunks
/// and a PV or HVM tail (the HVM tail ends with the device-model record). <see cref="Read"/> returns one item at
/// a time; the item's data are exposed by properties and spans that stay valid until the next call.
/// </summary>
/// <remarks>
/// <para>The reader never decides whether another checkpoint follows a tail (§10, §12 item 2): after
/// <see cref="LegacyItemKind.EndOfCheckpoint"/> it waits for <see cref="BeginNextCheckpoint"/>; that decision is
/// made on the restore side (Restore/Legacy/LegacyCheckpointDecision.cs). Octets after the tail stay unconsumed until then
/// (<see cref="PeekFollowing"/> looks at them).</para>
/// <para>Every truncation or bad value raises <see cref="StreamFormatException"/> naming the chunk (or header,
/// or tail) and its absolute offset. Blobs (TOOLSTACK, COMPRESSED_DATA, HVM context, device-model record) are
/// left in the input until read with <see cref="ReadBlob(Span{byte})"/>, <see cref="ReadBlobContiguous"/> or
/// <see cref="CopyBlobTo"/>; an unread remainder is skipped by the next <see cref="Read"/>.</para>
/// </remarks>
internal sealed partial class LegacyStreamReader
{
    private readonly InputBuffer _input;
    private readonly LegacyStreamOptions _options;
    private readonly int _w;
    private readonly uint[] _entries = new uint[LegacyChunk.MaxBatchSize];
    private readonly ulong[] _ulongs = new ulong[LegacyChunk.MaxBatchSize];
    private readonly ulong[] _vcpuMap = new ulong[VcpuMapWords];
    private State _state = State.P2mSize;
    private long _blobRemaining;
    private bool _blobToEnd;
    private long _blobConsumed;
    private string _blobWhat = "";
    private ulong[] _p2mFrames = [];
    private int _p2mFrameCount;
    private int _entryCount;
    private int _deferred;

    /// <summary>Highest vCPU id plus one that VCPU_INFO may describe (<c>XC_SR_MAX_VCPUS</c> 4096).</summary>
    public const int MaxVcpus = 4096;
    private const int VcpuMapWords = MaxVcpus / 64;

    public LegacyStreamReader(InputBuffer input, LegacyStreamOptions options)
    {
        _input = input ?? throw new ArgumentNullException(nameof(input));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _w = options.Width;
        _vcpuMap[0] = 1;
        Guest = options.Guest;
    }

    private enum State
    {
        P2mSize,
        ExtendedInfoMarker,
        ExtendedInfoBlocks,
        P2mFrameList,
        Body,
        PvUnmapped,
        PvVcpus,
        PvSharedInfo,
        HvmMagic,
        HvmContext,
        DeviceModel,
        TailDone,
        AfterTail,
        Failed,
    }

    public InputBuffer Input => _input;

    public LegacyStreamOptions Options => _options;

    /// <summary>Octets in a toolstack <c>ulong</c> (4 or 8).</summary>
    public int Width => _w;

    public GuestType Guest { get; }

    // ---- where we are -------------------------------------------------------------------------

    public LegacyItemKind Kind { get; private set; }

    /// <summary>Absolute offset of the current item's first octet (the chunk id, for chunks).</summary>
    public long ItemOffset { get; private set; }

    /// <summary>Running index of the current body chunk in the stream (0-based, all checkpoints).</summary>
    public long ChunkIndex { get; private set; } = -1;

    /// <summary>Chunks read so far (all checkpoints, including each checkpoint's end-of-body 0).</summary>
    public long ChunkCount => ChunkIndex + 1;

    /// <summary>1-based number of the checkpoint being read.</summary>
    public int Checkpoint { get; private set; } = 1;

    /// <summary>True once the first checkpoint's tail is complete.</summary>
    public bool FirstCheckpointComplete { get; private set; }

    // ---- header -------------------------------------------------------------------------------

    public ulong P2mSize { get; private set; }

    /// <summary>True when the PV extended-info block was present.</summary>
    public bool HasExtendedInfo { get; private set; }

    /// <summary>Current extended-info block: signature (4 ASCII octets as a little-endian u32) and data.</summary>
    public uint ExtendedInfoSignature { get; private set; }

    public ReadOnlySpan<byte> ExtendedInfoData => _extData;

    private byte[] _extData = [];

    /// <summary>PV guest word width GW (4 or 8) from the <c>vcpu</c> block; 8 when no such block was present.</summary>
    public int GuestWidth { get; private set; }

    /// <summary>PV: size of a vCPU context (0xAF0 or 0x1430).</summary>
    public int VcpuContextSize => GuestWidth == 4 ? VcpuContextSize32 : VcpuContextSize64;

    public const int VcpuContextSize32 = 0xAF0;
    public const int VcpuContextSize64 = 0x1430;
    public const int ExtendedContextSize = 128;

    /// <summary>PV: the <c>vcpu</c> block was present (its length fixed <see cref="GuestWidth"/>).</summary>
    public bool HasVcpuBlock { get; private set; }

    /// <summary>PV: vCPU 0's context from the <c>vcpu</c> block (empty if absent).</summary>
    public ReadOnlySpan<byte> VcpuBlock => _vcpuBlock;

    private byte[] _vcpuBlock = [];

    /// <summary>PV: <c>extv</c> seen: every tail vCPU record carries a 128-octet extended context.</summary>
    public bool HasExtendedVcpuContext { get; private set; }

    /// <summary>PV: <c>xcnt</c>, the per-vCPU xsave record size (0 = none).</summary>
    public uint XsaveRecordSize { get; private set; }

    /// <summary>PV: the p2m frame list (pfns of the guest's own p2m frames).</summary>
    public ReadOnlySpan<ulong> P2mFrames => _p2mFrames.AsSpan(0, _p2mFrameCount);

    // ---- body ---------------------------------------------------------------------------------

    /// <summary>Current chunk id (for <see cref="LegacyItemKind.Chunk"/>).</summary>
    public LegacyChunkId ChunkId { get; private set; }

    /// <summary>Current batch's raw 32-bit entries (type nibble and pfn; bits 32–63 of 64-bit entries are zero).</summary>
    public ReadOnlySpan<uint> PageEntries => _entries.AsSpan(0, _entryCount);

    /// <summary>Current batch's page data (format A): 4096 octets per data-carrying entry, in entry order.</summary>
    public ReadOnlySpan<byte> PageData => _pageDataLength == 0 ? default : _input.Peek(_pageDataLength);

    private int _pageDataLength;

    /// <summary>Number of data-carrying entries in the current batch.</summary>
    public int DataPageCount { get; private set; }

    /// <summary>True for a format-B batch (compressed checkpoint ≥ 2): entries only, data in COMPRESSED_DATA.</summary>
    public bool IsCompressedBatch { get; private set; }

    /// <summary>True in checkpoints read in format B (ENABLE_COMPRESSION was in checkpoint 1, §5.6).</summary>
    public bool CompressedFormat { get; private set; }

    /// <summary>ENABLE_COMPRESSION (−13) was seen in checkpoint 1.</summary>
    public bool CompressionEnabled { get; private set; }

    /// <summary>ENABLE_VERIFY_MODE (−1) was seen (sticky, §12 item 13).</summary>
    public bool VerifyMode { get; private set; }

    /// <summary>LAST_CHECKPOINT (−9) was seen in the current checkpoint.</summary>
    public bool LastCheckpointInThisCheckpoint { get; private set; }

    /// <summary>LAST_CHECKPOINT (−9) was seen anywhere so far.</summary>
    public bool LastCheckpointSeen { get; private set; }

    /// <summary>VCPU_INFO: highest vCPU id (the latest chunk; 0 before any).</summary>
    public int MaxVcpuId { get; private set; }

    /// <summary>VCPU_INFO: online bitmap words (⌊max/64⌋ + 1).</summary>
    public ReadOnlySpan<ulong> VcpuOnlineMap => _vcpuMap.AsSpan(0, (MaxVcpuId / 64) + 1);

    /// <summary>HVM parameter chunk: the u64 value.</summary>
    public ulong HvmParamValue { get; private set; }

    public LegacyTscInfo TscInfo { get; private set; }

    public LegacyTmemSummary Tmem { get; private set; }

    /// <summary>Current blob's total length (TOOLSTACK, COMPRESSED_DATA, HVM context, device-model record); −1 = until end of stream.</summary>
    public long BlobLength { get; private set; }

    // ---- tail ---------------------------------------------------------------------------------

    /// <summary>PV tail: total number of unmapped pfns.</summary>
    public uint UnmappedCount { get; private set; }

    private uint _unmappedLeft;

    /// <summary>PV tail: the current slice of unmapped pfns.</summary>
    public ReadOnlySpan<ulong> UnmappedPfns => _ulongs.AsSpan(0, _unmappedSlice);

    private int _unmappedSlice;

    /// <summary>PV tail: the current vCPU's id.</summary>
    public int VcpuId { get; private set; }

    private int _vcpuCursor;

    /// <summary>PV tail: current vCPU's context (0xAF0 or 0x1430 octets).</summary>
    public ReadOnlySpan<byte> VcpuContext => _input.Peek(_vcpuRecordLength)[.._vcpuBasicLength];

    /// <summary>PV tail: current vCPU's 128-octet extended context (empty without <c>extv</c>).</summary>
    public ReadOnlySpan<byte> VcpuExtendedContext => HasExtendedVcpuContext
        ? _input.Peek(_vcpuRecordLength).Slice(_vcpuBasicLength, ExtendedContextSize)
        : default;

    /// <summary>PV tail: current vCPU's whole xsave record (mask, size, then S octets), empty without <c>xcnt</c>.</summary>
    public ReadOnlySpan<byte> VcpuXsaveRecord => XsaveRecordSize == 0
        ? default
        : _input.Peek(_vcpuRecordLength)[(_vcpuRecordLength - (int)XsaveRecordSize)..];

    private int _vcpuRecordLength;
    private int _vcpuBasicLength;

    /// <summary>PV tail: the shared-info page.</summary>
    public ReadOnlySpan<byte> SharedInfo => _input.Peek(4096);

    public ulong HvmIoreqPfn { get; private set; }

    public ulong HvmBufIoreqPfn { get; private set; }

    public ulong HvmStorePfn { get; private set; }

    /// <summary>Device-model record signature (of the current record; None before any).</summary>
    public LegacyDeviceModelSignature DeviceModelSignature { get; private set; }

    // ---- evidence -----------------------------------------------------------------------------

    /// <summary>Earliest Xen release whose sender writes what has been seen so far (e.g. "4.2"), or null.</summary>
    public string? MinimumSenderVersion { get; private set; }

    /// <summary>What set <see cref="MinimumSenderVersion"/>.</summary>
    public string? MinimumSenderEvidence { get; private set; }

    /// <summary>Sender generation as far as the stream shows it (read after the tails of interest).</summary>
    public LegacySenderGeneration Generation => LastCheckpointSeen
        ? LegacySenderGeneration.Legacy41
        : Checkpoint > 1
            ? LegacySenderGeneration.Checkpointed
            : FirstCheckpointComplete ? LegacySenderGeneration.Legacy40 : LegacySenderGeneration.Unknown;

    // ---- driving --------------------------------------------------------------------------------

    /// <summary>Reads the next item. After <see cref="LegacyItemKind.EndOfCheckpoint"/>, call <see cref="BeginNextCheckpoint"/> first.</summary>
    public LegacyItemKind Read()
    {
        if (_state == State.Failed)
        {
            throw new InvalidOperationException("the reader already reported a stream error");
        }

        if (_state == State.AfterTail)
        {
            throw new InvalidOperationException("a checkpoint is complete: decide whether another follows (BeginNextCheckpoint) before reading on");
        }

        try
        {
            if (_deferred > 0)
            {
                _input.Advance(_deferred);
                _deferred = 0;
            }

            FinishPending();
            _pageDataLength = 0;
            ItemOffset = _input.Position;
            Kind = _state switch
            {
                State.P2mSize => ReadP2mSize(),
                State.ExtendedInfoMarker => ReadExtendedInfoMarker(),
                State.ExtendedInfoBlocks => ReadExtendedInfoBlock(),
                State.P2mFrameList => ReadP2mFrameList(),
                State.Body => ReadChunk(),
                State.PvUnmapped => ReadUnmapped(),
                State.PvVcpus => ReadPvVcpu(),
                State.PvSharedInfo => ReadSharedInfo(),
                State.HvmMagic => ReadHvmMagic(),
                State.HvmContext => ReadHvmContext(),
                State.DeviceModel => ReadDeviceModel(),
                State.TailDone => EndCheckpoint(),
                _ => throw new InvalidOperationException($"unexpected reader state {_state}"),
            };
            return Kind;
        }
        catch (StreamFormatException)
        {
            _state = State.Failed;
            throw;
        }
    }

    /// <summary>
    /// Looks at up to <paramref name="count"/> octets after a complete tail without consuming them
    /// (fewer at end of stream).
    /// </summary>
    public ReadOnlySpan<byte> PeekFollowing(int count)
    {
        if (_state != State.AfterTail)
        {
            throw new InvalidOperationException("PeekFollowing is only meaningful after a complete checkpoint");
        }

        return _input.Peek(count);
    }

    /// <summary>Starts reading the next checkpoint's body (the octets after the tail).</summary>
    public void BeginNextCheckpoint()
    {
        if (_state != State.AfterTail)
        {
            throw new InvalidOperationException("BeginNextCheckpoint is only valid after a complete checkpoint");
        }

        Checkpoint++;
        CompressedFormat = CompressionEnabled;
        LastCheckpointInThisCheckpoint = false;
        _state = State.Body;
        Kind = LegacyItemKind.None;
    }

    // ---- blobs --------------------------------------------------------------------------------

    /// <summary>Octets of the current blob not yet read.</summary>
    public long BlobRemaining => _blobToEnd ? -1 : _blobRemaining;

    /// <summary>Reads the next part of the current blob into <paramref name="destination"/>; 0 when it is done.</summary>
    public int ReadBlob(Span<byte> destination)
    {
        if (_blobToEnd)
        {
            var n = _input.ReadInto(destination);
            _blobConsumed += n;
            if (_blobConsumed > _options.MaxDeviceModelLength)
            {
                throw Fail(_blobWhat, Checkpoint, ItemOffset, $"runs on past {_options.MaxDeviceModelLength} octets");
            }

            if (n < destination.Length)
            {
                _blobToEnd = false;
                _blobRemaining = 0;
            }

            return n;
        }

        var want = (int)Math.Min(destination.Length, _blobRemaining);
        if (want == 0)
        {
            return 0;
        }

        var got = _input.ReadInto(destination[..want]);
        _blobRemaining -= got;
        _blobConsumed += got;
        if (got < want)
        {
            _state = State.Failed;
            throw Truncated(_blobWhat, BlobIndex, ItemOffset, BlobLength, _blobConsumed);
        }

        return got;
    }

    /// <summary>Reads the rest of the current blob as one span (valid until the next call).</summary>
    public ReadOnlySpan<byte> ReadBlobContiguous()
    {
        if (_blobToEnd)
        {
            throw new InvalidOperationException("a blob that runs to the end of the stream cannot be read contiguously; use ReadBlob");
        }

        var n = (int)_blobRemaining;
        if (!_input.TryRead(n, out var data, out var available))
        {
            _state = State.Failed;
            throw Truncated(_blobWhat, BlobIndex, ItemOffset, BlobLength, _blobConsumed + available);
        }

        _blobRemaining = 0;
        _blobConsumed += n;
        return data;
    }

    /// <summary>Copies the rest of the current blob to <paramref name="destination"/>; returns the octets copied.</summary>
    public long CopyBlobTo(Stream destination)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            long total = 0;
            int n;
            while ((n = ReadBlob(buffer)) > 0)
            {
                destination.Write(buffer, 0, n);
                total += n;
            }

            return total;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private long BlobIndex => Kind is LegacyItemKind.Chunk ? ChunkIndex : Checkpoint;

    private void StartBlob(string what, long length)
    {
        _blobWhat = what;
        _blobConsumed = 0;
        BlobLength = length;
        if (length < 0)
        {
            _blobToEnd = true;
            _blobRemaining = 0;
        }
        else
        {
            _blobToEnd = false;
            _blobRemaining = length;
        }
    }

    private void FinishPending()
    {
        if (_blobToEnd)
        {
            Span<byte> sink = stackalloc byte[4096];
            while (ReadBlob(sink) > 0)
            {
            }
        }
        else if (_blobRemaining > 0)
        {
            var want = _blobRemaining;
            var skipped = _input.Skip(want);
            _blobRemaining = 0;
            if (skipped < want)
            {
                throw Truncated(_blobWhat, BlobIndex, ItemOffset, BlobLength, _blobConsumed + skipped);
            }
        }
    }

    // ---- helpers --------------------------------------------------------------------------------

    /// <summary>Makes <paramref name="count"/> octets available, to be consumed by the next <see cref="Read"/>.</summary>
    private void Defer(int count, string what, long index, long itemOffset)
    {
        var available = _input.Ensure(count);
        if (available < count)
        {
            throw new StreamFormatException(what, index, itemOffset,
                $"truncated: needed {count} octets at offset 0x{_input.Position:X}, only {available} left");
        }

        _deferred = count;
    }

    private ReadOnlySpan<byte> ReadExact(int count, string what, long index, long itemOffset)
    {
        if (!_input.TryRead(count, out var data, out var available))
        {
            throw new StreamFormatException(what, index, itemOffset,
                $"truncated: needed {count} octets at offset 0x{_input.Position:X}, only {available} left");
        }

        return data;
    }

    private ulong ReadULong(ReadOnlySpan<byte> span) =>
        _w == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(span) : BinaryPrimitives.ReadUInt32LittleEndian(span);

    private static StreamFormatException Fail(string what, long index, long offset, string detail) => new(what, index, offset, detail);

    private static StreamFormatException Truncated(string what, long index, long offset, long length, long got) =>
        new(what, index, offset, $"truncated: {length} octets declared, only {got} present");

    private void NoteVersion(string version, string evidence)
    {
        if (MinimumSenderVersion is null || string.CompareOrdinal(version, MinimumSenderVersion) > 0)
        {
            MinimumSenderVersion = version;
            MinimumSenderEvidence = evidence;
        }
    }

    private LegacyItemKind EndCheckpoint()
    {
        FirstCheckpointComplete = true;
        _state = State.AfterTail;
        return LegacyItemKind.EndOfCheckpoint;
    }
}
