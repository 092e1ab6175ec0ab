using System.Diagnostics;
using Xmig.Domains;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;
using Xmig.Transport;

namespace Xmig.Tests.Save;

/// <summary>
/// The bounds every policy takes (--max-iterations, --timeout with abort or switchover) and auto-converge, on a real
/// simulated domain whose guest dirties every page in every pass (written by the test, not by a thread the machine may
/// starve), so that no policy can converge by itself.
/// </summary>
public class PrecopyLimitsTests
{
    private static (SaveResult Result, List<SaveRound> Rounds, byte[] Bytes) Save(SimulatedDomain domain, SaveOptions options, int slowWriteMs = 0)
    {
        using var memory = new MemoryStream();
        using var output = new SlowStream(memory, slowWriteMs);
        var rounds = new List<SaveRound>();
        using (var engine = new SaveEngine(domain, output, options))
        {
            engine.Round = rounds.Add;
            engine.Progress = p =>
            {
                if (p.Phase == SavePhase.Iteration)
                {
                    DirtyEverything(domain, p.Iteration);
                }
            };
            var result = engine.Run();
            return (result, rounds, memory.ToArray());
        }
    }

    private static void DirtyEverything(SimulatedDomain domain, int salt)
    {
        Span<byte> data = stackalloc byte[8];
        BitConverter.TryWriteBytes(data, 0xD1D1_0000UL + (ulong)salt);
        for (var pfn = domain.Populated.NextSet(0); pfn < domain.P2mSize; pfn = domain.Populated.NextSet(pfn + 1))
        {
            domain.GuestWrite(pfn, 64, data);
        }
    }

    [Fact]
    public void MaxIterations_StopsPrecopyAfterThatManyPasses_AndSaysSo()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm", memoryMiB: 16);
        var (result, rounds, _) = Save(domain, new SaveOptions { Policy = new XenPrecopyPolicy(maxIterations: 50, targetDirtyPages: 0), Limits = new PrecopyLimits { MaxIterations = 3 } });
        Assert.Equal(PrecopyVerdict.MaxIterations, result.StopReason);
        Assert.Equal([false, false, false, true], rounds.Select(r => r.Paused));
        Assert.Equal([1, 2, 3, 4], rounds.Select(r => r.Iteration));
        Assert.True(rounds[1].DirtyPages >= (long)domain.PopulatedPages, "every page was dirtied in pass 2");
    }

    [Fact]
    public void Timeout_Abort_FailsTheSave_AndLeavesTheGuestRunningUnthrottled()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm", memoryMiB: 16);
        var options = new SaveOptions
        {
            Policy = new DowntimePrecopyPolicy(),
            Limits = new PrecopyLimits { Timeout = TimeSpan.FromMilliseconds(200), OnTimeout = TimeoutAction.Abort, AutoConverge = true },
        };
        var e = Assert.Throws<SaveTimeoutException>(() => Save(domain, options, slowWriteMs: 150));
        Assert.Contains("--timeout", e.Message, StringComparison.Ordinal);
        Assert.Contains("abandoned", e.Message, StringComparison.Ordinal);
        Assert.False(domain.IsPaused);
        Assert.False(domain.LogDirty);
        Assert.Equal(0, domain.ThrottlePercent);
    }

    [Fact]
    public void Timeout_Switchover_CutsThePass_AndTheStreamStillCarriesTheWholeImage()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm", memoryMiB: 32);
        var options = new SaveOptions
        {
            Policy = new DowntimePrecopyPolicy(TimeSpan.FromTicks(1)),
            Limits = new PrecopyLimits { Timeout = TimeSpan.FromMilliseconds(150), OnTimeout = TimeoutAction.Switchover },
        };
        var (result, rounds, bytes) = Save(domain, options, slowWriteMs: 100);
        Assert.Equal(PrecopyVerdict.Timeout, result.StopReason);
        Assert.True(domain.IsPaused);
        Assert.True(rounds[^1].Paused);

        // The cut pass left its unsent pages pending: the paused pass sent them, so the restored image is the source's.
        var source = MemoryDigest.Compute(domain);
        var (restored, _) = SaveRestoreSupport.Restore(bytes, tmp["restored"]);
        Assert.Equal(source.Sha256, restored.Sha256);
    }

    [Fact]
    public void AutoConverge_ThrottlesAGuestThatDirtiesFasterThanTheStream_AndLiftsItAtTheEnd()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm", memoryMiB: 16);
        var seen = new List<int>();
        var options = new SaveOptions
        {
            Policy = new XenPrecopyPolicy(maxIterations: 6, targetDirtyPages: 0),
            Limits = new PrecopyLimits { AutoConverge = true },
        };
        var (result, rounds, _) = Save(domain, options);
        Assert.Equal(30, result.ThrottlePercent); // passes 2+3 make 20 %, passes 4+5 make 30 %
        Assert.Equal([0, 0, 0, 20, 20, 30, 30], rounds.Select(r => r.ThrottlePercent));
        Assert.Equal(0, domain.ThrottlePercent);
    }

    [Fact]
    public void RateLimitedStream_NeverRunsAheadOfItsRate()
    {
        using var sink = new MemoryStream();
        var limited = new RateLimitedWriteStream(sink, 4 << 20);
        var clock = Stopwatch.StartNew();
        limited.Write(new byte[2 << 20]);
        clock.Stop();

        // 2 MiB at 4 MiB/s, less the one burst (50 ms) the bucket starts with: at least ~450 ms on any machine.
        Assert.Equal(2 << 20, sink.Length);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(440), $"2 MiB went out in {clock.Elapsed.TotalMilliseconds} ms");
    }

    [Theory]
    [InlineData("12MiB/s", 12L << 20)]
    [InlineData("64M", 64L << 20)]
    [InlineData("100mbit", 12_500_000L)]
    [InlineData("1gbit/s", 125_000_000L)]
    [InlineData("4096", 4096L)]
    public void Rates_ParseAsQemuAndTcWriteThem(string text, long expected)
    {
        Assert.True(ByteSize.TryParseRate(text, out var rate));
        Assert.Equal(expected, rate);
    }

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("fast")]
    [InlineData("-5M")]
    public void Rates_RefuseWhatIsNotOne(string text) => Assert.False(ByteSize.TryParseRate(text, out _));

    /// <summary>A stream whose every write takes <c>delayMs</c> (a slow link).</summary>
    private sealed class SlowStream(Stream inner, int delayMs) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => inner.Length;

        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (delayMs > 0)
            {
                Thread.Sleep(delayMs);
            }

            inner.Write(buffer);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
