using System.Buffers;
using System.Buffers.Binary;

using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Restore.Legacy;

/// <summary>
/// Holds one uncommitted checkpoint (legacy-stream.md §9.3 NEXT_BODY/NEXT_TAIL) until its tail is complete, then
/// replays it, in order, into the real sink (APPLY). Items and pages go to two <see cref="CheckpointBuffer"/>s (an
/// item log and a page log: memory up to a limit, then temporary files deleted on close), so that a checkpoint of
/// any size costs bounded memory (§11 "buffered checkpoints"). Each item keeps the chunk index and offset where it
/// arrived, so that an error raised while it is applied names that place.
/// </summary>
internal sealed class LegacyCheckpointSpool : ILegacyRestoreSink, IDisposable
{

    private readonly CheckpointBuffer _items;
    private readonly CheckpointBuffer _pages;
    private readonly Func<(long Index, long Offset)> _origin;
    private Dictionary<uint, long>? _pendingIndex;
    private long _pageCount;
    private readonly byte[] _scratch = new byte[64];
    private Stream? _replay;

    /// <param name="directory">Where the buffers spill (default: the temporary directory).</param>
    /// <param name="origin">Where the item being recorded arrived (chunk index and offset).</param>
    public LegacyCheckpointSpool(string? directory = null, Func<(long Index, long Offset)>? origin = null)
    {
        _items = new CheckpointBuffer(directory, long.MaxValue);
        _pages = new CheckpointBuffer(directory, long.MaxValue);
        _origin = origin ?? (() => (-1, 0));
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
    public long Length => _items.Length + _pages.Length;

    /// <summary>Data pages buffered so far in this checkpoint (format A data and decoded format B pages).</summary>
    public long PageCount => _pageCount;

    /// <summary>Forgets the buffered checkpoint (after a replay, or when it is discarded).</summary>
    public void Reset()
    {
        _items.Clear();
        _pages.Clear();
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
        _pages.Write(pages);
        _pageCount += pages.Length / GuestPage.Size;
    }

    /// <summary>Format B: a batch whose pages arrive later through <see cref="AppendPage"/>.</summary>
    public void BatchEntries(ReadOnlySpan<uint> entries) => WriteEntries(Tag.BatchEntries, entries);

    /// <summary>Format B: the next decoded page, in data-entry order.</summary>
    public void AppendPage(uint pfn, ReadOnlySpan<byte> page)
    {
        _pendingIndex ??= [];
        _pendingIndex[pfn] = _pages.Length;
        _pages.Write(page);
        _pageCount++;
    }

    /// <summary>Format B: the content a pfn was given earlier in this same checkpoint, if any.</summary>
    public bool TryReadPendingPage(uint pfn, Span<byte> destination)
    {
        if (_pendingIndex is null || !_pendingIndex.TryGetValue(pfn, out var at))
        {
            return false;
        }

        _pages.ReadAt(at, destination[..GuestPage.Size]);
        return true;
    }

    public bool TryReadPage(uint pfn, Span<byte> destination) => TryReadPendingPage(pfn, destination);

    public void Marker(LegacyChunkId id)
    {
        Span<byte> b = stackalloc byte[5];
        b[0] = (byte)Tag.Marker;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], (int)id);
        Item(b);
    }

    public void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap)
    {
        Span<byte> b = stackalloc byte[5];
        b[0] = (byte)Tag.VcpuInfo;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], maxVcpuId);
        Item(b);
        Span<byte> w = stackalloc byte[8];
        foreach (var word in onlineMap)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(w, word);
            _items.Write(w);
        }
    }

    public void HvmParam(LegacyChunkId id, ulong value)
    {
        Span<byte> b = stackalloc byte[13];
        b[0] = (byte)Tag.HvmParam;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], (int)id);
        BinaryPrimitives.WriteUInt64LittleEndian(b[5..], value);
        Item(b);
    }

    public void TscInfo(LegacyTscInfo tsc)
    {
        Span<byte> b = stackalloc byte[21];
        b[0] = (byte)Tag.Tsc;
        BinaryPrimitives.WriteUInt32LittleEndian(b[1..], tsc.Mode);
        BinaryPrimitives.WriteUInt64LittleEndian(b[5..], tsc.ElapsedNsec);
        BinaryPrimitives.WriteUInt32LittleEndian(b[13..], tsc.GtscKhz);
        BinaryPrimitives.WriteUInt32LittleEndian(b[17..], tsc.Incarnation);
        Item(b);
    }

    public void Toolstack(ReadOnlySpan<byte> blob)
    {
        WriteHeader(Tag.Toolstack, blob.Length);
        _items.Write(blob);
    }

    public void EndOfBody() => Item([(byte)Tag.EndOfBody]);

    public void UnmappedPfns(ReadOnlySpan<ulong> pfns)
    {
        WriteHeader(Tag.Unmapped, pfns.Length);
        Span<byte> w = stackalloc byte[8];
        foreach (var pfn in pfns)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(w, pfn);
            _items.Write(w);
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
        Item(b);
        _items.Write(context);
        _items.Write(extendedContext);
        _items.Write(xsaveRecord);
    }

    public void SharedInfo(ReadOnlySpan<byte> page)
    {
        Item([(byte)Tag.SharedInfo]);
        _items.Write(page);
    }

    public void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn)
    {
        Span<byte> b = stackalloc byte[25];
        b[0] = (byte)Tag.HvmMagic;
        BinaryPrimitives.WriteUInt64LittleEndian(b[1..], ioreqPfn);
        BinaryPrimitives.WriteUInt64LittleEndian(b[9..], bufIoreqPfn);
        BinaryPrimitives.WriteUInt64LittleEndian(b[17..], storePfn);
        Item(b);
    }

    public void HvmContext(long length, Stream data) => WriteBlob(Tag.HvmContext, 0, length, data);

    public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data) => WriteBlob(Tag.DeviceModel, (byte)signature, length, data);

    // ---- replay ---------------------------------------------------------------------------------

    /// <summary>Delivers the buffered checkpoint to <paramref name="target"/>, in the order it was read.</summary>
    public void Replay(ILegacyRestoreSink target)
    {
        if (_items.Count == 0)
        {
            return;
        }

        using var items = _items.OpenRead();
        using var pageLog = _pages.OpenRead();
        _replay = items;
        var item = 0;
        var entries = new uint[LegacyChunk.MaxBatchSize];
        var pageBuffer = ArrayPool<byte>.Shared.Rent(LegacyChunk.MaxBatchSize * GuestPage.Size);
        var blob = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int tagByte;
            while ((tagByte = items.ReadByte()) >= 0)
            {
                var origin = _items.Items[item++];
                try
                {
                    ReplayOne((Tag)tagByte, items, pageLog, target, entries, pageBuffer, blob);
                }
                catch (StreamFormatException e)
                {
                    // Name the chunk where the item arrived, not where the reader is now (the end of the checkpoint).
                    throw new StreamFormatException(e.What, origin.Index, origin.Offset, e.Detail, e);
                }
            }
        }
        finally
        {
            _replay = null;
            ArrayPool<byte>.Shared.Return(pageBuffer);
            ArrayPool<byte>.Shared.Return(blob);
        }
    }

    private void ReplayOne(Tag tag, Stream items, Stream pageLog, ILegacyRestoreSink target, uint[] entries, byte[] pageBuffer, byte[] blob)
    {
        switch (tag)
        {
            case Tag.Batch:
            case Tag.BatchEntries:
                {
                    var count = ReadInt32();
                    var raw = blob.AsSpan(0, count * 4);
                    items.ReadExactly(raw);
                    var data = 0;
                    for (var i = 0; i < count; i++)
                    {
                        entries[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw[(i * 4)..]);
                        if (LegacyPfnEntry.HasData(entries[i]))
                        {
                            data++;
                        }
                    }

                    var pages = pageBuffer.AsSpan(0, data * GuestPage.Size);
                    pageLog.ReadExactly(pages);
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
                    items.ReadExactly(data);
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
                    items.ReadExactly(record);
                    target.PvVcpu(id, record.AsSpan(0, c), record.AsSpan(c, e), record.AsSpan(c + e, x));
                    break;
                }

            case Tag.SharedInfo:
                {
                    var page = pageBuffer.AsSpan(0, GuestPage.Size);
                    items.ReadExactly(page);
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
                    var kind = (byte)items.ReadByte();
                    var length = (long)ReadUInt64();
                    using (var window = new FramedStream(items, length))
                    {
                        if (tag == Tag.HvmContext)
                        {
                            target.HvmContext(length, window);
                        }
                        else
                        {
                            target.DeviceModel((LegacyDeviceModelSignature)kind, length, window);
                        }

                        window.Drain();
                    }

                    break;
                }

            default:
                throw new InvalidOperationException($"corrupt checkpoint spool (tag {tag})");
        }
    }

    public void Dispose()
    {
        _items.Dispose();
        _pages.Dispose();
    }

    // ---- helpers --------------------------------------------------------------------------------

    // Every item starts with its tag and remembers where it arrived.
    private void Item(ReadOnlySpan<byte> head)
    {
        var (index, offset) = _origin();
        _items.BeginItem(index, offset);
        _items.Write(head);
    }

    private void WriteHeader(Tag tag, int value)
    {
        Span<byte> b = stackalloc byte[5];
        b[0] = (byte)tag;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], value);
        Item(b);
    }

    private void WriteEntries(Tag tag, ReadOnlySpan<uint> entries)
    {
        WriteHeader(tag, entries.Length);
        Span<byte> raw = stackalloc byte[LegacyChunk.MaxBatchSize * 4];
        for (var i = 0; i < entries.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(raw[(i * 4)..], entries[i]);
        }

        _items.Write(raw[..(entries.Length * 4)]);
    }

    // A blob of a length the sink may not know (a device-model record to end of stream): its tag, kind and declared
    // length, then frames of [u32 n][n octets], ended by n = 0.
    private void WriteBlob(Tag tag, byte kind, long length, Stream data)
    {
        Span<byte> head = stackalloc byte[10];
        head[0] = (byte)tag;
        head[1] = kind;
        BinaryPrimitives.WriteInt64LittleEndian(head[2..], length);
        Item(head);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            Span<byte> frame = stackalloc byte[4];
            int n;
            while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
            {
                BinaryPrimitives.WriteInt32LittleEndian(frame, n);
                _items.Write(frame);
                _items.Write(buffer.AsSpan(0, n));
            }

            frame.Clear();
            _items.Write(frame);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private int ReadInt32()
    {
        _replay!.ReadExactly(_scratch.AsSpan(0, 4));
        return BinaryPrimitives.ReadInt32LittleEndian(_scratch);
    }

    private ulong ReadUInt64()
    {
        _replay!.ReadExactly(_scratch.AsSpan(0, 8));
        return BinaryPrimitives.ReadUInt64LittleEndian(_scratch);
    }

    /// <summary>A buffered blob (frames of [u32 n][n octets], ended by n = 0) as a read-only stream.</summary>
    private sealed class FramedStream(Stream inner, long length) : Stream
    {
        private readonly byte[] _frame = new byte[4];
        private int _left;
        private bool _done;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length >= 0 ? length : throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_left == 0 && !_done)
            {
                inner.ReadExactly(_frame);
                _left = BinaryPrimitives.ReadInt32LittleEndian(_frame);
                _done = _left == 0;
            }

            if (_done || buffer.IsEmpty)
            {
                return 0;
            }

            var n = inner.Read(buffer[..Math.Min(buffer.Length, _left)]);
            _left -= n;
            return n;
        }

        /// <summary>Consumes what the sink left unread, up to the end frame.</summary>
        public void Drain()
        {
            Span<byte> scratch = stackalloc byte[4096];
            while (Read(scratch) > 0)
            {
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
