namespace Xmig.Restore;

/// <summary>
/// Why a restore stopped reading (<c>restore --json</c> <c>finish_reason</c>). For a checkpointed stream every reason
/// but <see cref="End"/> is a failover to the last complete checkpoint (v2-stream.md §6.4 BUFFERING; legacy-stream.md
/// §9.3 NEXT_BODY/NEXT_TAIL, §9.4); before the first complete checkpoint the same events are a failure.
/// </summary>
internal enum RestoreFinishReason
{
    /// <summary>The stream's own end: libxl END, libxc END of a bare libxc stream, legacy LAST_CHECKPOINT, the legacy
    /// first tail in mode <c>no</c>, or (mode <c>auto</c>) octets after a legacy tail that are not a chunk.</summary>
    End,

    /// <summary>The source closed (a file, a pipe, a connection ended by its peer).</summary>
    Eof,

    /// <summary>A read failed: a connection reset or broken.</summary>
    ReadError,

    /// <summary>Nothing arrived within the heartbeat after a complete checkpoint.</summary>
    HeartbeatTimeout,

    /// <summary>A record of the checkpoint being received is bad (the result names the record and its offset).</summary>
    FormatError,
}

/// <summary>The <c>--json</c> names of <see cref="RestoreFinishReason"/>.</summary>
internal static class RestoreFinishReasons
{
    public static string Name(this RestoreFinishReason reason) => reason switch
    {
        RestoreFinishReason.End => "end",
        RestoreFinishReason.Eof => "eof",
        RestoreFinishReason.ReadError => "read-error",
        RestoreFinishReason.HeartbeatTimeout => "heartbeat-timeout",
        _ => "format-error",
    };

    /// <summary>
    /// Classifies what ended a checkpoint part-way: a heartbeat, a read error, the source ending (a record cut short at
    /// EOF), or a bad record.
    /// </summary>
    public static RestoreFinishReason Classify(Exception e, bool sourceEnded) => e switch
    {
        IO.HeartbeatTimeoutException => RestoreFinishReason.HeartbeatTimeout,
        Formats.StreamFormatException or EndOfStreamException when sourceEnded => RestoreFinishReason.Eof,
        Formats.StreamFormatException => RestoreFinishReason.FormatError,
        EndOfStreamException => RestoreFinishReason.Eof,
        _ => RestoreFinishReason.ReadError,
    };

    /// <summary>True for what ends a checkpoint part-way and so, after a complete one, is a failover.</summary>
    public static bool IsBrokenSource(Exception e) =>
        e is Formats.StreamFormatException or IOException or System.Net.Sockets.SocketException;
}
