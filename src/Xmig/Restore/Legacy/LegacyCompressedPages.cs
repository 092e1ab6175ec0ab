using System.Buffers;

using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Restore.Legacy;

/// <summary>
/// Decodes the COMPRESSED_DATA of one format-B checkpoint (legacy-stream.md §5.6): one page encoding per
/// data-carrying entry of the checkpoint's batches, in entry order, over the concatenation of its
/// COMPRESSED_DATA payloads (an encoding may straddle two chunks). Each page is decoded against the newest content
/// of its pfn — earlier in this checkpoint, else the committed content — and appended to the spool.
/// </summary>
internal sealed class LegacyCompressedPages : IDisposable
{
    private const int SegmentLength = 16384;
    private readonly List<uint[]> _segments = [];
    private readonly byte[] _carry = new byte[PageDeltaCodec.MaxEncodedLength];
    private readonly byte[] _page = new byte[GuestPage.Size];
    private int _carryLength;
    private long _head;
    private long _tail;

    /// <summary>Data-carrying entries announced and not yet given data.</summary>
    public long Pending => _tail - _head;

    /// <summary>Pages decoded in this checkpoint.</summary>
    public long Decoded { get; private set; }

    /// <summary>Octets of an incomplete encoding waiting for the next COMPRESSED_DATA.</summary>
    public int Carry => _carryLength;

    public void Reset()
    {
        foreach (var s in _segments)
        {
            ArrayPool<uint>.Shared.Return(s);
        }

        _segments.Clear();
        _head = _tail = 0;
        _carryLength = 0;
        Decoded = 0;
    }

    /// <summary>Queues the data-carrying entries of a format-B batch.</summary>
    public void Announce(ReadOnlySpan<uint> entries)
    {
        foreach (var e in entries)
        {
            if (!LegacyPfnEntry.HasData(e))
            {
                continue;
            }

            var segment = (int)(_tail / SegmentLength);
            if (segment == _segments.Count)
            {
                _segments.Add(ArrayPool<uint>.Shared.Rent(SegmentLength));
            }

            _segments[segment][_tail % SegmentLength] = LegacyPfnEntry.Pfn(e);
            _tail++;
        }
    }

    /// <summary>
    /// Decodes the encodings in <paramref name="data"/> (one COMPRESSED_DATA payload or part of it). Returns null, or
    /// what is wrong (the caller locates it).
    /// </summary>
    public string? Feed(ReadOnlySpan<byte> data, LegacyCheckpointSpool spool, ILegacyRestoreSink committed)
    {
        while (!data.IsEmpty)
        {
            ReadOnlySpan<byte> encoding;
            int length;
            string? error;
            if (_carryLength > 0)
            {
                // Complete the encoding started in an earlier payload.
                var take = Math.Min(data.Length, _carry.Length - _carryLength);
                data[..take].CopyTo(_carry.AsSpan(_carryLength));
                var status = PageDeltaCodec.TryMeasure(_carry.AsSpan(0, _carryLength + take), out length, out error);
                if (status == OperationStatus.InvalidData)
                {
                    return error;
                }

                if (status == OperationStatus.NeedMoreData)
                {
                    _carryLength += take;
                    return null;
                }

                var fromData = length - _carryLength;
                encoding = _carry.AsSpan(0, length);
                _carryLength = 0;
                var problem = DecodeOne(encoding, spool, committed);
                if (problem is not null)
                {
                    return problem;
                }

                data = data[fromData..];
                continue;
            }

            var st = PageDeltaCodec.TryMeasure(data, out length, out error);
            if (st == OperationStatus.InvalidData)
            {
                return error;
            }

            if (st == OperationStatus.NeedMoreData)
            {
                data.CopyTo(_carry);
                _carryLength = data.Length;
                return null;
            }

            var p = DecodeOne(data[..length], spool, committed);
            if (p is not null)
            {
                return p;
            }

            data = data[length..];
        }

        return null;
    }

    private string? DecodeOne(ReadOnlySpan<byte> encoding, LegacyCheckpointSpool spool, ILegacyRestoreSink committed)
    {
        if (_head == _tail)
        {
            return $"compressed data for more pages than the batches announced ({Decoded} data entries)";
        }

        var pfn = _segments[(int)(_head / SegmentLength)][_head % SegmentLength];
        _head++;
        if (encoding[0] != PageDeltaCodec.FullPage
            && !spool.TryReadPendingPage(pfn, _page)
            && !committed.TryReadPage(pfn, _page))
        {
            return $"page encoding for pfn 0x{pfn:X} is a delta, but no earlier content of that pfn was received";
        }

        PageDeltaCodec.Decode(encoding, _page);
        spool.AppendPage(pfn, _page);
        Decoded++;
        return null;
    }

    public void Dispose() => Reset();
}
