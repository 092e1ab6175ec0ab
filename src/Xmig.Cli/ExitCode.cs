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
