using System.Buffers;
using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

/// <summary>The sender generation a <see cref="LegacyStreamWriter"/> imitates (legacy-stream.md §10.1).</summary>
internal enum LegacyWriterGeneration
{
    /// <summary>Before Xen commit 00a4b65f85: never writes LAST_CHECKPOINT (−9).</summary>
    Legacy40,

    /// <summary>Xen 4.1–4.5: writes LAST_CHECKPOINT once, right before the end-of-body 0, on non-checkpointed saves.</summary>
    Legacy41,
}

/// <summary>How a <see cref="LegacyStreamWriter"/> writes.</summary>
internal sealed record LegacyWriterOptions
{
    public LegacyWriterOptions(int width, GuestType guest)
    {
        if (width is not (4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "toolstack word width must be 4 or 8 octets");
        }

        Width = width;
        Guest = guest;
    }

    /// <summary>Octets in the saving toolstack's <c>unsigned long</c>.</summary>
    public int Width { get; }

    public GuestType Guest { get; }

    public LegacyWriterGeneration Generation { get; init; } = LegacyWriterGeneration.Legacy41;

    /// <summary>A Remus stream (§7.2): no LAST_CHECKPOINT, body+tail repeated, no end marker.</summary>
    public bool Checkpointed { get; init; }

    /// <summary>Compressed checkpoints (§5.6): ENABLE_COMPRESSION in checkpoint 1, format B from checkpoint 2. Needs <see cref="Checkpointed"/>.</summary>
    public bool Compress { get; init; }

    /// <summary>Pages the sender keeps to delta-encode against (Xen: 8192).</summary>
    public int CompressionCachePages { get; init; } = 8192;

    /// <summary>
    /// Also delta-encode against pages sent in the (uncompressed) first checkpoint. Xen's sender does not: its cache
    /// only holds pages of compressed checkpoints, so checkpoint 2 carries full pages.
    /// </summary>
    public bool CacheFirstCheckpoint { get; init; }

    /// <summary>Compressed octets staged before a COMPRESSED_DATA chunk is emitted mid-checkpoint.</summary>
    public int CompressionStagingLength { get; init; } = 4 << 20;
}

/// <summary>
/// Writes a legacy libxc image as a given sender generation would (legacy-stream.md §7): header, then per
/// checkpoint page batches (≤ 1024 entries), special chunks, end of body, and the PV or HVM tail, optionally
/// checkpointed and compressed. Page batches come from caller spans; nothing is allocated per page.
/// </summary>
internal sealed class LegacyStreamWriter : IDisposable
{
    private readonly OutputBuffer _out;
    private readonly LegacyWriterOptions _options;
    private readonly int _w;
    private readonly uint[] _pendingEntries = new uint[LegacyChunk.MaxBatchSize];
    private byte[] _pendingPages = [];
    private int _pendingCount;
    private int _pendingData;
    private Phase _phase = Phase.Header;
    private int _guestWidth = 8;
    private bool _extv;
    private uint _xcnt;
    private int _vcpusInTail;

    // compression (format B)
    private byte[] _staging = [];
    private int _stagingUsed;
    private readonly byte[] _cache = [];
    private readonly uint[] _cachePfn = [];
    private readonly Dictionary<uint, int>? _cacheSlots;
    private int _cacheNext;

    public LegacyStreamWriter(OutputBuffer output, LegacyWriterOptions options)
    {
        _out = output ?? throw new ArgumentNullException(nameof(output));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.Compress && !options.Checkpointed)
        {
            throw new ArgumentException("compression applies to checkpointed streams only", nameof(options));
        }

        _w = options.Width;
        if (options.Compress)
        {
            _staging = ArrayPool<byte>.Shared.Rent(options.CompressionStagingLength + PageDeltaCodec.MaxEncoderOutput);
            _cache = new byte[(long)options.CompressionCachePages * 4096];
            _cachePfn = new uint[options.CompressionCachePages];
            _cacheSlots = new Dictionary<uint, int>(options.CompressionCachePages);
        }
    }

    private enum Phase
    {
        Header,
        Body,
        PvTail,
        HvmTail,
        DeviceModel,
        CheckpointDone,
        Done,
    }

    /// <summary>1-based number of the checkpoint being written.</summary>
    public int Checkpoint { get; private set; } = 1;

    private bool FormatB => _options.Compress && Checkpoint > 1;

    public long Position => _out.Position;

    // ---- header (§4) ----------------------------------------------------------------------------

    /// <summary>HVM header: just <c>p2m_size</c>.</summary>
    public void WriteHvmHeader(ulong p2mSize)
    {
        Expect(Phase.Header);
        if (_options.Guest != GuestType.Hvm)
        {
            throw new InvalidOperationException("PV streams need WritePvHeader");
        }

        WriteULong(p2mSize);
        _phase = Phase.Body;
    }

    /// <summary>
    /// PV header: <c>p2m_size</c>, the extended-info block (<c>vcpu</c> = vCPU 0's context, whose length 0xAF0 or
    /// 0x1430 selects the guest width; <c>extv</c>; <c>xcnt</c> when non-zero) and the p2m frame list.
    /// </summary>
    public void WritePvHeader(ulong p2mSize, ReadOnlySpan<byte> vcpu0Context, bool extendedContext, uint xsaveRecordSize, ReadOnlySpan<ulong> p2mFrames)
    {
        Expect(Phase.Header);
        if (_options.Guest != GuestType.Pv)
        {
            throw new InvalidOperationException("HVM streams need WriteHvmHeader");
        }

        if (vcpu0Context.Length is not (LegacyStreamReader.VcpuContextSize32 or LegacyStreamReader.VcpuContextSize64))
        {
            throw new ArgumentException("vCPU context must be 0xAF0 or 0x1430 octets", nameof(vcpu0Context));
        }

        _guestWidth = vcpu0Context.Length == LegacyStreamReader.VcpuContextSize32 ? 4 : 8;
        var fpp = 4096UL / (ulong)_guestWidth;
        if ((ulong)p2mFrames.Length != (p2mSize + fpp - 1) / fpp)
        {
            throw new ArgumentException($"p2m frame list needs {(p2mSize + fpp - 1) / fpp} entries", nameof(p2mFrames));
        }

        _extv = extendedContext;
        _xcnt = xsaveRecordSize;
        WriteULong(p2mSize);
        WriteULong(_w == 8 ? ulong.MaxValue : uint.MaxValue);
        var total = 8 + vcpu0Context.Length + (extendedContext ? 8 : 0) + (xsaveRecordSize != 0 ? 12 : 0);
        _out.WriteUInt32LittleEndian((uint)total);
        _out.WriteUInt32LittleEndian(LegacyStreamReader.SignatureVcpu);
        _out.WriteUInt32LittleEndian((uint)vcpu0Context.Length);
        _out.Write(vcpu0Context);
        if (extendedContext)
        {
            _out.WriteUInt32LittleEndian(LegacyStreamReader.SignatureExtv);
            _out.WriteUInt32LittleEndian(0);
        }

        if (xsaveRecordSize != 0)
        {
            _out.WriteUInt32LittleEndian(LegacyStreamReader.SignatureXcnt);
            _out.WriteUInt32LittleEndian(4);
            _out.WriteUInt32LittleEndian(xsaveRecordSize);
        }

        foreach (var f in p2mFrames)
        {
            WriteULong(f);
        }

        _phase = Phase.Body;
    }

    // ---- page batches (§5.2) --------------------------------------------------------------------

    /// <summary>Queues one page; the batch is written when it holds 1024 entries or before any other chunk.</summary>
    public void AddPage(uint pfn, LegacyPageType type, ReadOnlySpan<byte> data)
    {
        Expect(Phase.Body);
        var entry = LegacyPfnEntry.Make(pfn, type);
        var hasData = LegacyPfnEntry.HasData(entry);
        if (hasData != (data.Length == 4096) || (!hasData && !data.IsEmpty))
        {
            throw new ArgumentException($"{LegacyPfnEntry.Name(type)} needs {(hasData ? 4096 : 0)} octets of data", nameof(data));
        }

        if (_pendingPages.Length == 0)
        {
            _pendingPages = ArrayPool<byte>.Shared.Rent(LegacyChunk.MaxBatchSize * 4096);
        }

        _pendingEntries[_pendingCount++] = entry;
        if (hasData)
        {
            data.CopyTo(_pendingPages.AsSpan(_pendingData * 4096));
            _pendingData++;
        }

        if (_pendingCount == LegacyChunk.MaxBatchSize)
        {
            FlushBatch();
        }
    }

    /// <summary>Queues an XTAB filler entry (a page the sender could not map; no pfn, no data).</summary>
    public void AddFiller()
    {
        Expect(Phase.Body);
        if (_pendingPages.Length == 0)
        {
            _pendingPages = ArrayPool<byte>.Shared.Rent(LegacyChunk.MaxBatchSize * 4096);
        }

        _pendingEntries[_pendingCount++] = LegacyPfnEntry.Filler;
        if (_pendingCount == LegacyChunk.MaxBatchSize)
        {
            FlushBatch();
        }
    }

    /// <summary>Writes the queued pages as one batch.</summary>
    public void FlushBatch()
    {
        if (_pendingCount > 0)
        {
            var count = _pendingCount;
            var data = _pendingData;
            _pendingCount = 0;
            _pendingData = 0;
            WriteBatch(_pendingEntries.AsSpan(0, count), _pendingPages.AsSpan(0, data * 4096));
        }
    }

    /// <summary>
    /// Writes one batch straight from caller memory: <paramref name="entries"/> (1…1024 raw entries) and
    /// <paramref name="pages"/>, 4096 octets per data-carrying entry in entry order.
    /// </summary>
    public void WritePageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        Expect(Phase.Body);
        FlushBatch();
        WriteBatch(entries, pages);
    }

    private void WriteBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        if (entries.Length is < 1 or > LegacyChunk.MaxBatchSize)
        {
            throw new ArgumentException("a batch holds 1…1024 entries", nameof(entries));
        }

        var dataPages = 0;
        foreach (var e in entries)
        {
            if (LegacyPfnEntry.HasData(e))
            {
                dataPages++;
            }
        }

        if (pages.Length != dataPages * 4096)
        {
            throw new ArgumentException($"batch needs {dataPages} pages of data", nameof(pages));
        }

        _out.WriteInt32LittleEndian(entries.Length);
        var span = _out.GetSpan(entries.Length * _w);
        for (var i = 0; i < entries.Length; i++)
        {
            if (_w == 8)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(span[(i * 8)..], entries[i]);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(span[(i * 4)..], entries[i]);
            }
        }

        _out.Advance(entries.Length * _w);
        if (!FormatB)
        {
            _out.Write(pages);
            if (_options.Compress && _options.CacheFirstCheckpoint)
            {
                RememberPages(entries, pages);
            }

            return;
        }

        // Format B: data go to the staging area as page encodings (§5.6).
        var d = 0;
        foreach (var e in entries)
        {
            if (!LegacyPfnEntry.HasData(e))
            {
                continue;
            }

            var page = pages.Slice(d++ * 4096, 4096);
            var pfn = LegacyPfnEntry.Pfn(e);
            var table = LegacyPfnEntry.IsPageTable(LegacyPfnEntry.Type(e));
            ReadOnlySpan<byte> previous = default;
            if (!table && _cacheSlots!.TryGetValue(pfn, out var slot))
            {
                previous = _cache.AsSpan(slot * 4096, 4096);
            }

            if (_staging.Length - _stagingUsed < PageDeltaCodec.MaxEncoderOutput)
            {
                // The batch's entries are already written, so its pages may follow in this chunk.
                FlushCompressed();
            }

            _stagingUsed += PageDeltaCodec.Encode(previous, page, _staging.AsSpan(_stagingUsed));
            if (table)
            {
                Forget(pfn);
            }
            else
            {
                Remember(pfn, page);
            }
        }

        if (_stagingUsed >= _options.CompressionStagingLength)
        {
            FlushCompressed();
        }
    }

    private void RememberPages(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        var d = 0;
        foreach (var e in entries)
        {
            if (LegacyPfnEntry.HasData(e))
            {
                var pfn = LegacyPfnEntry.Pfn(e);
                if (LegacyPfnEntry.IsPageTable(LegacyPfnEntry.Type(e)))
                {
                    Forget(pfn);
                }
                else
                {
                    Remember(pfn, pages.Slice(d * 4096, 4096));
                }

                d++;
            }
        }
    }

    private void Remember(uint pfn, ReadOnlySpan<byte> page)
    {
        if (!_cacheSlots!.TryGetValue(pfn, out var slot))
        {
            slot = _cacheNext;
            _cacheNext = (_cacheNext + 1) % _cachePfn.Length;
            var old = _cachePfn[slot];
            if (old != uint.MaxValue && _cacheSlots.TryGetValue(old, out var oldSlot) && oldSlot == slot)
            {
                _cacheSlots.Remove(old);
            }

            _cachePfn[slot] = pfn;
            _cacheSlots[pfn] = slot;
        }

        page.CopyTo(_cache.AsSpan(slot * 4096, 4096));
    }

    private void Forget(uint pfn)
    {
        if (_cacheSlots!.Remove(pfn, out var slot))
        {
            _cachePfn[slot] = uint.MaxValue;
        }
    }

    private void FlushCompressed()
    {
        if (_stagingUsed == 0)
        {
            return;
        }

        _out.WriteInt32LittleEndian((int)LegacyChunkId.CompressedData);
        WriteULong((ulong)_stagingUsed);
        _out.Write(_staging.AsSpan(0, _stagingUsed));
        _stagingUsed = 0;
    }

    /// <summary>Ends the current run of batches: queued pages and staged compressed data are written.</summary>
    private void BeforeSpecial()
    {
        Expect(Phase.Body);
        FlushBatch();
        FlushCompressed();
    }

    // ---- special chunks (§5.4, §5.5) ------------------------------------------------------------

    /// <summary>VCPU_INFO (−2): max_vcpu_id and ⌊max/64⌋ + 1 bitmap words.</summary>
    public void WriteVcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap)
    {
        BeforeSpecial();
        if (onlineMap.Length != (maxVcpuId / 64) + 1)
        {
            throw new ArgumentException("bitmap needs ⌊max/64⌋ + 1 words", nameof(onlineMap));
        }

        _out.WriteInt32LittleEndian((int)LegacyChunkId.VcpuInfo);
        _out.WriteInt32LittleEndian(maxVcpuId);
        foreach (var word in onlineMap)
        {
            _out.WriteUInt64LittleEndian(word);
        }

        _vcpusInTail = 0;
        foreach (var word in onlineMap)
        {
            _vcpusInTail += System.Numerics.BitOperations.PopCount(word);
        }
    }

    /// <summary>An HVM parameter chunk (−3, −4, −8, −10, −11, −14…−17, −19, −20): u32 pad 0, u64 value.</summary>
    public void WriteHvmParam(LegacyChunkId id, ulong value)
    {
        BeforeSpecial();
        if (!LegacyChunk.IsHvmParam(id))
        {
            throw new ArgumentException($"{id} is not an HVM parameter chunk", nameof(id));
        }

        _out.WriteInt32LittleEndian((int)id);
        _out.WriteUInt32LittleEndian(0);
        _out.WriteUInt64LittleEndian(value);
    }

    /// <summary>TSC_INFO (−7), packed.</summary>
    public void WriteTscInfo(LegacyTscInfo tsc)
    {
        BeforeSpecial();
        _out.WriteInt32LittleEndian((int)LegacyChunkId.TscInfo);
        _out.WriteUInt32LittleEndian(tsc.Mode);
        _out.WriteUInt64LittleEndian(tsc.ElapsedNsec);
        _out.WriteUInt32LittleEndian(tsc.GtscKhz);
        _out.WriteUInt32LittleEndian(tsc.Incarnation);
    }

    /// <summary>TOOLSTACK (−18): u32 length and the blob.</summary>
    public void WriteToolstack(ReadOnlySpan<byte> blob)
    {
        BeforeSpecial();
        _out.WriteInt32LittleEndian((int)LegacyChunkId.Toolstack);
        _out.WriteUInt32LittleEndian((uint)blob.Length);
        _out.Write(blob);
    }

    /// <summary>ENABLE_VERIFY_MODE (−1): a debug save's second pass over all pages follows.</summary>
    public void WriteEnableVerifyMode()
    {
        BeforeSpecial();
        _out.WriteInt32LittleEndian((int)LegacyChunkId.EnableVerifyMode);
    }

    /// <summary>Any chunk id followed by a payload written verbatim (TMEM bodies, deliberately bad streams).</summary>
    public void WriteRawChunk(int id, ReadOnlySpan<byte> payload)
    {
        BeforeSpecial();
        _out.WriteInt32LittleEndian(id);
        _out.Write(payload);
    }

    /// <summary>
    /// Ends the body: LAST_CHECKPOINT when this generation writes it (legacy-4.1, not checkpointed; or the
    /// <paramref name="lastCheckpoint"/> of a checkpointed stream that stops, which a 4.1+ receiver commits at once, §9.3),
    /// ENABLE_COMPRESSION in a compressed stream's first checkpoint, then the end-of-body 0 (§7.1 items 12–14).
    /// </summary>
    public void EndBody(bool lastCheckpoint = false)
    {
        BeforeSpecial();
        if (_options.Generation == LegacyWriterGeneration.Legacy41 && (!_options.Checkpointed || lastCheckpoint))
        {
            _out.WriteInt32LittleEndian((int)LegacyChunkId.LastCheckpoint);
        }

        if (_options.Compress && Checkpoint == 1)
        {
            _out.WriteInt32LittleEndian((int)LegacyChunkId.EnableCompression);
        }

        _out.WriteInt32LittleEndian(0);
        _phase = _options.Guest == GuestType.Pv ? Phase.PvTail : Phase.HvmTail;
    }

    // ---- tails (§6) -----------------------------------------------------------------------------

    /// <summary>
    /// PV tail: the unmapped pfns, one record per online vCPU (in VCPU_INFO order; vCPU 0 only without VCPU_INFO),
    /// each <c>context</c> · [128-octet <c>extended</c> if <c>extv</c>] · [xsave record of <c>xcnt</c> octets], then
    /// the shared-info page. Use <see cref="MakeXsaveRecord"/> for xsave records.
    /// </summary>
    public void WritePvTail(ReadOnlySpan<ulong> unmapped, ReadOnlySpan<byte> vcpuRecords, ReadOnlySpan<byte> sharedInfo)
    {
        Expect(Phase.PvTail);
        var record = (_guestWidth == 4 ? LegacyStreamReader.VcpuContextSize32 : LegacyStreamReader.VcpuContextSize64)
            + (_extv ? LegacyStreamReader.ExtendedContextSize : 0) + (int)_xcnt;
        var vcpus = Math.Max(_vcpusInTail, 1);
        if (vcpuRecords.Length != vcpus * record)
        {
            throw new ArgumentException($"{vcpus} vCPU records of {record} octets expected", nameof(vcpuRecords));
        }

        if (sharedInfo.Length != 4096)
        {
            throw new ArgumentException("shared info is one page", nameof(sharedInfo));
        }

        _out.WriteUInt32LittleEndian((uint)unmapped.Length);
        foreach (var pfn in unmapped)
        {
            WriteULong(pfn);
        }

        _out.Write(vcpuRecords);
        _out.Write(sharedInfo);
        _phase = Phase.CheckpointDone;
    }

    /// <summary>An xsave record of <c>xcnt</c> = 16 + S octets: mask, S, then S octets (xcr0, xcr0_accum, area).</summary>
    public static byte[] MakeXsaveRecord(ulong mask, ReadOnlySpan<byte> state)
    {
        var r = new byte[16 + state.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(r, mask);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(8), (ulong)state.Length);
        state.CopyTo(r.AsSpan(16));
        return r;
    }

    /// <summary>HVM tail without the device-model record: three magic pfns, u32 length, HVM context.</summary>
    public void WriteHvmTail(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn, ReadOnlySpan<byte> context)
    {
        Expect(Phase.HvmTail);
        _out.WriteUInt64LittleEndian(ioreqPfn);
        _out.WriteUInt64LittleEndian(bufIoreqPfn);
        _out.WriteUInt64LittleEndian(storePfn);
        _out.WriteUInt32LittleEndian((uint)context.Length);
        _out.Write(context);
        _phase = Phase.DeviceModel;
    }

    /// <summary>The device-model record the toolstack appends after an HVM tail (§6.6).</summary>
    public void WriteDeviceModelRecord(LegacyDeviceModelSignature signature, ReadOnlySpan<byte> data)
    {
        Expect(Phase.DeviceModel);
        _out.Write(LegacyStreamReader.SignatureOf(signature));
        if (signature != LegacyDeviceModelSignature.QemuDeviceModelRecord)
        {
            _out.WriteUInt32LittleEndian((uint)data.Length);
        }

        _out.Write(data);
        _phase = signature == LegacyDeviceModelSignature.QemuDeviceModelRecord ? Phase.Done : Phase.CheckpointDone;
    }

    /// <summary>Checkpointed streams: the next checkpoint's body follows (§7.2).</summary>
    public void BeginNextCheckpoint()
    {
        if (!_options.Checkpointed)
        {
            throw new InvalidOperationException("only checkpointed streams have more than one checkpoint");
        }

        if (_phase is not (Phase.CheckpointDone or Phase.DeviceModel))
        {
            throw new InvalidOperationException("the current checkpoint's tail is not written yet");
        }

        Checkpoint++;
        _phase = Phase.Body;
    }

    public void Flush() => _out.Flush();

    public void Dispose()
    {
        if (_pendingPages.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_pendingPages);
            _pendingPages = [];
        }

        if (_staging.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_staging);
            _staging = [];
        }
    }

    private void WriteULong(ulong value)
    {
        if (_w == 8)
        {
            _out.WriteUInt64LittleEndian(value);
        }
        else
        {
            _out.WriteUInt32LittleEndian(checked((uint)value));
        }
    }

    private void Expect(Phase phase)
    {
        if (_phase != phase)
        {
            throw new InvalidOperationException($"cannot write this now: the writer is at {_phase}, not {phase}");
        }
    }
}
