using System.Buffers;
using System.Buffers.Binary;

namespace Xmig.Formats;

/// <summary>
/// A pooled write buffer over any <see cref="Stream"/>. It counts every octet written so that writers can
/// pad records to the stream-relative 8-octet boundary, and hands out spans so that callers encode in place.
/// </summary>
public sealed class OutputBuffer : IDisposable
{
    public const int DefaultSize = 1 << 20;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private byte[] _buffer;
    private int _used;
    private long _position;

    public OutputBuffer(Stream stream, int size = DefaultSize, bool leaveOpen = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        _buffer = ArrayPool<byte>.Shared.Rent(size);
    }

    /// <summary>Octets written so far (buffered or flushed).</summary>
    public long Position => _position;

    public Stream BaseStream => _stream;

    /// <summary>Returns a writable span of at least <paramref name="size"/> octets (contents undefined).</summary>
    public Span<byte> GetSpan(int size)
    {
        if (_buffer.Length - _used < size)
        {
            FlushBuffer();
            if (_buffer.Length < size)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = ArrayPool<byte>.Shared.Rent(size);
            }
        }

        return _buffer.AsSpan(_used, size);
    }

    public void Advance(int count)
    {
        _used += count;
        _position += count;
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        if (data.Length > _buffer.Length / 2)
        {
            FlushBuffer();
            _stream.Write(data);
            _position += data.Length;
            return;
        }

        data.CopyTo(GetSpan(data.Length));
        Advance(data.Length);
    }

    public void WriteUInt32LittleEndian(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(GetSpan(4), value);
        Advance(4);
    }

    public void WriteInt32LittleEndian(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(GetSpan(4), value);
        Advance(4);
    }

    public void WriteUInt64LittleEndian(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(GetSpan(8), value);
        Advance(8);
    }

    public void WriteUInt16LittleEndian(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(GetSpan(2), value);
        Advance(2);
    }

    /// <summary>Writes <paramref name="count"/> zero octets.</summary>
    public void WriteZeros(int count)
    {
        if (count == 0)
        {
            return;
        }

        GetSpan(count).Clear();
        Advance(count);
    }

    /// <summary>Copies <paramref name="count"/> octets from <paramref name="source"/>; returns the number copied.</summary>
    public long CopyFrom(InputBuffer source, long count)
    {
        long copied = 0;
        while (copied < count)
        {
            var want = (int)Math.Min(count - copied, 1 << 20);
            var n = source.ReadInto(GetSpan(want)[..want]);
            Advance(n);
            copied += n;
            if (n < want)
            {
                break;
            }
        }

        return copied;
    }

    /// <summary>Pushes buffered octets to the stream and flushes it.</summary>
    public void Flush()
    {
        FlushBuffer();
        _stream.Flush();
    }

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

    private void FlushBuffer()
    {
        if (_used > 0)
        {
            _stream.Write(_buffer, 0, _used);
            _used = 0;
        }
    }
}
