using Xmig.Restore;
using Xmig.Save;

namespace Xmig.Migration;

/// <summary>How <see cref="MigrationSender"/> runs (<c>xmig migrate</c>).</summary>
internal sealed record MigrationSendOptions
{
    /// <summary>The save: stream kind and pre-copy settings (always live; a plain stream, never checkpointed).</summary>
    public SaveOptions Save { get; init; } = new();

    /// <summary>How long to wait for the receiver's banner.</summary>
    public TimeSpan BannerTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long to wait, after the last octet of the stream, for "ready to unpause" (the receiver completes the domain).</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long to wait for the receiver's report after GO.</summary>
    public TimeSpan ReportTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Compute the source's memory digest at pause (for the report; costs a pass over memory, overlapped with the receiver).</summary>
    public bool Digest { get; init; }

    /// <summary>
    /// Bound on any single wait for the receiver before GO (<c>--stall-timeout</c>): a write of the stream that the
    /// receiver does not take (a socket's send timeout), and the banner and "ready to unpause" waits (each the smaller
    /// of its own timeout and this).
    /// </summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>How <see cref="MigrationReceiver"/> runs (<c>xmig migrate-receive</c>).</summary>
internal sealed record MigrationReceiveOptions
{
    /// <summary>Whether the stream is checkpointed (<c>--checkpointed</c>); see <see cref="MigrationReceiver"/> for <c>auto</c> on the channel.</summary>
    public CheckpointedMode Checkpointed { get; init; } = CheckpointedMode.Auto;

    /// <summary>Bound on guest-physical space (<c>--max-memory</c>).</summary>
    public ulong MaxGuestPhysicalBytes { get; init; } = RestoreOptions.DefaultMaxGuestPhysicalBytes;

    /// <summary>Bound on any single wait for the sender's next octets while the stream arrives (a stalled sender).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long to wait for GO after "ready to unpause" (at most <see cref="StallTimeout"/>).</summary>
    public TimeSpan GoTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Legacy checkpointed reading (<c>--checkpointed yes</c>): Xen's heartbeat.</summary>
    public TimeSpan Heartbeat { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Compute the restored memory's digest (for the report).</summary>
    public bool Digest { get; init; } = true;
}

/// <summary>Where the source domain is after a migration attempt.</summary>
internal enum SourceState
{
    /// <summary>Running (unpaused, log-dirty off), its directory unchanged: every failure before GO.</summary>
    Running,

    /// <summary>The destination runs; the source was renamed <c>DIR--migratedaway</c> and is to be destroyed.</summary>
    MigratedAway,

    /// <summary>GO was sent but the receiver's report did not arrive: xl's "domain state is now undefined".</summary>
    Undefined,
}

/// <summary>What a migration did, at the sender. Times in milliseconds, as QEMU's <c>query-migrate</c>.</summary>
internal sealed record MigrationSendResult
{
    public bool Completed { get; init; }

    /// <summary>The one-line reason when not completed.</summary>
    public string? Error { get; init; }

    /// <summary>The step that failed: banner, stream, ready, rename, report, resume.</summary>
    public string? FailedAt { get; init; }

    public SourceState Source { get; init; }

    /// <summary>The source directory now (renamed away after success).</summary>
    public string SourceDirectory { get; init; } = "";

    public double TotalTimeMs { get; init; }

    /// <summary>From the start to the first pre-copy pass (banner, headers, static records).</summary>
    public double SetupTimeMs { get; init; }

    /// <summary>From the source's pause to the destination's "ready to unpause" (null when it never came).</summary>
    public double? DowntimeMs { get; init; }

    /// <summary>Octets of message 2: xl header, config and stream.</summary>
    public long Transferred { get; init; }

    public long PagesSent { get; init; }

    public int Iterations { get; init; }

    public long FinalDirtyPages { get; init; }

    /// <summary>The receiver's status octet (message 5), when it came.</summary>
    public byte? DestinationStatus { get; init; }

    public string? SourceDigest { get; init; }

    public ulong SourcePages { get; init; }
}

/// <summary>What a migration did, at the receiver.</summary>
internal sealed record MigrationReceiveResult
{
    public bool Completed { get; init; }

    public string? Error { get; init; }

    /// <summary>The step that failed: setup, banner, stream, checkpointed, ready, go, start, report.</summary>
    public string? FailedAt { get; init; }

    /// <summary>The domain directory (only when completed; nothing is left behind otherwise).</summary>
    public string Directory { get; init; } = "";

    public string StreamKind { get; init; } = "";

    public string SenderGeneration { get; init; } = "";

    /// <summary>The mode the stream was read in, and why.</summary>
    public string Checkpointed { get; init; } = "";

    public string End { get; init; } = "";

    public long Received { get; init; }

    public double TotalTimeMs { get; init; }

    public string? Digest { get; init; }

    public ulong Pages { get; init; }

    public IReadOnlyList<string> Warnings { get; init; } = [];
}
