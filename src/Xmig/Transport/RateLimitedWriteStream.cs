using System.Diagnostics;

namespace Xmig.Transport;

/// <summary>
/// A write-only pass-through held to a rate (<c>--max-bandwidth</c>, QEMU's <c>max-bandwidth</c>): a token bucket on a
/// monotonic clock, refilled at the rate and holding at most 50 ms of it, so that no burst exceeds the rate by more than
/// that. A write larger than the bucket is passed on in bucket-sized slices, each once the bucket holds it.
/// </summary>
/// <remarks>The limit holds in every phase of a migration, stop-and-copy included, so that the link it protects is never
/// flooded; the downtime policy sees the limited bandwidth and plans with it.</remarks>
internal sealed class RateLimitedWriteStream : Stream
{
    private readonly Stream _inner;
    private readonly double _bytesPerSecond;
    private readonly double _capacity;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private double _tokens;
    private double _last;
    private long _written;

    public RateLimitedWriteStream(Stream inner, long bytesPerSecond)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytesPerSecond, 1);
        _inner = inner;
        _bytesPerSecond = bytesPerSecond;
        _capacity = Math.Max(4096, bytesPerSecond / 20.0);
        _tokens = _capacity;
    }

    public long BytesPerSecond => (long)_bytesPerSecond;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _written;

    public override long Position
    {
        get => _written;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var slice = (int)Math.Min(buffer.Length, _capacity);
            Take(slice);
            _inner.Write(buffer[..slice]);
            _written += slice;
            buffer = buffer[slice..];
        }
    }

    public override void Flush() => _inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Waits until the bucket holds <paramref name="count"/> octets, and takes them.</summary>
    private void Take(int count)
    {
        while (true)
        {
            var now = _clock.Elapsed.TotalSeconds;
            _tokens = Math.Min(_capacity, _tokens + ((now - _last) * _bytesPerSecond));
            _last = now;
            if (_tokens >= count)
            {
                _tokens -= count;
                return;
            }

            var wait = (count - _tokens) / _bytesPerSecond;
            Thread.Sleep(TimeSpan.FromSeconds(Math.Max(wait, 0.001)));
        }
    }
}
