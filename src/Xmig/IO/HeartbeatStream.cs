using System.Globalization;
using System.IO.Pipes;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Xmig.IO;

/// <summary>
/// An input whose every wait can be bounded by a heartbeat: once <see cref="Heartbeat"/> is set, a read that sees no
/// octet for that long throws <see cref="HeartbeatTimeoutException"/> (legacy-stream.md §9.2: Xen's receiver bounds
/// each wait after the first complete checkpoint by <c>HEARTBEAT_MS</c>; v2-stream.md §6.4 makes the same silence a
/// failover). A regular file never times out.
/// </summary>
/// <remarks>
/// How a wait is bounded depends on the transport: a file descriptor (a pipe, or a socket given as standard input)
/// is polled with <c>poll(2)</c>; a <see cref="NetworkStream"/> or <see cref="Socket"/> with <see cref="Socket.Poll(int, SelectMode)"/>;
/// another stream that supports read timeouts through <see cref="Stream.ReadTimeout"/>. Any other stream (in memory)
/// is read unbounded, as it never waits. The stream also records whether the source has ended (<see cref="ReachedEnd"/>).
/// </remarks>
public sealed partial class HeartbeatStream : Stream
{
    private const short PollIn = 0x001;
    private const int Eintr = 4;

    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly SafeHandle? _fd;
    private readonly Socket? _socket;

    public HeartbeatStream(Stream inner, bool leaveOpen = true)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _leaveOpen = leaveOpen;
        IsRegularFile = inner.CanSeek;
        switch (inner)
        {
            case NetworkStream network:
                _socket = network.Socket;
                break;
            case FileStream file when !IsRegularFile:
                _fd = file.SafeFileHandle;
                break;
            case PipeStream pipe:
                _fd = pipe.SafePipeHandle;
                break;
        }
    }

    /// <summary>Bound on every wait for the next octet; null waits indefinitely. Ignored for a regular file.</summary>
    public TimeSpan? Heartbeat { get; set; }

    /// <summary>
    /// Ends every read, and every wait for the next octet of a pipe or socket, with
    /// <see cref="OperationCanceledException"/> once cancelled (SIGINT, SIGTERM): a stalled input cannot hold a
    /// cancelled restore. Waits are polled in slices of <see cref="CancelSlice"/> while it can be cancelled.
    /// </summary>
    public CancellationToken Cancellation { get; set; }

    /// <summary>How often a wait looks at <see cref="Cancellation"/>.</summary>
    internal static readonly TimeSpan CancelSlice = TimeSpan.FromMilliseconds(100);

    /// <summary>True for a seekable source (a regular file, memory): its end is known and it never times out.</summary>
    public bool IsRegularFile { get; }

    /// <summary>True once a read returned no octet: the source has closed (EOF).</summary>
    public bool ReachedEnd { get; private set; }

    /// <summary>The wrapped stream.</summary>
    public Stream Inner => _inner;

    public override bool CanRead => true;

    public override bool CanSeek => _inner.CanSeek;

    public override bool CanWrite => false;

    public override long Length => _inner.Length;

    public override long Position
    {
        get => _inner.Position;
        set => _inner.Position = value;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        Cancellation.ThrowIfCancellationRequested();
        int n;
        if (!IsRegularFile && Heartbeat is { } heartbeat)
        {
            n = ReadBounded(buffer, heartbeat);
        }
        else if (!IsRegularFile && Cancellation.CanBeCanceled && CanPoll)
        {
            WaitUntilReadable(null);
            n = _inner.Read(buffer);
        }
        else
        {
            n = _inner.Read(buffer);
        }

        if (n == 0)
        {
            ReachedEnd = true;
        }

        return n;
    }

    public override long Seek(long offset, SeekOrigin origin) => _inner.Seek(offset, origin);

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_leaveOpen)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    private int ReadBounded(Span<byte> buffer, TimeSpan heartbeat)
    {
        var ms = (int)Math.Clamp(heartbeat.TotalMilliseconds, 1, int.MaxValue);
        if (CanPoll)
        {
            WaitUntilReadable(heartbeat);
            return _inner.Read(buffer);
        }

        if (_inner.CanTimeout)
        {
            var previous = _inner.ReadTimeout;
            try
            {
                _inner.ReadTimeout = ms;
                return _inner.Read(buffer);
            }
            catch (Exception e) when (e is TimeoutException
                || e is IOException { InnerException: SocketException { SocketErrorCode: SocketError.TimedOut } })
            {
                throw new HeartbeatTimeoutException(heartbeat, e);
            }
            finally
            {
                _inner.ReadTimeout = previous;
            }
        }

        return _inner.Read(buffer);
    }

    /// <summary>True when a wait can be bounded here: a socket, or a file descriptor on Linux or macOS.</summary>
    private bool CanPoll => _socket is not null
        || (_fd is not null && !_fd.IsInvalid && (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()));

    /// <summary>
    /// Waits until the input is readable (data, EOF, a hang-up or an error: the read reports which), for at most
    /// <paramref name="bound"/> (null: no bound), looking at <see cref="Cancellation"/> every <see cref="CancelSlice"/>.
    /// </summary>
    private void WaitUntilReadable(TimeSpan? bound)
    {
        var deadline = bound is { } b ? Environment.TickCount64 + (long)Math.Clamp(b.TotalMilliseconds, 1, int.MaxValue) : long.MaxValue;
        var cancellable = Cancellation.CanBeCanceled;
        while (true)
        {
            Cancellation.ThrowIfCancellationRequested();
            var left = deadline == long.MaxValue ? int.MaxValue : (int)Math.Max(0, deadline - Environment.TickCount64);
            var slice = cancellable ? Math.Min(left, (int)CancelSlice.TotalMilliseconds) : left;
            if (deadline == long.MaxValue && !cancellable)
            {
                slice = -1;
            }

            if (PollReadable(slice))
            {
                return;
            }

            if (deadline != long.MaxValue && Environment.TickCount64 >= deadline)
            {
                throw new HeartbeatTimeoutException(bound!.Value);
            }
        }
    }

    /// <summary>One wait of at most <paramref name="ms"/> (-1: indefinitely); true when a read would not block.</summary>
    private bool PollReadable(int ms)
    {
        if (_socket is not null)
        {
            // True when data is waiting, or the peer closed or reset the connection (the read then says which).
            return _socket.Poll(ms < 0 ? -1 : (ms > int.MaxValue / 1000 ? int.MaxValue : ms * 1000), SelectMode.SelectRead);
        }

        // poll(2); EINTR waits again (the caller re-checks the deadline), another error lets the read report it.
        var poll = new PollFd { Fd = (int)_fd!.DangerousGetHandle(), Events = PollIn };
        var result = Poll(ref poll, 1, ms);
        return result > 0 || (result < 0 && Marshal.GetLastPInvokeError() != Eintr);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, nuint count, int timeout);
}

/// <summary>Nothing arrived within the heartbeat (legacy-stream.md §9.2: <c>ETIMEDOUT</c>).</summary>
public sealed class HeartbeatTimeoutException : IOException
{
    public HeartbeatTimeoutException(TimeSpan heartbeat, Exception? inner = null)
        : base(string.Create(CultureInfo.InvariantCulture, $"nothing arrived within the {heartbeat.TotalMilliseconds:0} ms heartbeat"), inner)
    {
        Heartbeat = heartbeat;
    }

    /// <summary>The bound that expired.</summary>
    public TimeSpan Heartbeat { get; }
}
