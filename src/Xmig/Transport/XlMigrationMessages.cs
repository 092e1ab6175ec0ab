namespace Xmig.Transport;

/// <summary>
/// The fixed texts of xl's migration channel (legacy-stream.md §3.2, v2-stream.md §5–§6; Xen
/// <c>tools/xl/xl.h</c>, <c>xl_migrate.c</c>). The banner travels without its NUL; the other three with it.
/// </summary>
/// <remarks>
/// <code>
///  #  direction            octets
///  1  receiver → sender    "xl migration receiver ready, send binary domain data.\n"
///  2  sender → receiver    xl header + config + stream (libxl v2, or legacy libxc image)
///  3  receiver → sender    "domain received, ready to unpause" NUL
///  4  sender → receiver    "domain is yours, you are cleared to unpause" NUL
///  5  receiver → sender    "my copy unpause results are as follows" NUL, then 1 status octet (0 = running)
///  6  receiver → sender    only if status ≠ 0: message 4's text + NUL (the sender may resume its copy)
/// </code>
/// </remarks>
internal static class XlMigrationMessages
{
    /// <summary>Message 1, without a NUL.</summary>
    public static ReadOnlySpan<byte> Banner => "xl migration receiver ready, send binary domain data.\n"u8;

    /// <summary>Message 3, with its NUL.</summary>
    public static ReadOnlySpan<byte> ReceiverReady => "domain received, ready to unpause\0"u8;

    /// <summary>Message 4 (and message 6), with its NUL.</summary>
    public static ReadOnlySpan<byte> PermissionToGo => "domain is yours, you are cleared to unpause\0"u8;

    /// <summary>Message 5's text, with its NUL; one status octet follows.</summary>
    public static ReadOnlySpan<byte> Report => "my copy unpause results are as follows\0"u8;

    /// <summary>Names the messages use in errors (xl's own names for them).</summary>
    /// <summary>xmig's replication detach (not xl's): sent instead of message 4, the secondary discards its copy.</summary>
    public static ReadOnlySpan<byte> Detach => "xmig replication detached, discard your copy\0"u8;

    public const string BannerName = "the banner";

    public const string ReadyName = "the ready message (\"domain received, ready to unpause\")";

    public const string GoName = "the GO message (\"domain is yours, you are cleared to unpause\")";

    public const string GoOrDetachName = "the GO message (\"domain is yours, you are cleared to unpause\") or xmig's detach";

    public const string ReportName = "the success/failure report (\"my copy unpause results are as follows\")";

    public const string StatusName = "the success/failure status octet";

    public const string ResumeName = "the permission for the sender to resume";
}
