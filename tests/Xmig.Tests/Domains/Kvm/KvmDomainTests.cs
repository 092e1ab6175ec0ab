using System.Buffers.Binary;
using Xmig.Domains;
using Xmig.Domains.Kvm;
using Xmig.Restore;
using Xmig.Save;
using Xmig.Verify;

namespace Xmig.Tests.Domains.Kvm;

/// <summary>A fact that runs only where KVM is usable; elsewhere it is reported as skipped with the reason.</summary>
public sealed class KvmFactAttribute : FactAttribute
{
    public KvmFactAttribute()
    {
        var reason = KvmProbe.UnavailableReason;
        if (reason != null)
        {
            Skip = "SKIPPED: no usable KVM on this machine: " + reason;
            Console.Error.WriteLine($"xmig tests: KVM tests skipped: {reason}");
        }
    }
}

/// <summary>A theory that runs only where KVM is usable; elsewhere it is reported as skipped with the reason.</summary>
public sealed class KvmTheoryAttribute : TheoryAttribute
{
    public KvmTheoryAttribute()
    {
        var reason = KvmProbe.UnavailableReason;
        if (reason != null)
        {
            Skip = "SKIPPED: no usable KVM on this machine: " + reason;
            Console.Error.WriteLine($"xmig tests: KVM tests skipped: {reason}");
        }
    }
}

public class KvmDomainTests
{
    private const ulong Memory = 16UL << 20;

    [KvmFact]
    public void Counter_RunsPausesAndResumes_StepsGrow_ImageConsistentAtEveryPause()
    {
        using var tmp = new TempDirectory();
        using var domain = KvmDomain.Create(tmp["g"], Counter(), Memory, 1);
        Assert.True(domain.IsPaused);
        var initial = CounterImage.Check(domain);
        Assert.Equal(0, initial.BadPages);
        Assert.Equal(0UL, initial.Steps);

        ulong lastSteps = 0;
        for (var round = 0; round < 5; round++)
        {
            domain.Unpause();
            WaitForSweeps(domain, domain.Sweeps + 2);
            domain.Pause();
            var check = CounterImage.Check(domain);
            Assert.True(check.Consistent, $"round {round}: {check.BadPages} bad pages");
            Assert.True(check.Steps > lastSteps, $"round {round}: steps {check.Steps} did not grow past {lastSteps}");
            lastSteps = check.Steps;
        }

        Assert.Null(domain.Fault);
        Assert.True(domain.LastReportedSweeps > 0, "the guest reported its sweeps on its I/O port");
    }

    [KvmFact]
    public void Pause_ReallyStops_MemoryUnchangedBetweenTwoReadsWhilePaused()
    {
        using var tmp = new TempDirectory();
        using var domain = KvmDomain.Create(tmp["g"], Counter(), Memory, 1);
        domain.Unpause();
        WaitForSweeps(domain, 3);
        domain.Pause();
        var first = Snapshot(domain);
        Thread.Sleep(50);
        var second = Snapshot(domain);
        Assert.True(first.AsSpan().SequenceEqual(second), "memory changed while the guest was paused");

        domain.Unpause();
        var before = domain.Sweeps;
        WaitForSweeps(domain, before + 1);
        domain.Pause();
        Assert.False(first.AsSpan().SequenceEqual(Snapshot(domain)), "the guest did not run after unpause");
    }

    [KvmTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void DirtyLog_ReportsEveryPageTheGuestWrote_AndNothingElse(bool useClearDirtyLog)
    {
        using var tmp = new TempDirectory();
        var program = new GuestProgram(GuestProgramKind.Dirty, 1UL << 20, 0); // 256 pages above 1 MiB, unpaced
        KvmDomain.Create(tmp["g"], program, Memory, 1).Dispose();
        using var domain = KvmDomain.Open(tmp["g"], useClearDirtyLog);
        Assert.Equal(useClearDirtyLog && domain.ManualDirtyProtect, domain.ManualDirtyProtect);
        domain.Unpause();
        WaitForSweeps(domain, 1);
        domain.Pause();

        var before = Snapshot(domain);
        domain.EnableLogDirty();
        var backendPfn = (Memory / 4096) - 1; // a page the guest never touches, written by the backend
        var page = new byte[4096];
        page[7] = 0x5A;
        domain.WritePage(backendPfn, PageType.NoTab, page);
        for (var round = 0; round < 3; round++)
        {
            domain.Unpause();
            WaitForSweeps(domain, domain.Sweeps + 2);
            domain.Pause();
            var bitmap = new ulong[(int)NativeBitmap.WordsFor(domain.P2mSize)];
            var count = domain.ReadAndClearDirty(bitmap);
            var after = Snapshot(domain);
            var wsFirst = GuestLayout.AreaStart / 4096;
            var wsEnd = wsFirst + 256;
            var mailbox = GuestLayout.Mailbox / 4096;
            for (var pfn = 0UL; pfn < domain.P2mSize; pfn++)
            {
                var reported = (bitmap[pfn / 64] & (1UL << (int)(pfn % 64))) != 0;
                var changed = !before.AsSpan((int)(pfn * 4096), 4096).SequenceEqual(after.AsSpan((int)(pfn * 4096), 4096));
                var inKnownSet = (pfn >= wsFirst && pfn < wsEnd) || pfn == mailbox || (round == 0 && pfn == backendPfn);
                Assert.False(changed && !reported, $"round {round}: pfn 0x{pfn:X} changed but was not reported dirty");
                Assert.False(reported && !inKnownSet, $"round {round}: pfn 0x{pfn:X} reported dirty but nothing wrote it");
                Assert.False(inKnownSet && !reported, $"round {round}: pfn 0x{pfn:X} was written (two sweeps) but not reported");
            }

            Assert.Equal(256 + 1 + (round == 0 ? 1 : 0), count);
            Assert.Equal(0, domain.ReadAndClearDirty(bitmap)); // paused: nothing new, and the log was cleared
            before = after;
        }

        domain.DisableLogDirty();
        Assert.False(domain.LogDirty);
    }

    [KvmFact]
    public void SaveRestoreRun_StepCountContinues_AndTheStreamVerifies()
    {
        using var tmp = new TempDirectory();
        var stream = tmp["guest.xl"];
        CounterCheck saved;
        using (var domain = KvmDomain.Create(tmp["src"], Counter(), Memory, 1))
        {
            domain.Unpause();
            WaitForSweeps(domain, 3);
            using (var file = File.Create(stream))
            using (var engine = new SaveEngine(domain, file, new SaveOptions { Live = false }))
            {
                engine.Run();
            }

            Assert.True(domain.IsPaused);
            saved = CounterImage.Check(domain);
            Assert.True(saved.Consistent);
        }

        using (var input = File.OpenRead(stream))
        {
            var verdict = StreamVerifier.Verify(input);
            Assert.True(verdict.IsValid, verdict.Error?.Message);
        }

        using (var input = File.OpenRead(stream))
        {
            var (restored, _) = SimulatedRestore.ToDirectory(input, tmp["dst"]);
            restored.Dispose();
        }

        KvmDomain.Adopt(tmp["dst"]);
        using var copy = KvmDomain.Open(tmp["dst"]);
        var atRestore = CounterImage.Check(copy);
        Assert.Equal(saved, atRestore);
        copy.Unpause();
        WaitForSweeps(copy, saved.Sweeps + 2);
        copy.Pause();
        var later = CounterImage.Check(copy);
        Assert.True(later.Consistent, $"{later.BadPages} bad pages after resuming");
        Assert.True(later.Steps > saved.Steps, $"steps {later.Steps} did not continue past {saved.Steps}");
        Assert.Null(copy.Fault);
    }

    [KvmFact]
    public void LiveSave_UnderLoad_RestoresToConsistentImage()
    {
        using var tmp = new TempDirectory();
        var stream = tmp["live.xl"];
        CounterCheck final;
        SaveResult result;
        using (var domain = KvmDomain.Create(tmp["src"], Counter(), Memory, 1))
        {
            domain.Unpause();
            WaitForSweeps(domain, 1);
            using (var file = File.Create(stream))
            using (var engine = new SaveEngine(domain, file, new SaveOptions { Live = true }))
            {
                result = engine.Run();
            }

            Assert.True(domain.IsPaused);
            final = CounterImage.Check(domain);
        }

        Assert.True(result.Iterations > 1, "the save iterated while the guest ran");
        using (var input = File.OpenRead(stream))
        {
            var (restored, _) = SimulatedRestore.ToDirectory(input, tmp["dst"]);
            using (restored)
            {
                var check = CounterImage.Check(restored);
                Assert.True(check.Consistent, $"{check.BadPages} bad pages in the restored image");
                Assert.Equal(final, check);
            }
        }

        KvmDomain.Adopt(tmp["dst"]);
        using var copy = KvmDomain.Open(tmp["dst"]);
        copy.Unpause();
        WaitForSweeps(copy, final.Sweeps + 1);
        copy.Pause();
        Assert.True(CounterImage.Check(copy).Consistent);
    }

    [KvmFact]
    public void Dispose_PersistsVcpuState_ReopenResumesTheGuest()
    {
        using var tmp = new TempDirectory();
        CounterCheck before;
        using (var domain = KvmDomain.Create(tmp["g"], Counter(), Memory, 2))
        {
            domain.Unpause();
            WaitForSweeps(domain, 2);
            domain.Pause();
            before = CounterImage.Check(domain);
        }

        using (var simulated = SimulatedDomain.Open(tmp["g"]))
        {
            Assert.Equal(before, CounterImage.Check(simulated)); // the directory reads as a simulated domain too
        }

        using var again = KvmDomain.Open(tmp["g"]);
        Assert.Equal(1, again.MaxVcpuId);
        again.Unpause();
        WaitForSweeps(again, before.Sweeps + 1);
        again.Pause();
        var after = CounterImage.Check(again);
        Assert.True(after.Consistent && after.Steps > before.Steps);
    }

    [Fact]
    public unsafe void HvmContext_RoundTripsKvmState()
    {
        var states = new[] { GuestLayout.InitialState(0), GuestLayout.InitialState(1) };
        states[0].Regs.Rax = 0x1122334455667788;
        states[0].Regs.Rbp = 7;
        states[0].Regs.Rsi = 9;
        states[0].Regs.Rip = 0x10042;
        states[0].SetMsr(KvmCpuState.MsrTsc, 123456789);
        states[0].Fpu.Xmm[17] = 0xAB;
        var blob = KvmHvmContext.Build(states, 2_000_000, 0x906EA);
        Assert.Null(HvmContextBlob.Validate(blob));
        Assert.Equal(2, HvmContextBlob.CountVcpus(blob));
        var back = KvmHvmContext.Parse(blob);
        Assert.Equal(KvmHvmContext.Build(back, 2_000_000, 0x906EA), blob);
        Assert.Equal(states[0].Regs, back[0].Regs);
        Assert.Equal(states[1].Sregs.ApicBase, back[1].Sregs.ApicBase);
        Assert.Equal(0xAB, back[0].Fpu.Xmm[17]);

        // rbp sits before rsi in hvm_hw_cpu (offset 512 + 4 × 8)
        var cpu = blob.AsSpan(HvmContextBlob.DescriptorSize + HvmContextBlob.HeaderBodySize + HvmContextBlob.DescriptorSize);
        Assert.Equal(7UL, BinaryPrimitives.ReadUInt64LittleEndian(cpu[(512 + 32)..]));
        Assert.Equal(0x10042UL, BinaryPrimitives.ReadUInt64LittleEndian(cpu[640..]));
    }

    [Fact]
    public void GuestProgram_ParsesCounterAndDirty_RejectsOthers()
    {
        Assert.True(GuestProgram.TryParse("counter", out var c, out _));
        Assert.Equal(GuestProgramKind.Counter, c.Kind);
        Assert.True(GuestProgram.TryParse("dirty:64MiB:256", out var d, out _));
        Assert.Equal((GuestProgramKind.Dirty, 64UL << 20, 256UL), (d.Kind, d.WorkingSetBytes, d.RateMiBps));
        Assert.False(GuestProgram.TryParse("dirty:64MiB", out _, out var problem));
        Assert.Contains("dirty:WSS:RATE", problem, StringComparison.Ordinal);
        Assert.NotEmpty(GuestProgram.AssembleCounter());
    }

    private static GuestProgram Counter() => new(GuestProgramKind.Counter, 0, 0);

    private static byte[] Snapshot(KvmDomain domain)
    {
        var image = new byte[domain.P2mSize * 4096];
        for (var pfn = 0UL; pfn < domain.P2mSize; pfn++)
        {
            domain.ReadPage(pfn, image.AsSpan((int)(pfn * 4096), 4096));
        }

        return image;
    }

    /// <summary>Waits (bounded: 10 s) until the guest has completed <paramref name="sweeps"/> sweeps.</summary>
    private static void WaitForSweeps(KvmDomain domain, ulong sweeps)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (domain.Sweeps < sweeps)
        {
            Assert.Null(domain.Fault);
            Assert.True(DateTime.UtcNow < deadline, $"the guest did not reach {sweeps} sweeps (at {domain.Sweeps})");
            Thread.Sleep(1);
        }
    }
}
