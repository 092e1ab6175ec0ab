using System.Buffers;
using System.Diagnostics;

namespace Xmig.Formats;

/// <summary>
/// A forward-only, pooled read buffer over any <see cref="Stream"/>, seekable or not (a pipe, a socket).
/// It tracks the absolute position of every octet it hands out, lets a reader look ahead without consuming
/// (so that one layer can stop on octets that belong to the layer above), and grows only on request, up to
/// a limit the caller has already checked against the stream's declared lengths.
/// </summary>
/// <remarks>
/// Spans returned by <see cref="Peek"/> and <see cref="Read"/> are valid until the next call on this buffer.
/// Nothing is allocated per read in steady state.
/// </remarks>
public sealed class InputBuffer : IDisposable
{
    /// <summary>Default buffer: one full page batch (1024 pages) plus its pfn array and headers.</summary>
    public const int DefaultSize = (4 << 20) + (64 << 10);

    /// <summary>The largest contiguous span a reader may ask for (the libxc record limit plus a header).</summary>
    public const int MaxContiguous = 0x0800_0000 + 64;

    /// <summary>How far past a request a fill may read: large enough for few syscalls, small enough to compact cheaply.</summary>
    private const int ReadAhead = 256 << 10;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private long _position;
    private bool _eof;

    public InputBuffer(Stream stream, int size = DefaultSize, bool leaveOpen = true, long position = 0)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 4096);
        _stream = stream;
        _leaveOpen = leaveOpen;
        _buffer = ArrayPool<byte>.Shared.Rent(size);
        _position = position;
    }

    /// <summary>Absolute offset of the next octet to be consumed.</summary>
    public long Position => _position;

    /// <summary>Octets already buffered and not consumed.</summary>
    public int Buffered => _end - _start;

    /// <summary>The underlying stream.</summary>
    public Stream BaseStream => _stream;

    /// <summary>
    /// Makes at least <paramref name="count"/> octets available, unless the stream ends first.
    /// Returns the number available (less than <paramref name="count"/> only at end of stream).
    /// </summary>
    public int Ensure(int count)
    {
        if (_end - _start >= count)
        {
            return _end - _start;
        }

        return Fill(count);
    }

    /// <summary>Looks at up to <paramref name="count"/> octets without consuming them (fewer at end of stream).</summary>
    public ReadOnlySpan<byte> Peek(int count)
    {
        var available = Ensure(count);
        return _buffer.AsSpan(_start, Math.Min(available, count));
    }

    /// <summary>
    /// Consumes exactly <paramref name="count"/> octets and returns them, or returns false (consuming nothing)
    /// when the stream ends first; <paramref name="available"/> then tells how many there were.
    /// </summary>
    public bool TryRead(int count, out ReadOnlySpan<byte> data, out int available)
    {
        available = Ensure(count);
        if (available < count)
        {
            data = default;
            return false;
        }

        data = _buffer.AsSpan(_start, count);
        _start += count;
        _position += count;
        available = count;
        return true;
    }

    /// <summary>Consumes exactly <paramref name="count"/> octets; throws <see cref="EndOfStreamException"/> if short.</summary>
    public ReadOnlySpan<byte> Read(int count)
    {
        if (!TryRead(count, out var data, out var available))
        {
            throw new EndOfStreamException($"needed {count} octets at offset 0x{_position:X}, only {available} left");
        }

        return data;
    }

    /// <summary>Consumes octets already looked at with <see cref="Peek"/>.</summary>
    public void Advance(int count)
    {
        Debug.Assert(count <= _end - _start);
        _start += count;
        _position += count;
    }

    /// <summary>
    /// Copies exactly <paramref name="destination"/>.Length octets into caller memory (for example straight into
    /// guest memory). Large reads bypass the buffer. Returns the number copied (short only at end of stream).
    /// </summary>
    public int ReadInto(Span<byte> destination)
    {
        var copied = 0;
        var buffered = _end - _start;
        if (buffered > 0)
        {
            var n = Math.Min(buffered, destination.Length);
            _buffer.AsSpan(_start, n).CopyTo(destination);
            _start += n;
            copied = n;
        }

        while (copied < destination.Length && !_eof)
        {
            var remaining = destination.Length - copied;
            if (remaining >= _buffer.Length / 2)
            {
                var n = _stream.Read(destination[copied..]);
                if (n == 0)
                {
                    _eof = true;
                    break;
                }

                copied += n;
            }
            else
            {
                var available = Ensure(remaining);
                var n = Math.Min(available, remaining);
                _buffer.AsSpan(_start, n).CopyTo(destination[copied..]);
                _start += n;
                copied += n;
                if (n < remaining)
                {
                    break;
                }
            }
        }

        _position += copied;
        return copied;
    }

    /// <summary>
    /// Skips <paramref name="count"/> octets, seeking when the stream allows it and the skip is long.
    /// Returns the number skipped (short only at end of stream).
    /// </summary>
    public long Skip(long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long skipped = Math.Min(count, _end - _start);
        _start += (int)skipped;
        _position += skipped;
        var remaining = count - skipped;
        if (remaining == 0)
        {
            return skipped;
        }

        if (_stream.CanSeek && remaining > _buffer.Length)
        {
            var here = _stream.Position;
            var length = _stream.Length;
            var target = Math.Min(here + remaining, length);
            _stream.Position = target;
            var n = target - here;
            _position += n;
            skipped += n;
            if (n < remaining)
            {
                _eof = true;
            }

            return skipped;
        }

        while (remaining > 0)
        {
            var available = Ensure((int)Math.Min(remaining, _buffer.Length));
            if (available == 0)
            {
                break;
            }

            var n = (int)Math.Min(available, remaining);
            Advance(n);
            skipped += n;
            remaining -= n;
        }

        return skipped;
    }

    /// <summary>Copies <paramref name="count"/> octets to <paramref name="destination"/>; returns the number copied.</summary>
    public long CopyTo(Stream destination, long count)
    {
        long copied = 0;
        while (copied < count)
        {
            var available = Ensure((int)Math.Min(count - copied, _buffer.Length));
            if (available == 0)
            {
                break;
            }

            var n = (int)Math.Min(available, count - copied);
            destination.Write(_buffer, _start, n);
            Advance(n);
            copied += n;
        }

        return copied;
    }

    /// <summary>True when no octet is left (this may block until the writer closes a pipe).</summary>
    public bool AtEnd => Ensure(1) == 0;

    /// <summary>True once a read of the underlying stream returned no octet (the source ended).</summary>
    public bool ReachedEnd => _eof;

    /// <summary>
    /// True when the end of the input can be looked for without waiting on a live sender: the source is seekable (a
    /// regular file) or has already ended. On a pipe or socket that stays open, looking further would block.
    /// </summary>
    public bool EndIsKnowable => _eof || _stream.CanSeek;

    /// <summary>
    /// True when octets follow the current position, as far as can be known without waiting (v2-stream.md §2: nothing
    /// after the outermost END is read): on a file, reads to find out; on a pipe or socket, only octets already
    /// received count, so a sender that keeps its connection open after END is not waited for.
    /// </summary>
    public bool HasTrailingOctets() => _end > _start || (EndIsKnowable && !AtEnd);

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }

    private int Fill(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxContiguous);
        if (count > _buffer.Length)
        {
            Grow(count);
        }
        else if (_buffer.Length - _start < count)
        {
            Compact();
        }

        while (_end - _start < count && !_eof)
        {
            // Ask for what is missing, and at least ReadAhead: one large read per record keeps pipe throughput high,
            // while reading no further than ReadAhead past the request keeps Compact's copy of the unread tail small
            // (reading to the end of the buffer made it copy about half of every page record a second time).
            var want = Math.Max(count - (_end - _start), ReadAhead);
            var n = _stream.Read(_buffer, _end, Math.Min(want, _buffer.Length - _end));
            if (n == 0)
            {
                _eof = true;
                break;
            }

            _end += n;
        }

        return _end - _start;
    }

    private void Compact()
    {
        var live = _end - _start;
        if (live > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, live);
        }

        _start = 0;
        _end = live;
    }

    private void Grow(int count)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(count);
        var live = _end - _start;
        Buffer.BlockCopy(_buffer, _start, bigger, 0, live);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
        _start = 0;
        _end = live;
    }
}
