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

    /// <summary>Octets per second the channel is held to (<c>--max-bandwidth</c>); null: unlimited.</summary>
    public long? MaxBandwidth { get; init; }

    /// <summary>
    /// Bound on any single wait for the receiver before GO (<c>--stall-timeout</c>): a write of the stream that the
    /// receiver does not take (a socket's send timeout), and the banner and "ready to unpause" waits (each the smaller
    /// of its own timeout and this).
    /// </summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// The convergence settings of <c>xmig migrate</c> (<c>--policy</c>, <c>--downtime-limit</c>, <c>--max-iterations</c>,
/// <c>--timeout</c>, <c>--on-timeout</c>, <c>--max-bandwidth</c>, <c>--auto-converge</c>), as one value the command
/// builds and a domain host receives over its control socket.
/// </summary>
internal sealed record MigrationSettings
{
    public string Policy { get; init; } = "downtime";

    public double DowntimeLimitMs { get; init; } = 300;

    public int? MaxIterations { get; init; }

    public double? TimeoutSeconds { get; init; }

    public string OnTimeout { get; init; } = "abort";

    public long? MaxBandwidth { get; init; }

    public bool AutoConverge { get; init; }

    public int ThrottleInitial { get; init; } = 20;

    public int ThrottleIncrement { get; init; } = 10;

    /// <summary>The sender's options for a stream of <paramref name="kind"/>; null with <paramref name="error"/> when the policy is unknown.</summary>
    public MigrationSendOptions? ToSendOptions(SaveStreamKind kind, bool digest, out string error)
    {
        error = "";
        IPrecopyPolicy? policy = Policy == "downtime" ? new DowntimePrecopyPolicy(TimeSpan.FromMilliseconds(DowntimeLimitMs)) : PrecopyPolicies.Parse(Policy);
        if (policy is null)
        {
            error = $"--policy {Policy} is not one of {string.Join(", ", PrecopyPolicies.Names)}";
            return null;
        }

        var limits = new PrecopyLimits
        {
            MaxIterations = MaxIterations,
            Timeout = TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t) : null,
            OnTimeout = OnTimeout == "switchover" ? TimeoutAction.Switchover : TimeoutAction.Abort,
            AutoConverge = AutoConverge,
            ThrottleInitial = ThrottleInitial,
            ThrottleIncrement = ThrottleIncrement,
        };
        return new MigrationSendOptions
        {
            Save = new SaveOptions { Kind = kind, Policy = policy, Limits = limits },
            Digest = digest,
            MaxBandwidth = MaxBandwidth,
        };
    }

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, MigrationSettingsJson.Default.MigrationSettings);

    public static MigrationSettings? FromJson(string json)
    {
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize(json, MigrationSettingsJson.Default.MigrationSettings);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(MigrationSettings))]
internal sealed partial class MigrationSettingsJson : System.Text.Json.Serialization.JsonSerializerContext;

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

    /// <summary>The convergence policy's name.</summary>
    public string Policy { get; init; } = "";

    public double? DowntimeLimitMs { get; init; }

    public long? MaxBandwidth { get; init; }

    /// <summary>Why pre-copy stopped (empty when it never did).</summary>
    public string StopReason { get; init; } = "";

    /// <summary>The highest throttle auto-converge set.</summary>
    public int ThrottlePercent { get; init; }

    /// <summary>Every memory pass, in order.</summary>
    public IReadOnlyList<SaveRound> Rounds { get; init; } = [];
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
