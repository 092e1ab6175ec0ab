using System.Buffers.Binary;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;

namespace Xmig.Transport;

/// <summary>
/// A read-only view of a migration channel that ends where the v2 stream on it ends: after the outermost END
/// record (libxl END, or libxc END of a bare libxc stream) it reports end of stream, so a reader that probes for
/// more never waits for octets the sender will only write after the receiver's "ready" message (§3.2).
/// Legacy payloads (which have no END) pass through untouched: their reader stops by itself (legacy §9.3).
/// </summary>
/// <remarks>
/// Only the framing is followed (v2-stream.md §2, §3.1, §4.1, §5): header lengths, and each record's 8-octet header
/// (u32 type, u32 length, body padded to 8). Nothing is validated here; a length beyond the record limit turns the
/// view into a pass-through, so the stream's reader reports the bad record itself. A workaround until the restore
/// engine stops reading at END on an open channel; then this view is no longer needed.
/// </remarks>
internal sealed class StreamEndBoundary(Stream inner) : Stream
{
    private const long MaxRecordLength = 0x0800_0000 + 4096;

    private readonly byte[] _header = new byte[XlHeader.Size];
    private Unit _unit = Unit.Probe;
    private long _remaining = 8;
    private int _headerFill;
    private bool _embedded;
    private Unit _afterBody;

    private enum Unit
    {
        Probe,
        XlRest,
        XlOptional,
        LibxlHeader,
        LibxlRecord,
        LibxcImage,
        LibxcDomain,
        LibxcRecord,
        Body,
        Done,
        PassThrough,
    }

    /// <summary>True once the outermost END has been read (nothing after it is read from the channel).</summary>
    public bool EndReached => _unit == Unit.Done;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override bool CanTimeout => inner.CanTimeout;

    public override int ReadTimeout
    {
        get => inner.ReadTimeout;
        set => inner.ReadTimeout = value;
    }

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (_unit == Unit.Done || destination.IsEmpty)
        {
            return 0;
        }

        if (_unit == Unit.PassThrough)
        {
            return inner.Read(destination);
        }

        var want = (int)Math.Min(destination.Length, _remaining);
        var n = inner.Read(destination[..want]);
        if (n == 0)
        {
            return 0;
        }

        if (_unit != Unit.Body)
        {
            destination[..n].CopyTo(_header.AsSpan(_headerFill));
            _headerFill += n;
        }

        _remaining -= n;
        while (_remaining == 0 && _unit is not (Unit.Done or Unit.PassThrough))
        {
            Next();
        }

        return n;
    }

    private void Next()
    {
        var header = _header.AsSpan(0, _headerFill);
        switch (_unit)
        {
            case Unit.Probe:
                if (header.SequenceEqual(XlHeader.Magic[..8]))
                {
                    Expect(Unit.XlRest, XlHeader.Size - 8, keep: true);
                }
                else if (header.SequenceEqual("LibxlFmt"u8))
                {
                    Expect(Unit.LibxlHeader, StreamHeader.Size - 8, keep: true);
                }
                else if (StreamDetector.IsLibxcMarker(header))
                {
                    _embedded = false;
                    Expect(Unit.LibxcImage, ImageHeader.Size - 8, keep: true);
                }
                else
                {
                    _unit = Unit.PassThrough;
                }

                break;
            case Unit.XlRest:
                var optional = BinaryPrimitives.ReadUInt32LittleEndian(header[44..]);
                if (optional > XlHeader.MaxOptionalDataLength)
                {
                    _unit = Unit.PassThrough; // a header its reader will refuse
                    break;
                }

                // STREAMv2 ⇒ libxl; otherwise a legacy image (passed through) or a libxc image: the probe tells.
                Body(optional, Unit.Probe);
                break;
            case Unit.LibxlHeader:
                Expect(Unit.LibxlRecord, Formats.RecordHeader.Size);
                break;
            case Unit.LibxcImage:
                Expect(Unit.LibxcDomain, DomainHeader.Size);
                break;
            case Unit.LibxcDomain:
                Expect(Unit.LibxcRecord, Formats.RecordHeader.Size);
                break;
            case Unit.LibxlRecord:
            case Unit.LibxcRecord:
                var type = BinaryPrimitives.ReadUInt32LittleEndian(header);
                var length = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
                if (length > MaxRecordLength)
                {
                    _unit = Unit.PassThrough;
                    break;
                }

                var libxl = _unit == Unit.LibxlRecord;
                var next = libxl
                    ? type switch
                    {
                        (uint)LibxlRecordType.End => Unit.Done,
                        (uint)LibxlRecordType.LibxcContext => Unit.LibxcImage,
                        _ => Unit.LibxlRecord,
                    }
                    : type == (uint)RecordType.End ? (_embedded ? Unit.LibxlRecord : Unit.Done) : Unit.LibxcRecord;
                if (libxl && type == (uint)LibxlRecordType.LibxcContext)
                {
                    _embedded = true;
                }

                Body((length + 7) & ~7L, next);
                break;
            case Unit.Body:
                Expect(_afterBody, SizeOf(_afterBody));
                break;
        }
    }

    /// <summary>A body of <paramref name="length"/> octets, then <paramref name="next"/> (at once when empty).</summary>
    private void Body(long length, Unit next)
    {
        if (length == 0)
        {
            Expect(next, SizeOf(next));
            return;
        }

        _afterBody = next;
        _unit = Unit.Body;
        _remaining = length;
        _headerFill = 0;
    }

    private void Expect(Unit unit, int size, bool keep = false)
    {
        _unit = unit;
        _remaining = size;
        if (!keep)
        {
            _headerFill = 0;
        }

        if (unit == Unit.Done)
        {
            _remaining = 0;
        }
    }

    private static int SizeOf(Unit unit) => unit switch
    {
        Unit.Probe => 8,
        Unit.LibxcImage => ImageHeader.Size,
        Unit.LibxlRecord or Unit.LibxcRecord => Formats.RecordHeader.Size,
        _ => 0,
    };

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
