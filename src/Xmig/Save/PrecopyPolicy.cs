namespace Xmig.Save;

/// <summary>What a pre-copy policy may do after a pass.</summary>
internal enum PrecopyDecision
{
    /// <summary>Send the dirty set again while the guest runs.</summary>
    Continue,

    /// <summary>Pause the guest and send the dirty set (and the end-of-checkpoint state) paused.</summary>
    StopAndCopy,
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
    double BytesPerSecond);

/// <summary>
/// Decides, after each pre-copy pass, whether to iterate again or stop and copy. The engine asks once per pass, from
/// the saving thread, and never asks again once told to stop. A policy holds no stream state; one instance may serve
/// several saves unless it says otherwise.
/// </summary>
/// <remarks>
/// Room is left for the policies of the migration issue: a downtime target (stop when <c>DirtyPages</c> × 4096 at
/// <c>BytesPerSecond</c> fits the limit), a cap on iterations, a timeout (which would add an abort decision), a
/// bandwidth limit and auto-converge throttling (which would act on the domain between passes).
/// </remarks>
internal interface IPrecopyPolicy
{
    /// <summary>The name <c>--policy</c> takes.</summary>
    string Name { get; }

    PrecopyDecision Decide(in PrecopyStats stats);
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

    public PrecopyDecision Decide(in PrecopyStats stats) =>
        stats.DirtyPages < TargetDirtyPages || stats.Iteration >= MaxIterations ? PrecopyDecision.StopAndCopy : PrecopyDecision.Continue;
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

    public PrecopyDecision Decide(in PrecopyStats stats) =>
        stats.Iteration >= maxIterations
        || stats.PagesSentLastPass < minPagesPerPass
        || (ulong)stats.PagesSent > stats.MemoryPages * (ulong)maxFactor
            ? PrecopyDecision.StopAndCopy
            : PrecopyDecision.Continue;
}

/// <summary>The built-in policies by name.</summary>
internal static class PrecopyPolicies
{
    public static IReadOnlyList<string> Names { get; } = ["xen", "xen-legacy"];

    /// <summary>The policy of the Xen that writes <paramref name="kind"/>: <c>xen-legacy</c> for legacy streams, <c>xen</c> for v2.</summary>
    public static IPrecopyPolicy For(SaveStreamKind kind) =>
        kind is SaveStreamKind.Legacy40 or SaveStreamKind.Legacy41 ? new XenLegacyPrecopyPolicy() : new XenPrecopyPolicy();

    /// <summary>A built-in policy by its <see cref="IPrecopyPolicy.Name"/>, or null.</summary>
    public static IPrecopyPolicy? Parse(string name) => name switch
    {
        "xen" => new XenPrecopyPolicy(),
        "xen-legacy" => new XenLegacyPrecopyPolicy(),
        _ => null,
    };
}
