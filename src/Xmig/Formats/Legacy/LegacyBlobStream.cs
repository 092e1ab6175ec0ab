namespace Xmig.Formats.Legacy;

/// <summary>The current blob of a <see cref="LegacyStreamReader"/> as a read-only stream.</summary>
internal sealed class LegacyBlobStream(LegacyStreamReader reader) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => reader.BlobLength >= 0 ? reader.BlobLength : throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => reader.ReadBlob(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer) => reader.ReadBlob(buffer);

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
