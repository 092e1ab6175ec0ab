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
            if (policy.Decide(stats) == PrecopyDecision.StopAndCopy)
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
        Assert.Null(PrecopyPolicies.Parse("downtime"));
    }
}
