using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

internal sealed partial class LegacyStreamReader
{
    private ulong _ioreqServerPfn;
    private ulong _nrIoreqServerPages;

    /// <summary>Describes a chunk id that is not one, in words (used for the "Max batch size exceeded" situation).</summary>
    public static string DescribeBadChunkId(int id)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, id);
        var text = true;
        foreach (var c in b)
        {
            text &= c is >= 0x20 and <= 0x7E;
        }

        var what = $"id {id} (0x{(uint)id:X8}) is neither a page batch (1…1024), the end of a body (0) nor a special chunk (−1…−20)";
        return text ? what + $"; its octets read \"{System.Text.Encoding.ASCII.GetString(b)}\", text rather than a chunk" : what;
    }

    // legacy-stream.md §5.1
    //   +0 i32 id:  0 end of body · 1…1024 page batch · −1…−20 special chunk · else fatal
    private LegacyItemKind ReadChunk()
    {
        ChunkIndex++;
        if (!_input.TryRead(4, out var head, out var available))
        {
            throw Fail("chunk", ChunkIndex, ItemOffset, available == 0
                ? "truncated: the stream ends where a chunk id was expected"
                : $"truncated: {available} octets where a 4-octet chunk id was expected");
        }

        var id = BinaryPrimitives.ReadInt32LittleEndian(head);
        if (id > 0 && id <= LegacyChunk.MaxBatchSize)
        {
            return ReadPageBatch(id);
        }

        if (id == 0)
        {
            return ReadEndOfBody();
        }

        if (id < LegacyChunk.LowestId || id > 0)
        {
            throw Fail("chunk", ChunkIndex, ItemOffset, DescribeBadChunkId(id));
        }

        ChunkId = (LegacyChunkId)id;
        ReadSpecialChunk(ChunkId);
        return LegacyItemKind.Chunk;
    }

    // legacy-stream.md §5.2, §5.3
    //   +0      i32   n (1…1024)
    //   +4      ulong entry[n]        bits 0–27 pfn, 28–31 type; bits 32–63 (W = 8) zero
    //   +4+n·W  4096 × (entries whose type nibble < 0xD)     — format A only
    private LegacyItemKind ReadPageBatch(int count)
    {
        const string what = "PAGE_BATCH";
        var raw = ReadExact(count * _w, what, ChunkIndex, ItemOffset);
        var dataPages = 0;
        var ascending = true;
        var previousPfn = -1L;
        var hvm = !_options.IsPv;
        for (var i = 0; i < count; i++)
        {
            uint entry;
            if (_w == 8)
            {
                var wide = BinaryPrimitives.ReadUInt64LittleEndian(raw[(i * 8)..]);
                if (wide >> 32 != 0)
                {
                    throw Fail(what, ChunkIndex, ItemOffset, $"entry {i} (at 0x{ItemOffset + 4 + (i * 8):X}) 0x{wide:X16} has bits 32–63 set");
                }

                entry = (uint)wide;
            }
            else
            {
                entry = BinaryPrimitives.ReadUInt32LittleEndian(raw[(i * 4)..]);
            }

            _entries[i] = entry;
            if (entry == LegacyPfnEntry.Filler)
            {
                continue;
            }

            var type = LegacyPfnEntry.Type(entry);
            var pfn = LegacyPfnEntry.Pfn(entry);
            var at = ItemOffset + 4 + ((long)i * _w);
            if (LegacyPfnEntry.IsUndefined(type))
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"entry {i} (at 0x{at:X}) has undefined page type 0x{(byte)type:X} (bogus page type)");
            }

            if (pfn >= P2mSize)
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"entry {i} (at 0x{at:X}) pfn 0x{pfn:X} is not below p2m_size 0x{P2mSize:X}");
            }

            if (hvm && type is not (LegacyPageType.NoTab or LegacyPageType.Broken or LegacyPageType.XAlloc or LegacyPageType.XTab))
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"entry {i} (at 0x{at:X}) pfn 0x{pfn:X} has PV page type {LegacyPfnEntry.Name(type)} in an HVM stream");
            }

            if (type == LegacyPageType.XAlloc)
            {
                NoteVersion("4.2", "page type XALLOC");
            }
            else if (type == LegacyPageType.Broken)
            {
                NoteVersion("4.3", "page type BROKEN");
            }

            if (LegacyPfnEntry.HasData(entry))
            {
                dataPages++;
            }

            if (pfn <= previousPfn)
            {
                ascending = false;
            }

            previousPfn = pfn;
        }

        if (!ascending)
        {
            CheckDuplicates(count);
        }

        _entryCount = count;
        DataPageCount = dataPages;
        IsCompressedBatch = CompressedFormat;
        if (!CompressedFormat && dataPages > 0)
        {
            _pageDataLength = dataPages * 4096;
            Defer(_pageDataLength, what, ChunkIndex, ItemOffset);
        }

        return LegacyItemKind.PageBatch;
    }

    private void CheckDuplicates(int count)
    {
        Span<uint> pfns = stackalloc uint[LegacyChunk.MaxBatchSize];
        var n = 0;
        for (var i = 0; i < count; i++)
        {
            if (_entries[i] != LegacyPfnEntry.Filler)
            {
                pfns[n++] = LegacyPfnEntry.Pfn(_entries[i]);
            }
        }

        var sorted = pfns[..n];
        sorted.Sort();
        for (var i = 1; i < n; i++)
        {
            if (sorted[i] == sorted[i - 1])
            {
                throw Fail("PAGE_BATCH", ChunkIndex, ItemOffset, $"pfn 0x{sorted[i]:X} appears twice in the batch");
            }
        }
    }

    private void ReadSpecialChunk(LegacyChunkId id)
    {
        var what = LegacyChunk.Name(id);
        if (LegacyChunk.IsHvmParam(id))
        {
            ReadHvmParam(id, what);
            return;
        }

        switch (id)
        {
            case LegacyChunkId.EnableVerifyMode:
                VerifyMode = true;
                break;
            case LegacyChunkId.VcpuInfo:
                ReadVcpuInfo(what);
                break;
            case LegacyChunkId.Tmem:
                ReadTmem(what);
                break;
            case LegacyChunkId.TmemExtra:
                ReadTmemExtra(what);
                break;
            case LegacyChunkId.TscInfo:
                ReadTscInfo(what);
                break;
            case LegacyChunkId.LastCheckpoint:
                LastCheckpointInThisCheckpoint = true;
                LastCheckpointSeen = true;
                NoteVersion("4.1", "LAST_CHECKPOINT chunk");
                break;
            case LegacyChunkId.CompressedData:
                ReadCompressedData(what);
                break;
            case LegacyChunkId.EnableCompression:
                if (Checkpoint > 1)
                {
                    throw Fail(what, ChunkIndex, ItemOffset, $"in checkpoint {Checkpoint}: compression can only be enabled in the first checkpoint");
                }

                CompressionEnabled = true;
                NoteVersion("4.2", "ENABLE_COMPRESSION chunk");
                break;
            case LegacyChunkId.Toolstack:
                ReadToolstack(what);
                break;
            default:
                throw new InvalidOperationException($"unhandled chunk {id}");
        }
    }

    // legacy-stream.md §5.5.1
    //   +0 i32 max_vcpu_id (0…4095)   +4 u64 bitmap[⌊max/64⌋ + 1]
    private void ReadVcpuInfo(string what)
    {
        var max = BinaryPrimitives.ReadInt32LittleEndian(ReadExact(4, what, ChunkIndex, ItemOffset));
        if (max < 0 || max >= MaxVcpus)
        {
            throw Fail(what, ChunkIndex, ItemOffset, $"max_vcpu_id {max} is outside 0…{MaxVcpus - 1}");
        }

        var words = (max / 64) + 1;
        var data = ReadExact(words * 8, what, ChunkIndex, ItemOffset);
        for (var i = 0; i < words; i++)
        {
            _vcpuMap[i] = BinaryPrimitives.ReadUInt64LittleEndian(data[(i * 8)..]);
        }

        var lastBits = (max % 64) + 1;
        if (lastBits < 64 && (_vcpuMap[words - 1] >> lastBits) != 0)
        {
            throw Fail(what, ChunkIndex, ItemOffset, $"online bitmap names vCPUs above max_vcpu_id {max}");
        }

        if ((_vcpuMap[0] & 1) == 0)
        {
            throw Fail(what, ChunkIndex, ItemOffset, "vCPU 0 is not online");
        }

        MaxVcpuId = max;
        if (words > 1)
        {
            NoteVersion("4.2", "VCPU_INFO for more than 64 vCPUs");
        }
    }

    // legacy-stream.md §5.5.2
    //   +0 u32 pad (0)   +4 u64 value
    private void ReadHvmParam(LegacyChunkId id, string what)
    {
        if (_options.IsPv)
        {
            throw Fail(what, ChunkIndex, ItemOffset, "HVM-only chunk in a PV stream");
        }

        var data = ReadExact(12, what, ChunkIndex, ItemOffset);
        var pad = BinaryPrimitives.ReadUInt32LittleEndian(data);
        var value = BinaryPrimitives.ReadUInt64LittleEndian(data[4..]);
        if (pad != 0)
        {
            throw Fail(what, ChunkIndex, ItemOffset, $"pad 0x{pad:X8} is not zero");
        }

        switch (id)
        {
            case LegacyChunkId.HvmAcpiIoportsLocation when value > 1:
                throw Fail(what, ChunkIndex, ItemOffset, $"value {value} is neither 0 nor 1");
            case LegacyChunkId.HvmIoreqServerPfn:
                _ioreqServerPfn = value;
                break;
            case LegacyChunkId.HvmNrIoreqServerPages:
                _nrIoreqServerPages = value;
                break;
        }

        HvmParamValue = value;
        switch (id)
        {
            case LegacyChunkId.HvmConsolePfn or LegacyChunkId.HvmAcpiIoportsLocation:
                NoteVersion("4.1", what + " chunk");
                break;
            case LegacyChunkId.HvmIoreqServerPfn or LegacyChunkId.HvmNrIoreqServerPages:
                NoteVersion("4.5", what + " chunk");
                break;
            case LegacyChunkId.HvmViridian or LegacyChunkId.HvmGenerationIdAddr or LegacyChunkId.HvmPagingRingPfn
                or LegacyChunkId.HvmAccessRingPfn or LegacyChunkId.HvmSharingRingPfn:
                NoteVersion("4.2", what + " chunk");
                break;
        }
    }

    // legacy-stream.md §5.5.3 (packed)
    //   +0 u32 tsc_mode  +4 u64 elapsed_nsec  +12 u32 gtsc_khz  +16 u32 incarnation
    private void ReadTscInfo(string what)
    {
        var data = ReadExact(20, what, ChunkIndex, ItemOffset);
        var tsc = new LegacyTscInfo(
            BinaryPrimitives.ReadUInt32LittleEndian(data),
            BinaryPrimitives.ReadUInt64LittleEndian(data[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[12..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[16..]));
        if (tsc.Mode > 3)
        {
            throw Fail(what, ChunkIndex, ItemOffset, $"tsc_mode {tsc.Mode} is not 0…3");
        }

        TscInfo = tsc;
    }

    // legacy-stream.md §5.6
    //   +0 ulong len   +W len octets (page encodings)
    private void ReadCompressedData(string what)
    {
        var len = ReadULong(ReadExact(_w, what, ChunkIndex, ItemOffset));
        if (!CompressedFormat)
        {
            throw Fail(what, ChunkIndex, ItemOffset, Checkpoint == 1
                ? "compressed data in the first checkpoint (compression only applies from checkpoint 2, after ENABLE_COMPRESSION)"
                : "compressed data in a stream without ENABLE_COMPRESSION in its first checkpoint");
        }

        if (len > _options.MaxCompressedDataLength)
        {
            throw Fail(what, ChunkIndex, ItemOffset, $"length {len} exceeds {_options.MaxCompressedDataLength}");
        }

        StartBlob(what, (long)len);
    }

    // legacy-stream.md §5.5.4
    //   +0 u32 len   +4 len opaque octets
    private void ReadToolstack(string what)
    {
        var len = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, what, ChunkIndex, ItemOffset));
        if (len > _options.MaxToolstackLength)
        {
            throw Fail(what, ChunkIndex, ItemOffset, $"length {len} exceeds {_options.MaxToolstackLength}");
        }

        NoteVersion("4.2", "TOOLSTACK chunk");
        StartBlob(what, len);
    }

    private LegacyItemKind ReadEndOfBody()
    {
        if ((_ioreqServerPfn != 0) != (_nrIoreqServerPages != 0))
        {
            throw Fail("END_OF_BODY", ChunkIndex, ItemOffset,
                $"HVM_IOREQ_SERVER_PFN (0x{_ioreqServerPfn:X}) and HVM_NR_IOREQ_SERVER_PAGES ({_nrIoreqServerPages}) must be both present or both absent");
        }

        _ioreqServerPfn = 0;
        _nrIoreqServerPages = 0;
        _vcpuCursor = 0;
        _unmappedLeft = 0;
        _unmappedStarted = false;
        _state = _options.IsPv ? State.PvUnmapped : State.HvmMagic;
        return LegacyItemKind.EndOfBody;
    }
}
