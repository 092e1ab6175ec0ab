using Xmig.Save;

namespace Xmig.Tests.Save;

public class PrecopyPolicyTests
{
    private const ulong Memory = 4096;

    /// <summary>
    /// Feeds a policy the figures of a save whose passes see the scripted dirty counts (pass 1 sends all memory, pass
    /// k + 1 sends what pass k saw dirtied) and returns the pass after which it stopped, or 0 when it never did.
    /// </summary>
    private static int StopsAfter(IPrecopyPolicy policy, params long[] dirtyAfterPass)
    {
        long sentLast = (long)Memory;
        long total = sentLast;
        for (var i = 0; i < dirtyAfterPass.Length; i++)
        {
            var stats = new PrecopyStats(i + 1, dirtyAfterPass[i], sentLast, total, total * 4096, Memory, TimeSpan.FromSeconds(i), 1e9);
            if (policy.Decide(stats).Decision == PrecopyDecision.StopAndCopy)
            {
                return i + 1;
            }

            sentLast = dirtyAfterPass[i];
            total += sentLast;
        }

        return 0;
    }

    [Fact]
    public void Xen_StopsOnceFewerThan50PagesWereDirtied() =>
        Assert.Equal(3, StopsAfter(new XenPrecopyPolicy(), 900, 50, 49, 10));

    [Fact]
    public void Xen_StopsAfterFivePassesWhateverTheDirtyRate() =>
        Assert.Equal(5, StopsAfter(new XenPrecopyPolicy(), 900, 900, 900, 900, 900, 900, 900));

    [Fact]
    public void Xen_KeepsIteratingWhileTheGuestDirtiesEnough() =>
        Assert.Equal(0, StopsAfter(new XenPrecopyPolicy(), 900, 800, 700, 600));

    [Fact]
    public void XenLegacy_StopsOnceAPassSentFewerThan50Pages() =>
        Assert.Equal(4, StopsAfter(new XenLegacyPrecopyPolicy(), 900, 500, 20, 10)); // pass 4 sent the 20 of pass 3

    [Fact]
    public void XenLegacy_StopsOnceThreeTimesMemoryWasSent() =>
        // 4096 + 3 × 3000 = 13096 > 3 × 4096 = 12288 after pass 4
        Assert.Equal(4, StopsAfter(new XenLegacyPrecopyPolicy(), 3000, 3000, 3000, 3000, 3000));

    [Fact]
    public void XenLegacy_StopsAfter29Passes()
    {
        var dirty = Enumerable.Repeat(100L, 40).ToArray();
        Assert.Equal(29, StopsAfter(new XenLegacyPrecopyPolicy(maxFactor: 100), dirty));
    }

    [Theory]
    [InlineData(SaveStreamKind.Xl, "xen")]
    [InlineData(SaveStreamKind.Libxc, "xen")]
    [InlineData(SaveStreamKind.Legacy40, "xen-legacy")]
    [InlineData(SaveStreamKind.Legacy41, "xen-legacy")]
    internal void DefaultPolicy_IsThatOfTheXenWritingTheStreamKind(SaveStreamKind kind, string name) =>
        Assert.Equal(name, PrecopyPolicies.For(kind).Name);

    [Fact]
    public void Parse_KnowsTheBuiltInsAndNothingElse()
    {
        Assert.All(PrecopyPolicies.Names, n => Assert.Equal(n, PrecopyPolicies.Parse(n)!.Name));
        Assert.Null(PrecopyPolicies.Parse("fastest"));
    }
}

public class DowntimePolicyTests
{
    private static PrecopyStats After(int iteration, long dirty, double bytesPerSecond) =>
        new(iteration, dirty, 1000, 1000 * iteration, 4_096_000L * iteration, 4096, TimeSpan.FromSeconds(iteration), bytesPerSecond);

    [Fact]
    public void StopsOnceTheDirtySetFitsTheLimitAtTheMeasuredBandwidth()
    {
        var policy = new DowntimePrecopyPolicy(TimeSpan.FromMilliseconds(300));

        // 10,000 pages × 4104 octets at 100 MB/s: 410 ms, too long; 5,000: 205 ms, fits.
        Assert.Equal(PrecopyDecision.Continue, policy.Decide(After(1, 10_000, 1e8)).Decision);
        var stop = policy.Decide(After(2, 5_000, 1e8));
        Assert.Equal(PrecopyDecision.StopAndCopy, stop.Decision);
        Assert.Equal(PrecopyVerdict.Converged, stop.Reason);
    }

    [Fact]
    public void ALowerLimitKeepsIterating() =>
        Assert.Equal(PrecopyDecision.Continue, new DowntimePrecopyPolicy(TimeSpan.FromMilliseconds(100)).Decide(After(2, 5_000, 1e8)).Decision);

    [Fact]
    public void UnknownBandwidth_KeepsIteratingUnlessNothingIsDirty()
    {
        var policy = new DowntimePrecopyPolicy();
        Assert.Equal(PrecopyDecision.Continue, policy.Decide(After(1, 1, 0)).Decision);
        Assert.Equal(PrecopyDecision.StopAndCopy, policy.Decide(After(1, 0, 0)).Decision);
    }

    [Fact]
    public void ANeverConvergingGuest_IsSwitchedOverAfterTheDefaultCap()
    {
        var policy = new DowntimePrecopyPolicy();
        Assert.Equal(PrecopyDecision.Continue, policy.Decide(After(DowntimePrecopyPolicy.DefaultMaxIterations - 1, 1_000_000, 1e6)).Decision);
        var stop = policy.Decide(After(DowntimePrecopyPolicy.DefaultMaxIterations, 1_000_000, 1e6));
        Assert.Equal(PrecopyVerdict.MaxIterations, stop.Reason);
    }

    [Fact]
    public void ExpectedDowntime_IsTheDirtySetAtTheBandwidth()
    {
        Assert.Equal(TimeSpan.FromSeconds(4104 * 1000 / 1e6), After(1, 1000, 1e6).ExpectedDowntime);
        Assert.Null(After(1, 1000, 0).ExpectedDowntime);
        Assert.Equal(TimeSpan.Zero, After(1, 0, 0).ExpectedDowntime);
    }

    [Fact]
    public void AutoConverge_StepsAsQemu_InitialThenIncrementAfterEverySecondFastPass()
    {
        var converge = new AutoConverge(new PrecopyLimits { AutoConverge = true, ThrottleInitial = 20, ThrottleIncrement = 10, ThrottleMax = 45 });

        // Each pass sent 1000 pages; dirtying 600 (> 50 %) counts, 400 does not; pass 1 never counts.
        PrecopyStats Pass(int i, long dirty) => new(i, dirty, 1000, 1000 * i, 0, 4096, TimeSpan.FromSeconds(i), 1e6);
        var seen = new List<int>();
        foreach (var (i, dirty) in new[] { (1, 900L), (2, 600L), (3, 400L), (4, 600L), (5, 600L), (6, 600L), (7, 600L), (8, 600L), (9, 600L), (10, 600L), (11, 600L) })
        {
            if (converge.After(Pass(i, dirty)))
            {
                seen.Add(converge.Percent);
            }
        }

        // Pass 3 is slow enough and resets nothing: passes 2 and 4 make the first step.
        Assert.Equal([20, 30, 40, 45], seen);
    }
}
