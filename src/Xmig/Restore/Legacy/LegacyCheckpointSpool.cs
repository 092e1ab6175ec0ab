using System.Buffers;
using System.Buffers.Binary;

using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Restore.Legacy;

/// <summary>
/// Holds one uncommitted checkpoint (legacy-stream.md §9.3 NEXT_BODY/NEXT_TAIL) until its tail is complete, then
/// replays it, in order, into the real sink (APPLY). Everything goes to two temporary files (an item log and a page
/// log, deleted on close) so that a checkpoint of any size costs bounded memory (§11 "buffered checkpoints").
/// </summary>
internal sealed class LegacyCheckpointSpool : ILegacyRestoreSink, IDisposable
{
    private const int PageSize = 4096;

    private readonly string? _directory;
    private FileStream? _items;
    private FileStream? _pages;
    private Dictionary<uint, long>? _pendingIndex;
    private long _pageCount;
    private readonly byte[] _scratch = new byte[64];

    public LegacyCheckpointSpool(string? directory = null)
    {
        _directory = directory;
    }

    private enum Tag : byte
    {
        Batch = 1,
        BatchEntries,
        Marker,
        VcpuInfo,
        HvmParam,
        Tsc,
        Toolstack,
        EndOfBody,
        Unmapped,
        PvVcpu,
        SharedInfo,
        HvmMagic,
        HvmContext,
        DeviceModel,
    }

    /// <summary>Octets buffered for the current checkpoint.</summary>
    public long Length => (_items?.Length ?? 0) + (_pages?.Length ?? 0);

    /// <summary>Data pages buffered so far in this checkpoint (format A data and decoded format B pages).</summary>
    public long PageCount => _pageCount;

    /// <summary>Forgets the buffered checkpoint (after a replay, or when it is discarded).</summary>
    public void Reset()
    {
        _items?.SetLength(0);
        _pages?.SetLength(0);
        _pendingIndex?.Clear();
        _pageCount = 0;
    }

    // ---- recording ------------------------------------------------------------------------------

    public void Header(LegacyImageInfo info) => throw new InvalidOperationException("the header is never buffered");

    public void BeginCheckpoint(int number)
    {
    }

    public void CommitCheckpoint(int number)
    {
    }

    public void DiscardCheckpoint(int number)
    {
    }

    public void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        WriteEntries(Tag.Batch, entries);
        Pages().Write(pages);
        _pageCount += pages.Length / PageSize;
    }

    /// <summary>Format B: a batch whose pages arrive later through <see cref="AppendPage"/>.</summary>
    public void BatchEntries(ReadOnlySpan<uint> entries) => WriteEntries(Tag.BatchEntries, entries);

    /// <summary>Format B: the next decoded page, in data-entry order.</summary>
    public void AppendPage(uint pfn, ReadOnlySpan<byte> page)
    {
        var pages = Pages();
        _pendingIndex ??= [];
        _pendingIndex[pfn] = pages.Position;
        pages.Write(page);
        _pageCount++;
    }

    /// <summary>Format B: the content a pfn was given earlier in this same checkpoint, if any.</summary>
    public bool TryReadPendingPage(uint pfn, Span<byte> destination)
    {
        if (_pendingIndex is null || !_pendingIndex.TryGetValue(pfn, out var at))
        {
            return false;
        }

        var pages = Pages();
        pages.Flush();
        RandomAccess.Read(pages.SafeFileHandle, destination[..PageSize], at);
        return true;
    }

    public bool TryReadPage(uint pfn, Span<byte> destination) => TryReadPendingPage(pfn, destination);

    public void Marker(LegacyChunkId id)
    {
        Span<byte> b = stackalloc byte[5];
        b[0] = (byte)Tag.Marker;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], (int)id);
        Items().Write(b);
    }

    public void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap)
    {
        var items = Items();
        Span<byte> b = stackalloc byte[5];
        b[0] = (byte)Tag.VcpuInfo;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], maxVcpuId);
        items.Write(b);
        Span<byte> w = stackalloc byte[8];
        foreach (var word in onlineMap)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(w, word);
            items.Write(w);
        }
    }

    public void HvmParam(LegacyChunkId id, ulong value)
    {
        Span<byte> b = stackalloc byte[13];
        b[0] = (byte)Tag.HvmParam;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], (int)id);
        BinaryPrimitives.WriteUInt64LittleEndian(b[5..], value);
        Items().Write(b);
    }

    public void TscInfo(LegacyTscInfo tsc)
    {
        Span<byte> b = stackalloc byte[21];
        b[0] = (byte)Tag.Tsc;
        BinaryPrimitives.WriteUInt32LittleEndian(b[1..], tsc.Mode);
        BinaryPrimitives.WriteUInt64LittleEndian(b[5..], tsc.ElapsedNsec);
        BinaryPrimitives.WriteUInt32LittleEndian(b[13..], tsc.GtscKhz);
        BinaryPrimitives.WriteUInt32LittleEndian(b[17..], tsc.Incarnation);
        Items().Write(b);
    }

    public void Toolstack(ReadOnlySpan<byte> blob)
    {
        WriteHeader(Tag.Toolstack, blob.Length);
        Items().Write(blob);
    }

    public void EndOfBody() => Items().WriteByte((byte)Tag.EndOfBody);

    public void UnmappedPfns(ReadOnlySpan<ulong> pfns)
    {
        WriteHeader(Tag.Unmapped, pfns.Length);
        var items = Items();
        Span<byte> w = stackalloc byte[8];
        foreach (var pfn in pfns)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(w, pfn);
            items.Write(w);
        }
    }

    public void PvVcpu(int vcpuId, ReadOnlySpan<byte> context, ReadOnlySpan<byte> extendedContext, ReadOnlySpan<byte> xsaveRecord)
    {
        Span<byte> b = stackalloc byte[17];
        b[0] = (byte)Tag.PvVcpu;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], vcpuId);
        BinaryPrimitives.WriteInt32LittleEndian(b[5..], context.Length);
        BinaryPrimitives.WriteInt32LittleEndian(b[9..], extendedContext.Length);
        BinaryPrimitives.WriteInt32LittleEndian(b[13..], xsaveRecord.Length);
        var items = Items();
        items.Write(b);
        items.Write(context);
        items.Write(extendedContext);
        items.Write(xsaveRecord);
    }

    public void SharedInfo(ReadOnlySpan<byte> page)
    {
        Items().WriteByte((byte)Tag.SharedInfo);
        Items().Write(page);
    }

    public void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn)
    {
        Span<byte> b = stackalloc byte[25];
        b[0] = (byte)Tag.HvmMagic;
        BinaryPrimitives.WriteUInt64LittleEndian(b[1..], ioreqPfn);
        BinaryPrimitives.WriteUInt64LittleEndian(b[9..], bufIoreqPfn);
        BinaryPrimitives.WriteUInt64LittleEndian(b[17..], storePfn);
        Items().Write(b);
    }

    public void HvmContext(long length, Stream data) => WriteBlob(Tag.HvmContext, 0, data);

    public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data) => WriteBlob(Tag.DeviceModel, (byte)signature, data);

    // ---- replay ---------------------------------------------------------------------------------

    /// <summary>Delivers the buffered checkpoint to <paramref name="target"/>, in the order it was read.</summary>
    public void Replay(ILegacyRestoreSink target)
    {
        if (_items is null)
        {
            return;
        }

        _items.Flush();
        _items.Position = 0;
        _pages?.Flush();
        if (_pages is not null)
        {
            _pages.Position = 0;
        }

        var entries = new uint[LegacyChunk.MaxBatchSize];
        var pageBuffer = ArrayPool<byte>.Shared.Rent(LegacyChunk.MaxBatchSize * PageSize);
        var blob = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int tagByte;
            while ((tagByte = _items.ReadByte()) >= 0)
            {
                switch ((Tag)tagByte)
                {
                    case Tag.Batch:
                    case Tag.BatchEntries:
                        {
                            var count = ReadInt32();
                            var raw = blob.AsSpan(0, count * 4);
                            _items.ReadExactly(raw);
                            var data = 0;
                            for (var i = 0; i < count; i++)
                            {
                                entries[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw[(i * 4)..]);
                                if (LegacyPfnEntry.HasData(entries[i]))
                                {
                                    data++;
                                }
                            }

                            var pages = pageBuffer.AsSpan(0, data * PageSize);
                            _pages!.ReadExactly(pages);
                            target.PageBatch(entries.AsSpan(0, count), pages);
                            break;
                        }

                    case Tag.Marker:
                        target.Marker((LegacyChunkId)ReadInt32());
                        break;
                    case Tag.VcpuInfo:
                        {
                            var max = ReadInt32();
                            var words = new ulong[(max / 64) + 1];
                            for (var i = 0; i < words.Length; i++)
                            {
                                words[i] = ReadUInt64();
                            }

                            target.VcpuInfo(max, words);
                            break;
                        }

                    case Tag.HvmParam:
                        {
                            var id = (LegacyChunkId)ReadInt32();
                            target.HvmParam(id, ReadUInt64());
                            break;
                        }

                    case Tag.Tsc:
                        {
                            var mode = (uint)ReadInt32();
                            var nsec = ReadUInt64();
                            var khz = (uint)ReadInt32();
                            var inc = (uint)ReadInt32();
                            target.TscInfo(new LegacyTscInfo(mode, nsec, khz, inc));
                            break;
                        }

                    case Tag.Toolstack:
                        {
                            var n = ReadInt32();
                            var data = new byte[n];
                            _items.ReadExactly(data);
                            target.Toolstack(data);
                            break;
                        }

                    case Tag.EndOfBody:
                        target.EndOfBody();
                        break;
                    case Tag.Unmapped:
                        {
                            var n = ReadInt32();
                            var pfns = new ulong[n];
                            for (var i = 0; i < n; i++)
                            {
                                pfns[i] = ReadUInt64();
                            }

                            target.UnmappedPfns(pfns);
                            break;
                        }

                    case Tag.PvVcpu:
                        {
                            var id = ReadInt32();
                            var c = ReadInt32();
                            var e = ReadInt32();
                            var x = ReadInt32();
                            var record = new byte[c + e + x];
                            _items.ReadExactly(record);
                            target.PvVcpu(id, record.AsSpan(0, c), record.AsSpan(c, e), record.AsSpan(c + e, x));
                            break;
                        }

                    case Tag.SharedInfo:
                        {
                            var page = pageBuffer.AsSpan(0, PageSize);
                            _items.ReadExactly(page);
                            target.SharedInfo(page);
                            break;
                        }

                    case Tag.HvmMagic:
                        {
                            var a = ReadUInt64();
                            var b = ReadUInt64();
                            target.HvmMagicPfns(a, b, ReadUInt64());
                            break;
                        }

                    case Tag.HvmContext:
                    case Tag.DeviceModel:
                        {
                            var kind = (byte)_items.ReadByte();
                            var length = (long)ReadUInt64();
                            var end = _items.Position + length;
                            using (var window = new WindowStream(_items, length))
                            {
                                if ((Tag)tagByte == Tag.HvmContext)
                                {
                                    target.HvmContext(length, window);
                                }
                                else
                                {
                                    target.DeviceModel((LegacyDeviceModelSignature)kind, length, window);
                                }
                            }

                            _items.Position = end;
                            break;
                        }

                    default:
                        throw new InvalidOperationException($"corrupt checkpoint spool (tag {tagByte})");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(pageBuffer);
            ArrayPool<byte>.Shared.Return(blob);
        }
    }

    public void Dispose()
    {
        _items?.Dispose();
        _pages?.Dispose();
        _items = null;
        _pages = null;
    }

    // ---- helpers --------------------------------------------------------------------------------

    private FileStream Items() => _items ??= Create();

    private FileStream Pages() => _pages ??= Create();

    private FileStream Create()
    {
        var dir = _directory ?? Path.GetTempPath();
        var path = Path.Combine(dir, $"xmig-checkpoint-{Guid.NewGuid():N}.tmp");
        return new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
    }

    private void WriteHeader(Tag tag, int value)
    {
        Span<byte> b = stackalloc byte[5];
        b[0] = (byte)tag;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], value);
        Items().Write(b);
    }

    private void WriteEntries(Tag tag, ReadOnlySpan<uint> entries)
    {
        WriteHeader(tag, entries.Length);
        Span<byte> raw = stackalloc byte[LegacyChunk.MaxBatchSize * 4];
        for (var i = 0; i < entries.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(raw[(i * 4)..], entries[i]);
        }

        Items().Write(raw[..(entries.Length * 4)]);
    }

    private void WriteBlob(Tag tag, byte kind, Stream data)
    {
        var items = Items();
        Span<byte> head = stackalloc byte[10];
        head[0] = (byte)tag;
        head[1] = kind;
        var lengthAt = items.Position + 2;
        items.Write(head);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            long total = 0;
            int n;
            while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
            {
                items.Write(buffer, 0, n);
                total += n;
            }

            var end = items.Position;
            items.Position = lengthAt;
            BinaryPrimitives.WriteUInt64LittleEndian(head, (ulong)total);
            items.Write(head[..8]);
            items.Position = end;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private int ReadInt32()
    {
        _items!.ReadExactly(_scratch.AsSpan(0, 4));
        return BinaryPrimitives.ReadInt32LittleEndian(_scratch);
    }

    private ulong ReadUInt64()
    {
        _items!.ReadExactly(_scratch.AsSpan(0, 8));
        return BinaryPrimitives.ReadUInt64LittleEndian(_scratch);
    }

    /// <summary>A read-only window of <c>length</c> octets over the spool, for blobs.</summary>
    private sealed class WindowStream(Stream inner, long length) : Stream
    {
        private readonly long _length = length;
        private long _left = length;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => _length;

        public override long Position
        {
            get => _length - _left;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_left == 0)
            {
                return 0;
            }

            var n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            _left -= n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
