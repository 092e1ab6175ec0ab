using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Xmig.Tests.Support;

/// <summary>What <see cref="FaultProxy"/> does when its point is reached.</summary>
internal enum FaultAction
{
    /// <summary>Forward everything (a reference run).</summary>
    None,

    /// <summary>Reset both connections (linger 0: RST, as a crashed peer's kernel or a middlebox does).</summary>
    Reset,

    /// <summary>Stop forwarding in both directions and keep both connections open (a hung peer or a black hole).</summary>
    Stall,

    /// <summary>SIGKILL <see cref="FaultProxy.Victim"/>, wait for it to die, then close both connections.</summary>
    Kill,
}

/// <summary>Which direction of the migration the fault point counts octets in.</summary>
internal enum FaultDirection
{
    /// <summary>The sender's octets: xl header, config, stream, GO.</summary>
    SenderToReceiver,

    /// <summary>The receiver's octets: banner, "ready to unpause", the report.</summary>
    ReceiverToSender,
}

/// <summary>
/// A TCP proxy on 127.0.0.1 between a migration sender and its receiver that injects one fault: it forwards both
/// directions until octet number <c>offset</c> (counted from 0) of <c>direction</c> arrives, and then, before
/// forwarding that octet, performs its <see cref="FaultAction"/>. Everything before the point was forwarded, so the
/// point is exact whatever the segmentation.
/// </summary>
internal sealed class FaultProxy : IDisposable
{
    private readonly Socket _listener;
    private readonly int _upstreamPort;
    private readonly FaultDirection _direction;
    private readonly long _offset;
    private readonly FaultAction _action;
    private readonly TaskCompletionSource _fired = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private readonly Task _run;
    private Socket? _downstream;
    private Socket? _upstream;
    private bool _stalled;
    private long _sent;
    private long _received;

    public FaultProxy(int upstreamPort, FaultDirection direction, long offset, FaultAction action)
    {
        _upstreamPort = upstreamPort;
        _direction = direction;
        _offset = offset;
        _action = action;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(1);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _run = Task.Run(Run);
    }

    /// <summary>Where the sender connects.</summary>
    public int Port { get; }

    /// <summary>The process a <see cref="FaultAction.Kill"/> kills (set before the sender connects).</summary>
    public Process? Victim { get; set; }

    /// <summary>Sender octets forwarded so far.</summary>
    public long SenderOctets => Interlocked.Read(ref _sent);

    /// <summary>Receiver octets forwarded so far.</summary>
    public long ReceiverOctets => Interlocked.Read(ref _received);

    /// <summary>Completes when the fault was injected.</summary>
    public Task Fired => _fired.Task;

    /// <summary>Completes when both directions ended (or the proxy stalled).</summary>
    public Task Completion => _run;

    public void Dispose()
    {
        _listener.Dispose();
        lock (_gate)
        {
            _downstream?.Dispose();
            _upstream?.Dispose();
        }

        _run.Wait(TimeSpan.FromSeconds(10));
    }

    private async Task Run()
    {
        Socket downstream;
        try
        {
            downstream = await _listener.AcceptAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return;
        }

        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        downstream.NoDelay = true;
        lock (_gate)
        {
            _downstream = downstream;
            _upstream = upstream;
        }

        try
        {
            await upstream.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _upstreamPort)).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            Close(reset: false);
            return;
        }

        var toReceiver = Pump(downstream, upstream, FaultDirection.SenderToReceiver);
        var toSender = Pump(upstream, downstream, FaultDirection.ReceiverToSender);
        await Task.WhenAll(toReceiver, toSender).ConfigureAwait(false);
    }

    private async Task Pump(Socket from, Socket to, FaultDirection direction)
    {
        var buffer = new byte[256 << 10];
        var counted = direction == _direction && _action != FaultAction.None;
        long forwarded = 0;
        try
        {
            while (true)
            {
                var limit = counted && !_fired.Task.IsCompleted ? _offset - forwarded : long.MaxValue;
                var n = await from.ReceiveAsync(buffer.AsMemory(0, (int)Math.Clamp(limit, 1, buffer.Length)), SocketFlags.None).ConfigureAwait(false);
                if (Volatile.Read(ref _stalled))
                {
                    return;
                }

                if (n == 0)
                {
                    break;
                }

                if (limit == 0)
                {
                    // Octet number _offset arrived: the fault happens before it is forwarded.
                    await Inject().ConfigureAwait(false);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None).ConfigureAwait(false);
                forwarded += n;
                if (direction == FaultDirection.SenderToReceiver)
                {
                    Interlocked.Add(ref _sent, n);
                }
                else
                {
                    Interlocked.Add(ref _received, n);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        // One side ended: a proxy passes that on by closing both.
        if (!Volatile.Read(ref _stalled))
        {
            Close(reset: false);
        }
    }

    private async Task Inject()
    {
        switch (_action)
        {
            case FaultAction.Reset:
                Close(reset: true);
                break;
            case FaultAction.Stall:
                Volatile.Write(ref _stalled, true);
                break;
            case FaultAction.Kill:
                if (Victim is { } victim)
                {
                    try
                    {
                        victim.Kill(); // SIGKILL
                        await victim.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                    }
                    catch (InvalidOperationException)
                    {
                        // already gone
                    }
                }

                Close(reset: false);
                break;
        }

        _fired.TrySetResult();
    }

    private void Close(bool reset)
    {
        lock (_gate)
        {
            foreach (var socket in new[] { _downstream, _upstream })
            {
                if (socket is null)
                {
                    continue;
                }

                try
                {
                    if (reset)
                    {
                        socket.LingerState = new LingerOption(true, 0);
                    }
                    else
                    {
                        socket.Shutdown(SocketShutdown.Both);
                    }
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }

                socket.Dispose();
            }
        }
    }
}
