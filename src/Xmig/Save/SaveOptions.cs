namespace Xmig.Save;

/// <summary>The stream a save writes (<c>--stream</c>).</summary>
internal enum SaveStreamKind
{
    /// <summary>xl save file: xl header and config, then a libxl v2 stream (what <c>xl save</c> writes).</summary>
    Xl,

    /// <summary>libxl v2 stream (what libxl writes on a migration fd).</summary>
    Libxl,

    /// <summary>Bare libxc v2 stream.</summary>
    Libxc,

    /// <summary>Legacy libxc stream as Xen 4.0 wrote it (no LAST_CHECKPOINT).</summary>
    Legacy40,

    /// <summary>Legacy libxc stream as Xen 4.1–4.5 wrote it.</summary>
    Legacy41,
}

/// <summary>How a save runs.</summary>
internal sealed record SaveOptions
{
    public SaveStreamKind Kind { get; init; } = SaveStreamKind.Xl;

    /// <summary>Value of <see cref="Checkpoints"/> for a checkpointed stream that runs until <see cref="CheckpointDriver.RequestStop"/>.</summary>
    public const int UntilStopped = -1;

    /// <summary>
    /// 0: a plain stream. N &gt; 0: a checkpointed (Remus) stream of N checkpoints. <see cref="UntilStopped"/>: a
    /// checkpointed stream whose checkpoints go on until a stop is requested.
    /// </summary>
    public int Checkpoints { get; init; }

    /// <summary>True for a checkpointed (Remus) stream.</summary>
    public bool Checkpointed => Checkpoints != 0;

    /// <summary>
    /// Live (pre-copy) memory transfer: pages are sent while the guest runs, then the pages it dirtied, until the
    /// policy stops and the final dirty set is sent paused. Otherwise the guest is paused first and every page is
    /// sent once (what <c>xl save</c> does).
    /// </summary>
    public bool Live { get; init; } = true;

    /// <summary>
    /// When a live pre-copy stops iterating (<c>--policy</c>). Null: the policy of the Xen that writes the stream kind,
    /// <see cref="XenPrecopyPolicy"/> for v2 streams, <see cref="XenLegacyPrecopyPolicy"/> for legacy streams.
    /// </summary>
    public IPrecopyPolicy? Policy { get; init; }

    /// <summary>The bounds around the policy (<c>--max-iterations</c>, <c>--timeout</c>) and auto-converge.</summary>
    public PrecopyLimits Limits { get; init; } = new();

    /// <summary>Checkpointed streams: how long the guest runs between checkpoints (Remus's interval).</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Version of the Xen the stream claims to come from (Domain Header <c>xen_major.xen_minor</c>).</summary>
    public uint XenMajor { get; init; } = 4;

    public uint XenMinor { get; init; } = 22;

    /// <summary>Legacy streams: octets in the saving toolstack's <c>unsigned long</c> (4 or 8).</summary>
    public int LegacyToolstackWidth { get; init; } = 8;

    /// <summary>
    /// Legacy checkpointed streams: compress checkpoints after the first (format B, legacy-stream.md §5.6: the
    /// ENABLE_COMPRESSION marker in checkpoint 1, then COMPRESSED_DATA page deltas). Ignored by v2 and plain streams.
    /// </summary>
    public bool Compress { get; init; }

    /// <summary>Guest name in the xl config.</summary>
    public string DomainName { get; init; } = "xmig-sim";
}

/// <summary>What a save did.</summary>
internal sealed record SaveResult
{
    /// <summary>Octets written.</summary>
    public long Bytes { get; init; }

    /// <summary>Pages of data written, resends included.</summary>
    public long PagesSent { get; init; }

    /// <summary>Memory passes of the last (or only) checkpoint: the first full pass, live re-sends, and the paused pass.</summary>
    public int Iterations { get; init; }

    /// <summary>Checkpoints written (0 for a plain stream).</summary>
    public int Checkpoints { get; init; }

    /// <summary>Pages in the final paused pass of the last checkpoint.</summary>
    public long FinalDirtyPages { get; init; }

    /// <summary>Why the first checkpoint's pre-copy stopped (<see cref="PrecopyVerdict"/>'s reasons); empty before it did.</summary>
    public string StopReason { get; init; } = "";

    /// <summary>The highest throttle auto-converge set, in percent (0: never throttled).</summary>
    public int ThrottlePercent { get; init; }
}

/// <summary>
/// One memory pass, reported to <see cref="SaveEngine.Round"/> when it ends: the figures of a per-round line and of
/// QEMU's <c>query-migrate</c> at that moment.
/// </summary>
/// <param name="Checkpoint">Checkpoint number, from 1.</param>
/// <param name="Iteration">Pass number within the checkpoint, from 1.</param>
/// <param name="Paused">True for the stop-and-copy pass.</param>
/// <param name="Pages">Data pages the pass sent.</param>
/// <param name="Bytes">Stream octets the pass wrote.</param>
/// <param name="Duration">How long the pass took.</param>
/// <param name="BytesPerSecond">The bandwidth the policy used for this pass (see <see cref="SaveEngine"/>).</param>
/// <param name="DirtyPages">Frames dirtied during the pass (0 for a paused pass).</param>
/// <param name="DirtyPagesPerSecond">Frames dirtied per second during the pass.</param>
/// <param name="ExpectedDowntime">The dirty set at that bandwidth (null when unknown).</param>
/// <param name="ThrottlePercent">The guest's throttle during the pass.</param>
internal readonly record struct SaveRound(
    int Checkpoint,
    int Iteration,
    bool Paused,
    long Pages,
    long Bytes,
    TimeSpan Duration,
    double BytesPerSecond,
    long DirtyPages,
    double DirtyPagesPerSecond,
    TimeSpan? ExpectedDowntime,
    int ThrottlePercent);

/// <summary>A save stopped by <c>--timeout</c> with <c>--on-timeout abort</c>.</summary>
internal sealed class SaveTimeoutException(string message) : TimeoutException(message);

/// <summary>
/// Where a save is, reported to <see cref="SaveEngine.Progress"/> as each phase or pass begins (the figures are those
/// at that moment).
/// </summary>
/// <param name="Phase">The phase beginning.</param>
/// <param name="Checkpoint">Checkpoint number, from 1 (1 for a plain stream).</param>
/// <param name="Iteration">Memory passes of this checkpoint done so far.</param>
/// <param name="PagesSent">Data pages sent so far by the whole save, resends included.</param>
/// <param name="BytesSent">Stream octets written so far (buffered ones included).</param>
/// <param name="DirtyPages">Frames the pass beginning will send (the dirty set; the whole p2m for a first pass); 0 outside passes.</param>
/// <param name="Elapsed">Time since the save began.</param>
internal readonly record struct SaveProgress(SavePhase Phase, int Checkpoint, int Iteration, long PagesSent, long BytesSent, long DirtyPages, TimeSpan Elapsed);

/// <summary>The phases a save goes through, in order (reported to <see cref="SaveEngine.Progress"/>).</summary>
internal enum SavePhase
{
    /// <summary>Headers and the execution-independent records (X86_PV_INFO, policies, STATIC_DATA_END, P2M frames).</summary>
    Setup,

    /// <summary>A pre-copy pass while the guest runs.</summary>
    Iteration,

    /// <summary>The guest is paused: the final dirty set and the end-of-checkpoint state.</summary>
    StopAndCopy,

    /// <summary>CHECKPOINT and the libxl checkpoint records written and flushed; the guest is still paused while the acknowledgement hook runs.</summary>
    Checkpoint,

    /// <summary>The guest runs between checkpoints.</summary>
    Resumed,

    /// <summary>END records written and the output flushed.</summary>
    Done,
}
