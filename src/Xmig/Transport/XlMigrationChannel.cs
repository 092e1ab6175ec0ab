using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Xmig.Transport;

/// <summary>Which end of the channel this is: it decides what the peer is called in errors.</summary>
internal enum XlChannelRole
{
    /// <summary><c>xl migrate</c>: writes the stream, reads the receiver's messages.</summary>
    Sender,

    /// <summary><c>xl migrate-receive</c>: writes the banner and acknowledgements, reads the stream.</summary>
    Receiver,
}

/// <summary>
/// Both ends of xl's migration channel (legacy-stream.md §3.2; v2-stream.md §5–§6): the fixed messages of
/// <see cref="XlMigrationMessages"/> around the stream, over any pair of byte streams (a TCP connection, or
/// standard input and output under ssh).
/// </summary>
/// <remarks>
/// Every expected message is read with a bound on its length and a timeout, and compared octet by octet as it
/// arrives, so a peer that speaks something else is named after its first wrong octet, not after the length
/// of the message has been waited for. A failure is one <see cref="XlChannelException"/> line: which message
/// was expected, what arrived instead, and at which offset of the peer's octets.
/// </remarks>
internal sealed class XlMigrationChannel : IDisposable
{
    private readonly Stream _output;
    private readonly string _peer;
    private readonly IDisposable? _owner;

    public XlMigrationChannel(Stream input, Stream output, XlChannelRole role, IDisposable? owner = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        Input = input as ChannelInputStream ?? new ChannelInputStream(input);
        _output = output;
        Role = role;
        _peer = role == XlChannelRole.Sender ? "migration receiver" : "migration sender";
        _owner = owner;
    }

    public XlChannelRole Role { get; }

    /// <summary>What the peer sends: the receiver's stream is read from here.</summary>
    public ChannelInputStream Input { get; }

    /// <summary>Where this end writes: the sender's stream goes here (flush before waiting for an answer).</summary>
    public Stream Output => _output;

    // ---- messages 1, 3, 4, 5, 6 ----

    /// <summary>Message 1 (receiver).</summary>
    public void SendBanner() => Send(XlMigrationMessages.Banner, "the banner");

    /// <summary>Message 1 (sender): the receiver's banner, before anything is sent.</summary>
    public void ExpectBanner(TimeSpan timeout) => Expect(XlMigrationMessages.Banner, XlMigrationMessages.BannerName, timeout);

    /// <summary>Message 3 (receiver): the domain was restored, paused.</summary>
    public void SendReady() => Send(XlMigrationMessages.ReceiverReady, "the ready message");

    /// <summary>Message 3 (sender), after the whole stream was written.</summary>
    public void ExpectReady(TimeSpan timeout) => Expect(XlMigrationMessages.ReceiverReady, XlMigrationMessages.ReadyName, timeout);

    /// <summary>Message 4 (sender): the point of no return.</summary>
    public void SendPermissionToGo() => Send(XlMigrationMessages.PermissionToGo, "the GO message");

    /// <summary>Message 4 (receiver), on the stream's channel right after the stream.</summary>
    public void ExpectPermissionToGo(TimeSpan timeout) => Expect(XlMigrationMessages.PermissionToGo, XlMigrationMessages.GoName, timeout);

    /// <summary>Message 5 (receiver): the report and its status octet (0: the copy runs); message 6 when not 0.</summary>
    /// <summary>Replication: xmig's detach instead of GO (the secondary discards its copy).</summary>
    public void SendDetach() => Send(XlMigrationMessages.Detach, "the detach message");

    /// <summary>Replication: message 4 or xmig's detach; true for GO, false for detach.</summary>
    public bool ExpectGoOrDetach(TimeSpan timeout)
    {
        var offset = Input.Consumed;
        Span<byte> first = stackalloc byte[1];
        if (ReadSome(first, XlMigrationMessages.GoOrDetachName, offset, 0, timeout) == 0)
        {
            throw Closed(XlMigrationMessages.GoOrDetachName, offset, []);
        }

        var go = first[0] == XlMigrationMessages.PermissionToGo[0];
        var expected = go ? XlMigrationMessages.PermissionToGo : XlMigrationMessages.Detach;
        if (first[0] != expected[0])
        {
            throw new XlChannelException(Invariant(
                $"xl migration channel: expected {XlMigrationMessages.GoOrDetachName} from the {_peer} at offset {offset}, got \"{Printable(first)}\""));
        }

        Span<byte> rest = stackalloc byte[expected.Length - 1];
        for (var n = 0; n < rest.Length; n++)
        {
            if (ReadSome(rest.Slice(n, 1), XlMigrationMessages.GoOrDetachName, offset, n + 1, timeout) == 0)
            {
                throw Closed(XlMigrationMessages.GoOrDetachName, offset, expected[..(n + 1)]);
            }

            if (rest[n] != expected[n + 1])
            {
                throw new XlChannelException(Invariant(
                    $"xl migration channel: expected {XlMigrationMessages.GoOrDetachName} from the {_peer} at offset {offset}, got \"{Printable(rest[..(n + 1)])}\" after \"{Printable(expected[..1])}\" (differs at offset {offset + n + 1})"));
            }
        }

        return go;
    }

    public void SendReport(byte status)
    {
        Span<byte> message = stackalloc byte[XlMigrationMessages.Report.Length + 1];
        XlMigrationMessages.Report.CopyTo(message);
        message[^1] = status;
        if (status != 0)
        {
            var all = new byte[message.Length + XlMigrationMessages.PermissionToGo.Length];
            message.CopyTo(all);
            XlMigrationMessages.PermissionToGo.CopyTo(all.AsSpan(message.Length));
            Send(all, "the success/failure report");
            return;
        }

        Send(message, "the success/failure report");
    }

    /// <summary>Message 5 (sender): returns the status octet (0: the receiver's copy runs).</summary>
    public byte ReadReport(TimeSpan timeout)
    {
        Expect(XlMigrationMessages.Report, XlMigrationMessages.ReportName, timeout);
        var offset = Input.Consumed;
        Span<byte> status = stackalloc byte[1];
        if (ReadSome(status, XlMigrationMessages.StatusName, offset, 0, timeout) == 0)
        {
            throw Closed(XlMigrationMessages.StatusName, offset, []);
        }

        return status[0];
    }

    /// <summary>Message 6 (sender), after a non-zero status: the receiver destroyed its copy.</summary>
    public void ExpectPermissionToResume(TimeSpan timeout) => Expect(XlMigrationMessages.PermissionToGo, XlMigrationMessages.ResumeName, timeout);

    /// <summary>
    /// Bound on a blocked write to the peer (a receiver that stopped reading): set on a socket's send timeout. Streams
    /// that cannot time out (pipes) are not bounded.
    /// </summary>
    public TimeSpan WriteTimeout
    {
        set
        {
            if (_output is NetworkStream network)
            {
                network.WriteTimeout = value == Timeout.InfiniteTimeSpan ? Timeout.Infinite : (int)Math.Clamp(value.TotalMilliseconds, 1, int.MaxValue);
            }
        }
    }

    /// <summary>
    /// Until the returned registration is disposed, cancelling <paramref name="cancellationToken"/> aborts the channel:
    /// its sockets are shut down (which ends a read or write blocked on them) and a wait on a pipe ends. Reads then fail
    /// with <see cref="OperationCanceledException"/> or an I/O error; the caller looks at the token to say why.
    /// </summary>
    public IDisposable AbortOn(CancellationToken cancellationToken)
    {
        Input.Cancellation = cancellationToken;
        return new Aborting(this, cancellationToken.Register(Abort));
    }

    /// <summary>Shuts the channel's sockets down (both ways); never throws.</summary>
    public void Abort()
    {
        foreach (var stream in new[] { Input.Inner, _output })
        {
            if (stream is NetworkStream network)
            {
                try
                {
                    network.Socket.Shutdown(SocketShutdown.Both);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }
            }
        }
    }

    /// <summary>Flushes what this end wrote.</summary>
    public void Flush() => _output.Flush();

    public void Dispose()
    {
        Input.Dispose();
        _owner?.Dispose();
    }

    // ---- reading and writing ----

    private void Send(ReadOnlySpan<byte> message, string what)
    {
        try
        {
            _output.Write(message);
            _output.Flush();
        }
        catch (IOException e)
        {
            throw new XlChannelException($"xl migration channel: could not send {what} to the {_peer}: {e.Message}", e) { PeerGone = true };
        }
        catch (ObjectDisposedException e)
        {
            throw new XlChannelException($"xl migration channel: could not send {what} to the {_peer}: the channel is closed", e) { PeerGone = true };
        }
    }

    /// <summary>Reads <paramref name="expected"/>, failing at the first octet that differs.</summary>
    private void Expect(ReadOnlySpan<byte> expected, string what, TimeSpan timeout)
    {
        var offset = Input.Consumed;
        Span<byte> got = stackalloc byte[expected.Length];
        for (var n = 0; n < expected.Length; n++)
        {
            if (ReadSome(got.Slice(n, 1), what, offset, n, timeout, got[..n]) == 0)
            {
                throw Closed(what, offset, got[..n]);
            }

            if (got[n] != expected[n])
            {
                // Show what arrived, with whatever else is already here (never wait for more).
                var extra = Input.Buffered;
                var shown = new byte[Math.Min(64, n + 1 + extra.Length)];
                var head = Math.Min(shown.Length, n + 1);
                got[..head].CopyTo(shown);
                extra[..(shown.Length - head)].CopyTo(shown.AsSpan(head));
                throw new XlChannelException(Invariant(
                    $"xl migration channel: expected {what} from the {_peer} at offset {offset}, got \"{Printable(shown)}\" (differs at offset {offset + n})"));
            }
        }
    }

    private int ReadSome(Span<byte> destination, string what, long offset, int have, TimeSpan timeout, ReadOnlySpan<byte> sofar = default)
    {
        Input.ReadTimeout = timeout == Timeout.InfiniteTimeSpan ? Timeout.Infinite : (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
        try
        {
            return Input.Read(destination);
        }
        catch (IOException e) when (e.InnerException is TimeoutException)
        {
            throw new XlChannelException(Invariant(
                $"xl migration channel: expected {what} from the {_peer} at offset {offset}, but nothing arrived within {timeout.TotalSeconds:0.###} s ({have} octets: \"{Printable(sofar)}\")"), e)
            { TimedOut = true };
        }
        catch (IOException e)
        {
            throw new XlChannelException(Invariant(
                $"xl migration channel: expected {what} from the {_peer} at offset {offset + have}, but the channel failed: {e.Message}"), e)
            { PeerGone = true };
        }
        finally
        {
            Input.ReadTimeout = Timeout.Infinite;
        }
    }

    private XlChannelException Closed(string what, long offset, ReadOnlySpan<byte> sofar)
    {
        var partial = sofar.IsEmpty ? "" : Invariant($" ({sofar.Length} octets of it arrived: \"{Printable(sofar)}\")");
        return new XlChannelException(Invariant(
            $"xl migration channel: the {_peer} closed the channel at offset {offset + sofar.Length} while {what} was expected{partial}"))
        {
            PeerGone = true,
        };
    }

    /// <summary>Octets as text for an error line: printable ASCII as is, the rest escaped (\n, \0, \xNN).</summary>
    internal static string Printable(ReadOnlySpan<byte> octets)
    {
        var text = new StringBuilder(octets.Length + 8);
        foreach (var b in octets)
        {
            text.Append(b switch
            {
                (byte)'\n' => "\\n",
                (byte)'\r' => "\\r",
                0 => "\\0",
                (byte)'"' => "\\\"",
                (byte)'\\' => "\\\\",
                >= 0x20 and < 0x7F => ((char)b).ToString(),
                _ => Invariant($"\\x{b:X2}"),
            });
        }

        return text.ToString();
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>The scope of <see cref="AbortOn"/>: once disposed, cancellation no longer touches the channel.</summary>
    private sealed class Aborting(XlMigrationChannel channel, CancellationTokenRegistration registration) : IDisposable
    {
        public void Dispose()
        {
            registration.Dispose();
            channel.Input.Cancellation = default;
        }
    }
}
