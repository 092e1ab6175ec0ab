namespace Xmig.Tests.Support;

/// <summary>A read-only, non-seekable stream over a byte array whose reads are cut where a subclass says, like a pipe.</summary>
internal abstract class ChunkedReadStream(byte[] data) : Stream
{
    private int _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = Math.Min(Math.Min(buffer.Length, NextChunk(_position)), data.Length - _position);
        data.AsSpan(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    /// <summary>The most octets the read at <paramref name="position"/> may return (at least 1).</summary>
    protected abstract int NextChunk(int position);

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Returns at most <c>chunk</c> octets per read (1 by default).</summary>
internal sealed class TrickleStream(byte[] data, int chunk = 1) : ChunkedReadStream(data)
{
    protected override int NextChunk(int position) => chunk;
}

/// <summary>Splits the data into two reads at <c>split</c> (then the rest), to test every split point.</summary>
internal sealed class SplitStream(byte[] data, int split) : ChunkedReadStream(data)
{
    protected override int NextChunk(int position) => position < split ? split - position : int.MaxValue;
}
