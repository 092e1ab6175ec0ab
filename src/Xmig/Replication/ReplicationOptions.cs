using Xmig.Migration;
using Xmig.Save;

namespace Xmig.Replication;

/// <summary>What a controlled end does (<c>--on-stop</c>).</summary>
internal enum StopAction
{
    /// <summary>A final checkpoint marked last; the secondary completes it as a migration and runs the domain; the primary stops its own.</summary>
    Switchover,

    /// <summary>The primary keeps its domain running; the secondary discards its copy and leaves nothing behind.</summary>
    Detach,
}

/// <summary>How a primary replicates (<c>xmig replicate</c>).</summary>
internal sealed record ReplicationOptions
{
    /// <summary>The stream: xl (as <c>xl remus</c>), libxl, or legacy-4.1 (with <see cref="Compress"/>, format B).</summary>
    public SaveStreamKind Kind { get; init; } = SaveStreamKind.Xl;

    /// <summary>Legacy streams: compress checkpoints after the first (legacy-stream.md §5.6).</summary>
    public bool Compress { get; init; }

    /// <summary>How long the guest runs between checkpoints (<c>--interval</c>; <c>xl remus</c>'s default is 200 ms).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Resume the guest after each checkpoint at once instead of after the secondary's acknowledgement.</summary>
    public bool NoWait { get; init; }

    /// <summary>How long the primary waits for an acknowledgement, or a blocked write, before it takes the secondary for lost.</summary>
    public TimeSpan Heartbeat { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>End after checkpoint N, the last one marked (0: run until stopped).</summary>
    public int StopAfter { get; init; }

    public StopAction OnStop { get; init; } = StopAction.Switchover;

    /// <summary>COLO (v2-stream.md §6.6): the secondary's guest runs between checkpoints; its dirty pages come back on the back channel.</summary>
    public bool Colo { get; init; }

    /// <summary>When the secondary is lost, wait for a new one and start again with a full first pass.</summary>
    public bool Reconnect { get; init; }

    /// <summary>Bound on a blocked write during the first pass (a live migration), and on waits for the banner and the handshake.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The first pass's convergence (policy, limits), as for a migration.</summary>
    public MigrationSendOptions First { get; init; } = new();

    /// <summary>Guest name in the xl config.</summary>
    public string DomainName { get; init; } = "xmig-sim";
}

/// <summary>How a replication ended, for the primary.</summary>
internal sealed record ReplicationResult
{
    /// <summary>
    /// <c>switchover</c> (the secondary runs the domain), <c>detached</c> (the primary keeps it), <c>backup-failed</c>
    /// (the secondary was lost; the primary's guest runs on), <c>refused</c> (the secondary holds a newer epoch),
    /// <c>cancelled</c>, or <c>failed</c> (before the first checkpoint).
    /// </summary>
    public string Status { get; init; } = "failed";

    public string? Error { get; init; }

    /// <summary>Where the guest is: running at the primary, migrated away (switchover), or undefined.</summary>
    public SourceState Source { get; init; } = SourceState.Running;

    public string SourceDirectory { get; init; } = "";

    public uint Epoch { get; init; }

    /// <summary>Connections made to a secondary (more than one with <c>--reconnect</c>).</summary>
    public int Sessions { get; init; }

    /// <summary>Checkpoints sent in the last session.</summary>
    public int Checkpoints { get; init; }

    /// <summary>The last checkpoint the secondary acknowledged in the last session (0: none).</summary>
    public long Acknowledged { get; init; }

    /// <summary>The checkpoint digest (<see cref="Domains.CheckpointDigest"/>) of the last checkpoint sent.</summary>
    public string? Digest { get; init; }

    /// <summary>Octets written to secondaries, all sessions.</summary>
    public long Bytes { get; init; }

    public double TotalTimeMs { get; init; }

    /// <summary>How long the guest was paused for each checkpoint of the last session, the first (its downtime) included.</summary>
    public IReadOnlyList<double> PausesMs { get; init; } = [];

    /// <summary>Octets of each checkpoint of the last session.</summary>
    public IReadOnlyList<long> CheckpointBytes { get; init; } = [];
}

/// <summary>The secondary stopped answering, closed the connection, or sent what the back channel does not carry.</summary>
internal sealed class SecondaryLostException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>The secondary refused the stream: it holds the domain at an epoch at least the primary's.</summary>
internal sealed class ReplicationRefusedException(string message) : InvalidOperationException(message);
