namespace Xmig.Transport;

/// <summary>
/// The peer did not speak xl's migration channel: a message other than the one expected, the channel closed, or
/// nothing within the timeout. An <see cref="IOException"/>: the CLI prints its one line.
/// </summary>
public sealed class XlChannelException : IOException
{
    public XlChannelException(string message)
        : base(message)
    {
    }

    public XlChannelException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public XlChannelException()
    {
    }

    /// <summary>True when the channel simply ended (EOF or reset), as when the peer died.</summary>
    public bool PeerGone { get; init; }

    /// <summary>True when nothing arrived within the timeout.</summary>
    public bool TimedOut { get; init; }
}
