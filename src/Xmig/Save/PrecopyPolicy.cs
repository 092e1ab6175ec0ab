namespace Xmig.Save;

/// <summary>What a pre-copy policy may do after a pass.</summary>
internal enum PrecopyDecision
{
    /// <summary>Send the dirty set again while the guest runs.</summary>
    Continue,

    /// <summary>Pause the guest and send the dirty set (and the end-of-checkpoint state) paused.</summary>
    StopAndCopy,
}

/// <summary>A policy's answer after a pass, with the reason a stop gives in reports (<c>stop-reason</c>).</summary>
internal readonly record struct PrecopyVerdict(PrecopyDecision Decision, string Reason)
{
    /// <summary>The dirty set fits the policy's target.</summary>
    public const string Converged = "converged";

    /// <summary>The policy's (or <c>--max-iterations</c>') cap on passes was reached.</summary>
    public const string MaxIterations = "max-iterations";

    /// <summary>Xen legacy: more than <c>max_factor</c> times memory was sent.</summary>
    public const string MemorySent = "memory-sent";

    /// <summary><c>--timeout</c> passed with <c>--on-timeout switchover</c>.</summary>
    public const string Timeout = "timeout";

    /// <summary>A non-live save: one paused pass.</summary>
    public const string NonLive = "non-live";

    public static PrecopyVerdict Continue => new(PrecopyDecision.Continue, "");

    public static PrecopyVerdict Stop(string reason) => new(PrecopyDecision.StopAndCopy, reason);
}

/// <summary>
/// The figures of a live save after a pre-copy pass, as Xen's <c>precopy_stats</c> and QEMU's <c>query-migrate</c> name
/// them. Octets count the stream written; pages count page data.
/// </summary>
/// <param name="Iteration">Passes done so far (1 after the first full pass).</param>
/// <param name="DirtyPages">Frames the guest dirtied during the pass just done: what the next pass would send.</param>
/// <param name="PagesSentLastPass">Data pages the pass just done sent.</param>
/// <param name="PagesSent">Data pages sent so far by this save, resends included.</param>
/// <param name="BytesSent">Octets of stream written so far.</param>
/// <param name="MemoryPages">Frames of the guest's p2m (Xen legacy's <c>p2m_size</c>).</param>
/// <param name="Elapsed">Time since the save began.</param>
/// <param name="BytesPerSecond">Stream octets per second measured over the pass just done (0 when too short to measure).</param>
internal readonly record struct PrecopyStats(
    int Iteration,
    long DirtyPages,
    long PagesSentLastPass,
    long PagesSent,
    long BytesSent,
    ulong MemoryPages,
    TimeSpan Elapsed,
    double BytesPerSecond)
{
    /// <summary>Stream octets a page costs: its data and its pfn entry (batch headers aside).</summary>
    public const int BytesPerPage = GuestPage.Size + 8;

    /// <summary>How long the pass just done took.</summary>
    public TimeSpan PassDuration { get; init; }

    /// <summary>Frames the guest dirtied per second during the pass just done.</summary>
    public double DirtyPagesPerSecond { get; init; }

    /// <summary>The guest's throttle during the pass, in percent.</summary>
    public int ThrottlePercent { get; init; }

    /// <summary>
    /// What stopping now would cost: the dirty set's octets at the pass's bandwidth (QEMU's <c>expected-downtime</c>).
    /// Unknown (null) when the pass was too short to measure a bandwidth.
    /// </summary>
    public TimeSpan? ExpectedDowntime => DirtyPages == 0
        ? TimeSpan.Zero
        : BytesPerSecond > 0 ? TimeSpan.FromSeconds(DirtyPages * (double)BytesPerPage / BytesPerSecond) : null;
}

/// <summary>
/// Decides, after each pre-copy pass, whether to iterate again or stop and copy. The engine asks once per pass, from
/// the saving thread, and never asks again once told to stop. A policy holds no stream state; one instance may serve
/// several saves unless it says otherwise.
/// </summary>
/// <remarks>
/// The bounds every policy takes (<c>--max-iterations</c>, <c>--timeout</c>) and the actions between passes
/// (<c>--auto-converge</c>) are <see cref="PrecopyLimits"/>, applied by the engine around the policy; the bandwidth
/// limit is the output stream's.
/// </remarks>
internal interface IPrecopyPolicy
{
    /// <summary>The name <c>--policy</c> takes.</summary>
    string Name { get; }

    PrecopyVerdict Decide(in PrecopyStats stats);
}

/// <summary>
/// QEMU's and Cloud Hypervisor's rule (<c>downtime-limit</c>, default 300 ms): stop once the dirty set, at the
/// bandwidth the last pass measured, can be sent within the downtime limit.
/// </summary>
internal sealed class DowntimePrecopyPolicy(TimeSpan downtimeLimit) : IPrecopyPolicy
{
    /// <summary>QEMU's default <c>downtime-limit</c>.</summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// The cap on passes when <c>--max-iterations</c> is not given: QEMU has none and iterates until the dirty set fits,
    /// which a guest that dirties faster than the link never allows; xmig switches over after as many passes as Xen's
    /// legacy sender, so such a migration still ends.
    /// </summary>
    public const int DefaultMaxIterations = 30;

    public DowntimePrecopyPolicy()
        : this(DefaultLimit)
    {
    }

    public string Name => "downtime";

    public TimeSpan DowntimeLimit { get; } = downtimeLimit;

    public PrecopyVerdict Decide(in PrecopyStats stats)
    {
        if (stats.ExpectedDowntime is { } expected && expected <= DowntimeLimit)
        {
            return PrecopyVerdict.Stop(PrecopyVerdict.Converged);
        }

        return stats.Iteration >= DefaultMaxIterations ? PrecopyVerdict.Stop(PrecopyVerdict.MaxIterations) : PrecopyVerdict.Continue;
    }
}

/// <summary>What <c>--on-timeout</c> does when <c>--timeout</c> passes.</summary>
internal enum TimeoutAction
{
    /// <summary>Fail the save: the guest runs on, as before it (a migration's source keeps running).</summary>
    Abort,

    /// <summary>Cut the pass in progress, pause the guest and send what is left (a forced stop-and-copy).</summary>
    Switchover,
}

/// <summary>
/// The bounds every policy takes and the auto-converge throttle, applied by <see cref="SaveEngine"/> around the policy.
/// </summary>
internal sealed record PrecopyLimits
{
    /// <summary>Cap on pre-copy passes (<c>--max-iterations</c>), the first full pass included; null: the policy's own.</summary>
    public int? MaxIterations { get; init; }

    /// <summary>Bound on the whole save (<c>--timeout</c>); null: none.</summary>
    public TimeSpan? Timeout { get; init; }

    public TimeoutAction OnTimeout { get; init; } = TimeoutAction.Abort;

    /// <summary>Throttle the guest while it dirties memory faster than the stream carries it (<c>--auto-converge</c>).</summary>
    public bool AutoConverge { get; init; }

    /// <summary>QEMU's <c>cpu-throttle-initial</c>: the first throttle step, in percent.</summary>
    public int ThrottleInitial { get; init; } = 20;

    /// <summary>QEMU's <c>cpu-throttle-increment</c>: each later step, in percent.</summary>
    public int ThrottleIncrement { get; init; } = 10;

    /// <summary>QEMU's <c>max-cpu-throttle</c>.</summary>
    public int ThrottleMax { get; init; } = 99;

    /// <summary>
    /// QEMU's <c>throttle-trigger-threshold</c>: a pass counts as dirtying too fast when the guest dirtied more than
    /// this percentage of what the pass sent.
    /// </summary>
    public int ThrottleTriggerThreshold { get; init; } = 50;
}

/// <summary>
/// Auto-converge as QEMU does it (<c>migration/ram.c</c>, <c>migration_trigger_throttle</c>): after each pass, when
/// the guest dirtied more than the trigger threshold of what the pass transferred, count it; on the second such pass
/// raise the throttle (first to the initial step, then by the increment, up to the maximum) and start counting again.
/// </summary>
internal sealed class AutoConverge(PrecopyLimits limits)
{
    private int _highPasses;

    public int Percent { get; private set; }

    /// <summary>The throttle after pass <paramref name="stats"/>; changed only when this returns true.</summary>
    public bool After(in PrecopyStats stats)
    {
        var dirtied = (double)stats.DirtyPages * GuestPage.Size;
        var sent = (double)stats.PagesSentLastPass * GuestPage.Size;
        if (stats.Iteration < 2 || dirtied <= sent * limits.ThrottleTriggerThreshold / 100)
        {
            return false; // QEMU skips the first sync: its dirty set is the whole of memory
        }

        if (++_highPasses < 2)
        {
            return false;
        }

        _highPasses = 0;
        var next = Percent == 0 ? limits.ThrottleInitial : Math.Min(limits.ThrottleMax, Percent + limits.ThrottleIncrement);
        if (next == Percent)
        {
            return false;
        }

        Percent = next;
        return true;
    }
}

/// <summary>
/// Xen's migration v2 sender (<c>xg_sr_save.c</c>, its simple pre-copy policy): stop once fewer than
/// <c>SPP_TARGET_DIRTY_COUNT</c> (50) frames were dirtied, or after <c>SPP_MAX_ITERATIONS</c> (5) passes.
/// </summary>
internal sealed class XenPrecopyPolicy(int maxIterations = XenPrecopyPolicy.SppMaxIterations, long targetDirtyPages = XenPrecopyPolicy.SppTargetDirtyCount) : IPrecopyPolicy
{
    public const int SppMaxIterations = 5;

    public const long SppTargetDirtyCount = 50;

    public string Name => "xen";

    public int MaxIterations { get; } = maxIterations;

    public long TargetDirtyPages { get; } = targetDirtyPages;

    public PrecopyVerdict Decide(in PrecopyStats stats) =>
        stats.DirtyPages < TargetDirtyPages ? PrecopyVerdict.Stop(PrecopyVerdict.Converged)
        : stats.Iteration >= MaxIterations ? PrecopyVerdict.Stop(PrecopyVerdict.MaxIterations)
        : PrecopyVerdict.Continue;
}

/// <summary>
/// Xen's legacy sender (<c>xc_domain_save</c>, 3.x–4.5): the last iteration starts after <c>max_iters</c> (29) passes,
/// once a pass sent fewer than 50 pages, or once more than <c>max_factor</c> (3) times the p2m size was sent.
/// </summary>
/// <remarks>Xen tests the pages sent by the pass just done, not the dirty count read after it; so does this policy.</remarks>
internal sealed class XenLegacyPrecopyPolicy(int maxIterations = XenLegacyPrecopyPolicy.DefaultMaxIters, int maxFactor = XenLegacyPrecopyPolicy.DefaultMaxFactor, long minPagesPerPass = XenLegacyPrecopyPolicy.DefaultMinPagesPerPass) : IPrecopyPolicy
{
    public const int DefaultMaxIters = 29;

    public const int DefaultMaxFactor = 3;

    public const long DefaultMinPagesPerPass = 50;

    public string Name => "xen-legacy";

    public PrecopyVerdict Decide(in PrecopyStats stats) =>
        stats.PagesSentLastPass < minPagesPerPass ? PrecopyVerdict.Stop(PrecopyVerdict.Converged)
        : stats.Iteration >= maxIterations ? PrecopyVerdict.Stop(PrecopyVerdict.MaxIterations)
        : (ulong)stats.PagesSent > stats.MemoryPages * (ulong)maxFactor ? PrecopyVerdict.Stop(PrecopyVerdict.MemorySent)
        : PrecopyVerdict.Continue;
}

/// <summary>The built-in policies by name.</summary>
internal static class PrecopyPolicies
{
    public static IReadOnlyList<string> Names { get; } = ["xen", "xen-legacy", "downtime"];

    /// <summary>The policy of the Xen that writes <paramref name="kind"/>: <c>xen-legacy</c> for legacy streams, <c>xen</c> for v2.</summary>
    public static IPrecopyPolicy For(SaveStreamKind kind) =>
        kind is SaveStreamKind.Legacy40 or SaveStreamKind.Legacy41 ? new XenLegacyPrecopyPolicy() : new XenPrecopyPolicy();

    /// <summary>A built-in policy by its <see cref="IPrecopyPolicy.Name"/>, or null.</summary>
    public static IPrecopyPolicy? Parse(string name) => name switch
    {
        "xen" => new XenPrecopyPolicy(),
        "xen-legacy" => new XenLegacyPrecopyPolicy(),
        "downtime" => new DowntimePrecopyPolicy(),
        _ => null,
    };
}
