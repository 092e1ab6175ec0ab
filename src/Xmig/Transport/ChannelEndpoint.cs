using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Xmig.Transport;

/// <summary>TCP ends of a migration channel: <c>HOST:PORT</c> to connect to, <c>ADDR:PORT</c> to listen on.</summary>
internal static class ChannelEndpoint
{
    /// <summary>Parses <c>HOST:PORT</c> (<c>[::1]:PORT</c> for IPv6). False with a reason when it is not one.</summary>
    public static bool TryParse(string text, out string host, out int port, out string error)
    {
        host = "";
        port = 0;
        error = "";
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            error = $"\"{text}\" is not HOST:PORT";
            return false;
        }

        host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > 65535)
        {
            error = $"\"{text}\": port \"{text[(colon + 1)..]}\" is not 0 … 65535";
            return false;
        }

        return true;
    }

    /// <summary>Connects to <paramref name="host"/>:<paramref name="port"/> within <paramref name="timeout"/>.</summary>
    public static Socket Connect(string host, int port, TimeSpan timeout)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            socket.ConnectAsync(host, port, cts.Token).AsTask().GetAwaiter().GetResult();
            return socket;
        }
        catch (OperationCanceledException e)
        {
            socket.Dispose();
            throw new IOException($"could not connect to {host}:{port} within {timeout.TotalSeconds:0.#} s", e);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"could not connect to {host}:{port}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Listens on exactly <paramref name="address"/>:<paramref name="port"/> (0 picks a free port; no other address is
    /// bound), tells <paramref name="bound"/> the address, accepts one connection and stops listening, so one
    /// migration is taken at a time.
    /// </summary>
    /// <remarks>Cancelling <paramref name="cancellationToken"/> (a signal) stops waiting with <see cref="OperationCanceledException"/>.</remarks>
    public static Socket AcceptOne(string address, int port, Action<IPEndPoint> bound, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (!IPAddress.TryParse(address, out var ip))
        {
            throw new ArgumentException($"--listen: \"{address}\" is not an IP address");
        }

        using var listener = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(ip, port));
        }
        catch (SocketException e)
        {
            throw new IOException($"cannot listen on {address}:{port}: {e.Message}", e);
        }

        listener.Listen(1);
        bound((IPEndPoint)listener.LocalEndPoint!);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            var socket = listener.AcceptAsync(cts.Token).AsTask().GetAwaiter().GetResult();
            socket.NoDelay = true;
            return socket;
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new IOException($"no migration sender connected to {address}:{port} within {timeout.TotalSeconds:0.#} s", e);
        }
    }
}
