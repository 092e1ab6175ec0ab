namespace Xmig.Restore;

/// <summary>How a restore runs and what it may consume.</summary>
internal sealed record RestoreOptions
{
    /// <summary>Default bound on guest-physical space: 32 GiB, room for the largest simulated guest and its MMIO hole.</summary>
    public const ulong DefaultMaxGuestPhysicalBytes = 32UL << 30;

    public CheckpointedMode Checkpointed { get; init; } = CheckpointedMode.Auto;

    /// <summary>
    /// Bound on guest-physical space. A PV stream declares its p2m size (X86_PV_P2M_FRAMES, legacy header); an HVM
    /// stream declares none, so its pfns are bounded by this alone. Pfns beyond either are refused.
    /// </summary>
    public ulong MaxGuestPhysicalBytes { get; init; } = DefaultMaxGuestPhysicalBytes;

    /// <summary>Where records of a checkpoint not yet complete are buffered (default: the system temp directory).</summary>
    public string? SpoolDirectory { get; init; }

    /// <summary>
    /// Bound on one buffered checkpoint, in octets. Default: zero, meaning twice the memory bound (a checkpoint may
    /// resend every page and then some, but not without limit).
    /// </summary>
    public long MaxBufferedCheckpointBytes { get; init; }

    /// <summary>Legacy input: the saving toolstack's word size in bits (32 or 64); null detects it.</summary>
    public int? LegacyWidth { get; init; }

    /// <summary>Legacy input: the guest type; null detects it (legacy streams do not say).</summary>
    public GuestType? GuestType { get; init; }

    /// <summary>
    /// Bound on every wait for input after the first complete checkpoint, v2 and legacy, pipes and sockets (Xen's
    /// <c>HEARTBEAT_MS</c>, legacy-stream.md §9.2; <c>restore --heartbeat MS</c>): silence that long commits the last
    /// complete checkpoint. Null waits indefinitely. A regular file never times out.
    /// </summary>
    public TimeSpan? Heartbeat { get; init; } = DefaultHeartbeat;

    /// <summary>Xen's <c>HEARTBEAT_MS</c>: 1 s.</summary>
    public static readonly TimeSpan DefaultHeartbeat = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Checkpointed input: stop reading once checkpoint N is complete and restore it (<c>extract --checkpoint N</c>).
    /// Null reads to the end (the last complete checkpoint).
    /// </summary>
    public int? StopAfterCheckpoint { get; init; }

    /// <summary>
    /// Replication (a secondary): told of each committed checkpoint, of xmig's epoch records and of CHECKPOINT_STATE
    /// on the forward stream. Null for a plain restore.
    /// </summary>
    public ICheckpointObserver? Observer { get; init; }

    /// <summary>What the backend's domains can hold (<see cref="Domains.IDomainBackend.Limits"/>); <see cref="DomainRestore"/> sets it.</summary>
    public Domains.DomainLimits Limits { get; init; } = Domains.DomainLimits.Xen;

    internal ulong MaxP2mSize => Math.Min(Limits.MaxP2mSize, MaxGuestPhysicalBytes / GuestPage.Size);

    internal long SpoolLimit => MaxBufferedCheckpointBytes > 0 ? MaxBufferedCheckpointBytes : (long)Math.Min((ulong)long.MaxValue / 4, MaxGuestPhysicalBytes) * 2;
}

/// <summary>
/// What a replication secondary hears from a checkpointed restore, on the restoring thread. An exception from a
/// method fails the restore as a bad record would (after the first commit: a failover to the last committed checkpoint).
/// </summary>
internal interface ICheckpointObserver
{
    /// <summary>Checkpoint <paramref name="number"/> is committed: the domain's memory is its image.</summary>
    void Committed(int number);

    /// <summary>An XMIG_EPOCH record (v2), read at <paramref name="offset"/>, as the checkpoint it belongs to arrives.</summary>
    void Epoch(uint epoch, ulong checkpoint, long offset);

    /// <summary>CHECKPOINT_STATE on the forward stream (COLO's NEW, v2-stream.md §6.6 step 11), read at <paramref name="offset"/>.</summary>
    void CheckpointState(uint controlId, long offset);
}

/// <summary>What a restore found in the stream and how it ended.</summary>
internal sealed record RestoreResult
{
    /// <summary><c>xl</c>, <c>libxl</c>, <c>libxc</c>, <c>legacy</c> or <c>xl-legacy</c>.</summary>
    public string StreamKind { get; init; } = "";

    /// <summary>
    /// Who wrote the stream: <c>xen-4.22</c> (v2, from the Domain Header), <c>legacy-converter-1</c> (v2 made by
    /// <c>convert-legacy-stream</c>), or the legacy sender generation (<c>legacy-pre-4.1</c>, <c>legacy-4.1+</c>).
    /// </summary>
    public string SenderGeneration { get; init; } = "";

    /// <summary>CHECKPOINT records (or legacy checkpoints) seen, including one discarded part-way.</summary>
    public int CheckpointsSeen { get; init; }

    /// <summary>Number of the checkpoint whose state the image is (0 for a plain stream).</summary>
    public int CheckpointCommitted { get; init; }

    /// <summary>How reading ended, in words.</summary>
    public string End { get; init; } = "";

    /// <summary>Why reading stopped (<c>finish_reason</c>).</summary>
    public RestoreFinishReason FinishReason { get; init; }

    /// <summary>For a failover on a bad record (<see cref="RestoreFinishReason.FormatError"/>): the record, as named in errors.</summary>
    public string? FinishRecord { get; init; }

    /// <summary>For a failover: the offset in the stream where the checkpoint being received broke.</summary>
    public long? FinishOffset { get; init; }

    /// <summary>Why the last checkpoint was discarded, when it was.</summary>
    public string? Discarded { get; init; }

    /// <summary>Pages that differed from guest memory in a VERIFY pass.</summary>
    public long VerifyMismatches { get; init; }

    /// <summary>What Xen's receiver would object to but a simulated restore carries through.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}
