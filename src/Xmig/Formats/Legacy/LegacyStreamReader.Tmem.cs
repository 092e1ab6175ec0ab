using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

internal sealed partial class LegacyStreamReader
{
    private const uint TmemSeparator = 0xFFFF_FFFF;
    private const int MaxTmemPageShift = 4;

    // legacy-stream.md §5.5.5 — TMEM (−5), no length: parsed to find its end.
    //   u32 version, u32 max_pools, u32 0xFFFFFFFF,
    //   u32 client flags, u32 weight, u32 cap, u32 0xFFFFFFFF,
    //   pool × k: u32 pool_id (≠ ~0), u32 flags, u32 n_pages, u64 uuid[2],
    //             ≤ n_pages × { u64 oid[3], u32 index, pagesize octets }  (early end: oid = 3 × ~0),
    //   u32 0xFFFFFFFF
    //   pagesize = 1 << (((flags >> 4) & 0xF) + 12)
    private void ReadTmem(string what)
    {
        var start = _input.Position;
        var head = ReadExact(28, what, ChunkIndex, ItemOffset);
        var version = BinaryPrimitives.ReadUInt32LittleEndian(head);
        var maxPools = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
        var clientFlags = BinaryPrimitives.ReadUInt32LittleEndian(head[12..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(head[8..]) != TmemSeparator)
        {
            throw Fail(what, ChunkIndex, ItemOffset, "first separator is not 0xFFFFFFFF");
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(head[24..]) != TmemSeparator)
        {
            throw Fail(what, ChunkIndex, ItemOffset, "second separator is not 0xFFFFFFFF");
        }

        var pools = 0;
        long pages = 0;
        while (true)
        {
            var poolId = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, what, ChunkIndex, ItemOffset));
            if (poolId == TmemSeparator)
            {
                break;
            }

            if (poolId >= maxPools || pools >= maxPools)
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"pool {poolId} (pool record {pools}) is not below max_pools {maxPools}");
            }

            var pool = ReadExact(24, what, ChunkIndex, ItemOffset);
            var flags = BinaryPrimitives.ReadUInt32LittleEndian(pool);
            var nPages = BinaryPrimitives.ReadUInt32LittleEndian(pool[4..]);
            var shift = (int)((flags >> 4) & 0xF);
            if (shift > MaxTmemPageShift)
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"pool {poolId} page size 2^{shift + 12} is not supported");
            }

            if ((flags & 1) == 0 && nPages != 0)
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"non-persistent pool {poolId} claims {nPages} pages");
            }

            var pageSize = 1 << (shift + 12);
            pools++;
            for (long p = 0; p < nPages; p++)
            {
                var oid = ReadExact(24, what, ChunkIndex, ItemOffset);
                if (BinaryPrimitives.ReadUInt64LittleEndian(oid) == ulong.MaxValue
                    && BinaryPrimitives.ReadUInt64LittleEndian(oid[8..]) == ulong.MaxValue
                    && BinaryPrimitives.ReadUInt64LittleEndian(oid[16..]) == ulong.MaxValue)
                {
                    break;
                }

                ReadExact(4, what, ChunkIndex, ItemOffset);
                if (_input.Position - start + pageSize > _options.MaxTmemLength)
                {
                    throw Fail(what, ChunkIndex, ItemOffset, $"longer than {_options.MaxTmemLength} octets");
                }

                var skipped = _input.Skip(pageSize);
                if (skipped < pageSize)
                {
                    throw Fail(what, ChunkIndex, ItemOffset, $"truncated inside a page of pool {poolId}");
                }

                pages++;
            }
        }

        Tmem = new LegacyTmemSummary(version, maxPools, clientFlags, pools, pages, 0, _input.Position - ItemOffset);
    }

    // legacy-stream.md §5.5.5 — TMEM_EXTRA (−6): { u32 pool_id, u64 oid[3], u32 index } … u32 0xFFFFFFFF
    private void ReadTmemExtra(string what)
    {
        long entries = 0;
        while (true)
        {
            var poolId = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, what, ChunkIndex, ItemOffset));
            if (poolId == TmemSeparator)
            {
                break;
            }

            ReadExact(28, what, ChunkIndex, ItemOffset);
            entries++;
            if (_input.Position - ItemOffset > _options.MaxTmemLength)
            {
                throw Fail(what, ChunkIndex, ItemOffset, $"longer than {_options.MaxTmemLength} octets");
            }
        }

        Tmem = new LegacyTmemSummary(0, 0, 0, 0, 0, entries, _input.Position - ItemOffset);
    }
}
