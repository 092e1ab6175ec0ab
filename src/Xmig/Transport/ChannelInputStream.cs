using System.Net.Sockets;

namespace Xmig.Transport;

/// <summary>
/// The receiving half of a migration channel: any readable stream (a socket, a pipe, standard input) with a read
/// timeout that works on every kind, a count of the octets consumed (for error offsets), and a small look-ahead.
/// </summary>
/// <remarks>
/// A socket's own timeout is used directly (no copy). Streams that cannot time out (pipes) are read through one
/// pending asynchronous read into a pooled buffer: a timed-out read stays pending and the next read takes its
/// octets, so nothing is lost when a reader gives up waiting (legacy-stream.md §10.2: the heartbeat).
/// </remarks>
internal sealed class ChannelInputStream : Stream
{
    private const int BufferSize = 256 << 10;

    private readonly Stream _inner;
    private readonly bool _native;
    private readonly byte[] _buffer = new byte[BufferSize];
    private int _start;
    private int _end;
    private Task<int>? _pending;
    private int _timeout = Timeout.Infinite;
    private long _consumed;
    private bool _eof;

    public ChannelInputStream(Stream inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _native = inner is NetworkStream && inner.CanTimeout;
    }

    /// <summary>Octets already read from the peer and not yet consumed (never waits).</summary>
    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    /// <summary>
    /// Ends a wait for the peer with <see cref="OperationCanceledException"/> once cancelled. A socket is unblocked by
    /// <see cref="XlMigrationChannel.AbortOn"/> (it shuts the socket down); a pipe is read through the pending read, so
    /// the wait itself can end.
    /// </summary>
    public CancellationToken Cancellation { get; set; }

    /// <summary>The stream read from.</summary>
    internal Stream Inner => _inner;

    /// <summary>Octets handed to readers so far.</summary>
    public long Consumed => _consumed;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override bool CanTimeout => true;

    public override int ReadTimeout
    {
        get => _timeout;
        set
        {
            if (value is <= 0 and not Timeout.Infinite)
            {
                throw new ArgumentOutOfRangeException(nameof(value));
            }

            _timeout = value;
        }
    }

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _consumed;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return 0;
        }

        if (_end == _start && !_eof)
        {
            if (_pending is null && (_native || (_timeout == Timeout.Infinite && !Cancellation.CanBeCanceled)) && destination.Length >= 4096)
            {
                var direct = ReadDirect(destination);
                _consumed += direct;
                return direct;
            }

            Fill();
        }

        var n = Math.Min(destination.Length, _end - _start);
        _buffer.AsSpan(_start, n).CopyTo(destination);
        _start += n;
        _consumed += n;
        return n;
    }

    /// <summary>
    /// Looks at up to <paramref name="count"/> (at most 64 KiB) octets without consuming them; fewer only at the end of
    /// the stream. Bounded by <see cref="ReadTimeout"/> per read.
    /// </summary>
    public ReadOnlySpan<byte> Peek(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 64 << 10);
        while (_end - _start < count && !_eof)
        {
            Fill();
        }

        return _buffer.AsSpan(_start, Math.Min(count, _end - _start));
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int ReadDirect(Span<byte> destination)
    {
        try
        {
            if (_native)
            {
                _inner.ReadTimeout = _timeout;
            }

            var n = _inner.Read(destination);
            _eof = n == 0;
            return n;
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock })
        {
            throw TimedOut(e);
        }
    }

    /// <summary>Appends one read's worth of octets to the buffer (after compacting it), honouring the timeout.</summary>
    private void Fill()
    {
        if (_start > 0 && _pending is null)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            return;
        }

        int n;
        if (_native && _pending is null)
        {
            n = ReadDirect(_buffer.AsSpan(_end));
        }
        else
        {
            _pending ??= _inner.ReadAsync(_buffer, _end, _buffer.Length - _end);
            if (!_pending.Wait(_timeout, Cancellation))
            {
                throw TimedOut(null);
            }

            var task = _pending;
            _pending = null;
            n = task.GetAwaiter().GetResult();
            _eof = n == 0;
        }

        _end += n;
    }

    private IOException TimedOut(Exception? inner) => new(
        $"nothing arrived within {_timeout} ms (after {_consumed} octets)", new TimeoutException("read timed out", inner));

    protected override void Dispose(bool disposing)
    {
        if (disposing && _pending is { IsCompleted: false })
        {
            // A pending read of a pipe cannot be cancelled; it ends when the peer writes or closes.
            _pending = null;
        }

        base.Dispose(disposing);
    }
}
