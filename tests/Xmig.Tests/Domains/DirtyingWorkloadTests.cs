using System.Numerics;
using Xmig.Domains;

namespace Xmig.Tests.Domains;

public class DirtyingWorkloadTests
{
    [Theory]
    [InlineData("idle", "Idle", 0.0, 0UL)]
    [InlineData("uniform:200", "Uniform", 200.0, 0UL)]
    [InlineData("uniform:1.5MiB/s", "Uniform", 1.5, 0UL)]
    [InlineData("hotset:64MiB:50", "HotSet", 50.0, 64UL << 20)]
    public void WorkloadSpec_Parses(string text, string kind, double rate, ulong size)
    {
        Assert.True(WorkloadSpec.TryParse(text, out var spec, out var error), error);
        Assert.Equal(new WorkloadSpec(Enum.Parse<WorkloadKind>(kind), rate, size), spec);
    }

    [Theory]
    [InlineData("")]
    [InlineData("busy")]
    [InlineData("uniform")]
    [InlineData("uniform:-3")]
    [InlineData("uniform:fast")]
    [InlineData("hotset:64MiB")]
    [InlineData("hotset:nope:10")]
    [InlineData("idle:3")]
    public void WorkloadSpec_RejectsMalformed(string text)
    {
        Assert.False(WorkloadSpec.TryParse(text, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Theory]
    [InlineData("hvm")]
    [InlineData("pv")]
    public void Uniform_MarksDirtyBits_ReadAndClearClearsThem_PausedDomainStaysClean(string guest)
    {
        var type = guest == "pv" ? GuestType.Pv : GuestType.Hvm;
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], type, memoryMiB: 16);
        var bitmap = new ulong[(d.P2mSize + 63) / 64];
        d.EnableLogDirty();
        Assert.True(WorkloadSpec.TryParse("uniform:400", out var spec, out _));
        d.StartWorkload(spec, seed: 3);
        Assert.True(DomainTestSupport.WaitUntil(() => d.Workload!.PagesWritten > 50), "workload wrote nothing");

        // Dirty bits appear, and only for frames holding data.
        long dirty = 0;
        Assert.True(DomainTestSupport.WaitUntil(() => (dirty += d.ReadAndClearDirty(bitmap)) > 0 && HasBits(bitmap)));
        AssertOnlyPopulated(d, bitmap);

        // Paused: nothing is written and read-and-clear leaves an empty bitmap.
        d.Pause();
        var written = d.Workload!.PagesWritten;
        d.ReadAndClearDirty(bitmap);
        Thread.Sleep(50);
        Assert.Equal(0, d.ReadAndClearDirty(bitmap));
        Assert.False(HasBits(bitmap));
        Assert.Equal(written, d.Workload.PagesWritten);

        // Unpaused: it dirties again.
        d.Unpause();
        Assert.True(DomainTestSupport.WaitUntil(() => d.ReadAndClearDirty(bitmap) > 0));
        d.StopWorkload();
    }

    [Fact]
    public void HotSet_DirtiesOnlyFramesOfItsWorkingSet()
    {
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], GuestType.Pv, memoryMiB: 32);
        Assert.True(WorkloadSpec.TryParse("hotset:256KiB:200", out var spec, out _));
        d.EnableLogDirty();
        d.StartWorkload(spec, seed: 11);
        Assert.Equal(64UL, d.Workload!.TargetPages);
        var union = new ulong[(d.P2mSize + 63) / 64];
        var bitmap = new ulong[union.Length];
        Assert.True(DomainTestSupport.WaitUntil(() =>
        {
            d.ReadAndClearDirty(bitmap);
            for (var i = 0; i < union.Length; i++)
            {
                union[i] |= bitmap[i];
            }

            return d.Workload.PagesWritten > 500;
        }));
        d.Pause();
        var distinct = union.Sum(w => BitOperations.PopCount(w));
        Assert.InRange(distinct, 1, 64);

        // The set is one window of consecutive populated frames (PV memory has no holes).
        var first = Array.FindIndex(union, w => w != 0) * 64 + BitOperations.TrailingZeroCount(union.First(w => w != 0));
        var lastWord = Array.FindLastIndex(union, w => w != 0);
        var last = lastWord * 64 + 63 - BitOperations.LeadingZeroCount(union[lastWord]);
        Assert.True(last - first < 64, $"dirty frames span {first}..{last}");
    }

    [Fact]
    public void Workload_ChangesMemoryThroughGuestWrite()
    {
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], GuestType.Hvm, memoryMiB: 16);
        var before = MemoryDigest.Compute(d);
        d.StartWorkload(new WorkloadSpec(WorkloadKind.Uniform, 100, 0), seed: 1);
        Assert.True(DomainTestSupport.WaitUntil(() => d.Workload!.PagesWritten > 10));
        d.Pause();
        var after = MemoryDigest.Compute(d);
        Assert.NotEqual(before.Sha256, after.Sha256);
        Assert.Equal(before.Pages, after.Pages);
        Assert.Null(d.Workload!.Failure);
    }

    private static bool HasBits(ulong[] bitmap) => bitmap.Any(w => w != 0);

    private static void AssertOnlyPopulated(SimulatedDomain d, ulong[] bitmap)
    {
        for (var i = 0; i < bitmap.Length; i++)
        {
            var w = bitmap[i];
            while (w != 0)
            {
                var pfn = (ulong)i * 64 + (ulong)BitOperations.TrailingZeroCount(w);
                Assert.True(d.IsPopulated(pfn), $"dirty frame 0x{pfn:X} holds no data");
                w &= w - 1;
            }
        }
    }
}
