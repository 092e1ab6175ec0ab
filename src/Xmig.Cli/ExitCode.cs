namespace Xmig.Cli;

/// <summary>Process exit codes. Documented in <c>xmig --help</c>; never renumbered.</summary>
internal enum ExitCode
{
    /// <summary>Success; for <c>verify</c>, the stream is valid.</summary>
    Ok = 0,

    /// <summary>The input is invalid (bad stream, corrupt domain directory).</summary>
    Invalid = 1,

    /// <summary>Usage or I/O error, or unsupported content.</summary>
    UsageOrIo = 2,
}

/// <summary>The one place where a failure becomes an exit code; every verb maps its exceptions through it.</summary>
internal static class ExitCodes
{
    /// <summary>
    /// The exit code of an anticipated failure, or null for one that is not (a bug: it propagates with its trace).
    /// A bad stream or domain directory is invalid input (1); content a restore or a conversion cannot carry is 2, as
    /// Xen's converter exits; I/O failures, refused access and misuse of an option are 2.
    /// </summary>
    public static ExitCode? Of(Exception e) => e switch
    {
        Formats.StreamFormatException or Domains.InvalidDomainException => ExitCode.Invalid,
        Restore.Legacy.LegacyUnsupportedContentException => ExitCode.UsageOrIo,
        IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException => ExitCode.UsageOrIo,
        ArgumentException or NotSupportedException => ExitCode.UsageOrIo,
        _ => null,
    };
}
