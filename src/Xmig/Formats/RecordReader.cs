using System.Globalization;

namespace Xmig.Formats;

/// <summary>
/// Record mechanics shared by <see cref="Libxc.LibxcReader"/> and <see cref="Libxl.LibxlReader"/>: a pull
/// reader that reads one record header, then lets the caller consume the body in one of several ways (read it
/// into a span, read a prefix, read it into caller memory, skip it, copy it). Whatever part of a body the
/// caller leaves is skipped when the next header is read. Padding is consumed with the last body octet.
/// </summary>
/// <remarks>
/// Truncation anywhere, and every structural error, surfaces as <see cref="StreamFormatException"/> naming the
/// record, its index in its layer and the offset where it starts. I/O errors stay <see cref="IOException"/>.
/// </remarks>
public abstract class RecordReader
{
    private long _bodyRemaining;
    private int _paddingPending;
    private long _nextIndex;

    private protected RecordReader(InputBuffer input, long? streamStart)
    {
        ArgumentNullException.ThrowIfNull(input);
        Input = input;
        StreamStart = streamStart ?? input.Position;
        RecordIndex = -1;
        RecordOffset = -1;
    }

    /// <summary>The buffer this reader consumes (shared with the other layer when streams are nested).</summary>
    public InputBuffer Input { get; }

    /// <summary>Absolute offset of the first octet of this layer's stream (alignment is relative to it).</summary>
    public long StreamStart { get; }

    /// <summary>Index (0-based, within this layer) of the current record; -1 before the first one.</summary>
    public long RecordIndex { get; private set; }

    /// <summary>Absolute offset of the current record's header.</summary>
    public long RecordOffset { get; private set; }

    /// <summary>The current record's header.</summary>
    public RecordHeader Header { get; private set; }

    /// <summary>Body octets of the current record not consumed yet.</summary>
    public long BodyRemaining => _bodyRemaining;

    /// <summary>Records read so far in this layer.</summary>
    public long RecordCount => _nextIndex;

    /// <summary>
    /// When set, non-zero padding octets are rejected (as <c>verify-stream-v2</c> does). The reference
    /// readers ignore padding, so restore leaves this off.
    /// </summary>
    public bool StrictPadding { get; set; }

    /// <summary>Spec name of a record type of this layer (<c>PAGE_DATA</c>, <c>EMULATOR_CONTEXT</c>).</summary>
    public abstract string RecordName(uint type);

    /// <summary>Name of this layer for messages (<c>libxc</c>, <c>libxl</c>).</summary>
    private protected abstract string LayerName { get; }

    /// <summary>Largest body length accepted in a header at all.</summary>
    private protected abstract long MaxRecordLength { get; }

    /// <summary>Largest body that <see cref="ReadBody"/> will hold in memory for this type.</summary>
    private protected abstract int MaxBodyInMemory(uint type);

    /// <summary>
    /// Reads the next record header, first skipping whatever is left of the current body. Returns false at a
    /// clean end of stream (no octet left); throws if the stream ends inside the header.
    /// </summary>
    public bool TryReadRecordHeader(out RecordHeader header)
    {
        FinishBody();
        var offset = Input.Position;
        if (!Input.TryRead(RecordHeader.Size, out var bytes, out var available))
        {
            if (available == 0)
            {
                header = default;
                return false;
            }

            throw new StreamFormatException(
                LayerName + " record", _nextIndex, offset,
                Invariant($"truncated record header: {available} of {RecordHeader.Size} octets"));
        }

        header = RecordHeader.Read(bytes);
        Header = header;
        RecordIndex = _nextIndex++;
        RecordOffset = offset;
        _bodyRemaining = header.Length;
        _paddingPending = header.PaddingLength;
        if (header.Length > MaxRecordLength)
        {
            _bodyRemaining = 0;
            _paddingPending = 0;
            throw Error(Invariant($"length 0x{header.Length:X} exceeds the record limit 0x{MaxRecordLength:X}"));
        }

        return true;
    }

    /// <summary>Reads the rest of the current body (after checking it against the per-type limit).</summary>
    /// <returns>A span valid until the next call on this reader or its buffer.</returns>
    public ReadOnlySpan<byte> ReadBody()
    {
        var length = _bodyRemaining;
        var limit = MaxBodyInMemory(Header.Type);
        if (length > limit)
        {
            throw Error(Invariant($"length {Header.Length} exceeds the in-memory limit {limit} for this record type"));
        }

        var n = (int)length;
        var total = n + _paddingPending;
        if (!Input.TryRead(total, out var data, out var available))
        {
            throw TruncatedBody(available);
        }

        _bodyRemaining = 0;
        var padding = _paddingPending;
        _paddingPending = 0;
        if (StrictPadding && padding > 0)
        {
            CheckPadding(data.Slice(n, padding));
        }

        return data[..n];
    }

    /// <summary>
    /// Looks at the next <paramref name="count"/> body octets without consuming them; throws if the stream ends
    /// first. The span is valid until the next call on this reader or its buffer.
    /// </summary>
    public ReadOnlySpan<byte> PeekBody(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _bodyRemaining)
        {
            throw new InvalidOperationException("peek beyond the record body");
        }

        var data = Input.Peek(count);
        if (data.Length < count)
        {
            throw TruncatedBody(data.Length);
        }

        return data;
    }

    /// <summary>Reads the next <paramref name="count"/> octets of the body (not the padding).</summary>
    /// <returns>A span valid until the next call on this reader or its buffer.</returns>
    public ReadOnlySpan<byte> ReadBodyPrefix(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _bodyRemaining)
        {
            throw new InvalidOperationException("read beyond the record body");
        }

        if (count == _bodyRemaining)
        {
            return ReadBody();
        }

        if (!Input.TryRead(count, out var data, out var available))
        {
            throw TruncatedBody(available);
        }

        _bodyRemaining -= count;
        return data;
    }

    /// <summary>Reads exactly <paramref name="destination"/>.Length body octets into caller memory.</summary>
    public void ReadBodyInto(Span<byte> destination)
    {
        if (destination.Length > _bodyRemaining)
        {
            throw new InvalidOperationException("read beyond the record body");
        }

        var n = Input.ReadInto(destination);
        _bodyRemaining -= n;
        if (n < destination.Length)
        {
            throw TruncatedBody((int)Math.Min(int.MaxValue, n));
        }

        if (_bodyRemaining == 0)
        {
            ConsumePadding();
        }
    }

    /// <summary>Skips the rest of the body and its padding (seeking on a seekable stream when it pays).</summary>
    public void SkipBody()
    {
        if (_bodyRemaining > 0)
        {
            var want = _bodyRemaining;
            var n = Input.Skip(want);
            _bodyRemaining -= n;
            if (n < want)
            {
                throw TruncatedBody((int)Math.Min(int.MaxValue, n));
            }
        }

        ConsumePadding();
    }

    /// <summary>Copies the rest of the body to <paramref name="destination"/> and consumes the padding.</summary>
    public void CopyBodyTo(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var want = _bodyRemaining;
        var n = Input.CopyTo(destination, want);
        _bodyRemaining -= n;
        if (n < want)
        {
            throw TruncatedBody((int)Math.Min(int.MaxValue, n));
        }

        ConsumePadding();
    }

    /// <summary>Copies the rest of the body into <paramref name="destination"/> and consumes the padding.</summary>
    public void CopyBodyTo(OutputBuffer destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var want = _bodyRemaining;
        var n = destination.CopyFrom(Input, want);
        _bodyRemaining -= n;
        if (n < want)
        {
            throw TruncatedBody((int)Math.Min(int.MaxValue, n));
        }

        ConsumePadding();
    }

    /// <summary>An exception naming the current record, to throw for a bad body.</summary>
    public StreamFormatException Error(string detail) =>
        new(RecordName(Header.Type), RecordIndex, RecordOffset, detail);

    /// <summary>Skips whatever is left of the current record (body and padding).</summary>
    public void FinishBody()
    {
        if (_bodyRemaining > 0 || _paddingPending > 0)
        {
            SkipBody();
        }
    }

    private protected static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private void ConsumePadding()
    {
        if (_paddingPending == 0)
        {
            return;
        }

        var padding = _paddingPending;
        if (!Input.TryRead(padding, out var data, out var available))
        {
            throw Error(Invariant($"truncated: padding needs {padding} octets, only {available} left"));
        }

        _paddingPending = 0;
        if (StrictPadding)
        {
            CheckPadding(data);
        }
    }

    private void CheckPadding(ReadOnlySpan<byte> padding)
    {
        var bad = padding.IndexOfAnyExcept((byte)0);
        if (bad >= 0)
        {
            throw Error(Invariant($"non-zero padding octet 0x{padding[bad]:X2} at body offset {Header.Length + bad}"));
        }
    }

    private StreamFormatException TruncatedBody(int available) =>
        Error(Invariant($"truncated: body needs {_bodyRemaining} more octets, only {available} left"));
}
