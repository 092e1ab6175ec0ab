using System.IO.Pipes;
using Xmig.Domains;
using Xmig.Restore;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;

namespace Xmig.Tests.Save;

/// <summary>The save as steps and a checkpoint driver: cancellation, broken outputs, the acknowledgement hook, stops.</summary>
public class SaveDriverTests
{
    /// <summary>Where a save is cancelled.</summary>
    public enum CancelPoint
    {
        Setup,
        PrecopyIteration,
        StopAndCopy,
        NonLiveCopy,
        BetweenCheckpoints,
        AckHook,
    }

    [Theory]
    [InlineData(CancelPoint.Setup, "pv", 0)]
    [InlineData(CancelPoint.PrecopyIteration, "hvm", 0)]
    [InlineData(CancelPoint.PrecopyIteration, "pv", 2)]
    [InlineData(CancelPoint.StopAndCopy, "hvm", 0)]
    [InlineData(CancelPoint.StopAndCopy, "pv", 3)]
    [InlineData(CancelPoint.NonLiveCopy, "hvm", 0)]
    [InlineData(CancelPoint.BetweenCheckpoints, "hvm", 3)]
    [InlineData(CancelPoint.BetweenCheckpoints, "pv", SaveOptions.UntilStopped)]
    [InlineData(CancelPoint.AckHook, "hvm", 2)]
    public void CancelledSave_LeavesTheGuestRunningWithLogDirtyOff(CancelPoint point, string guest, int checkpoints)
    {
        using var domain = Source(guest);
        using var cts = new CancellationTokenSource();
        var options = new SaveOptions
        {
            Kind = SaveStreamKind.Libxl,
            Checkpoints = checkpoints,
            Live = point != CancelPoint.NonLiveCopy,
            CheckpointInterval = TimeSpan.FromSeconds(point == CancelPoint.BetweenCheckpoints ? 30 : 0),
        };
        using var engine = new SaveEngine(domain, Stream.Null, options);
        var pausedAtCancel = false;
        engine.Progress = p =>
        {
            var hit = point switch
            {
                CancelPoint.Setup => p.Phase == SavePhase.Setup,
                CancelPoint.PrecopyIteration => p.Phase == SavePhase.Iteration,
                CancelPoint.StopAndCopy or CancelPoint.NonLiveCopy => p.Phase == SavePhase.StopAndCopy,
                CancelPoint.BetweenCheckpoints => p.Phase == SavePhase.Resumed,
                _ => false,
            };
            Dirty(domain, p.Checkpoint, p.Phase); // so a live save has a dirty set to send paused

            if (hit)
            {
                pausedAtCancel = domain.IsPaused;
                cts.Cancel();
            }
        };
        using var driver = options.Checkpointed ? new CheckpointDriver(engine) : null;
        if (driver != null && point == CancelPoint.AckHook)
        {
            driver.AfterCheckpoint = async (info, ct) =>
            {
                pausedAtCancel = domain.IsPaused;
                cts.Cancel();
                await Task.Delay(Timeout.Infinite, ct);
            };
        }

        Assert.ThrowsAny<OperationCanceledException>(() => driver != null ? driver.Run(cts.Token) : engine.Run(cts.Token));
        Assert.True(cts.IsCancellationRequested);
        Assert.Equal(point is CancelPoint.StopAndCopy or CancelPoint.NonLiveCopy or CancelPoint.AckHook, pausedAtCancel);
        Assert.False(domain.IsPaused);
        Assert.False(domain.LogDirty);
    }

    [Theory]
    [InlineData("xl", 0, 0L)]
    [InlineData("xl", 0, 5L << 20)]
    [InlineData("libxl", 3, 100L)]
    [InlineData("libxc", 3, -1L)]
    [InlineData("legacy-4.1", 0, 3L << 20)]
    [InlineData("legacy-4.0", 2, -1L)]
    public void SaveWhoseOutputBreaks_LeavesTheGuestRunningWithLogDirtyOff(string kind, int checkpoints, long breakAfter)
    {
        using var domain = Source("hvm");
        var options = new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = checkpoints, CheckpointInterval = TimeSpan.Zero };
        var output = new BreakingStream(breakAfter < 0 ? long.MaxValue : breakAfter);
        using var engine = new SaveEngine(domain, output, options);
        engine.Progress = p =>
        {
            Dirty(domain, p.Checkpoint, p.Phase);
            if (breakAfter < 0 && p.Phase == SavePhase.Resumed)
            {
                output.Limit = output.Position + 10; // breaks inside checkpoint 2
            }
        };
        var e = Assert.Throws<IOException>(() => engine.Run());
        Assert.Contains("broke", e.Message, StringComparison.Ordinal);
        Assert.False(domain.IsPaused);
        Assert.False(domain.LogDirty);
    }

    [Fact]
    public async Task SaveIntoAPipeWhoseReaderCloses_FailsWithIOExceptionAndLeavesTheGuestRunning()
    {
        using var domain = Source("pv");
        using var server = new AnonymousPipeServerStream(PipeDirection.Out);
        var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        var reader = Task.Run(() =>
        {
            var buffer = new byte[64 << 10];
            var total = 0;
            while (total < (1 << 20))
            {
                var n = client.Read(buffer);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }

            client.Dispose(); // the reader goes away mid-stream
            return total;
        });
        using var engine = new SaveEngine(domain, server, new SaveOptions { Kind = SaveStreamKind.Libxc, Checkpoints = 4, CheckpointInterval = TimeSpan.Zero });
        engine.Progress = p => Dirty(domain, p.Checkpoint, p.Phase);
        Assert.Throws<IOException>(() => engine.Run());
        Assert.True(await reader.WaitAsync(TimeSpan.FromSeconds(30)) >= 1 << 20);
        Assert.False(domain.IsPaused);
        Assert.False(domain.LogDirty);
    }

    [Theory]
    [InlineData("libxl")]
    [InlineData("legacy-4.1")]
    public async Task AckHook_IsCalledOncePerCheckpointBeforeResume_WhileTheGuestStaysPaused(string kind)
    {
        using var domain = Source("hvm");
        var events = new List<string>();
        var options = new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = 3, CheckpointInterval = TimeSpan.FromMilliseconds(1) };
        using var engine = new SaveEngine(domain, Stream.Null, options);
        engine.Progress = p =>
        {
            Dirty(domain, p.Checkpoint, p.Phase);
            if (p.Phase is SavePhase.Checkpoint or SavePhase.Resumed)
            {
                events.Add($"{p.Phase} {p.Checkpoint}");
            }
        };
        using var driver = new CheckpointDriver(engine);
        driver.AfterCheckpoint = async (info, ct) =>
        {
            Assert.True(domain.IsPaused);
            events.Add($"ack {info.Checkpoint}{(info.Last ? " last" : "")}");
            await Task.Delay(20, ct); // the secondary takes its time
            Assert.True(domain.IsPaused);
        };
        var result = await driver.RunAsync();
        Assert.Equal(
            ["Checkpoint 1", "ack 1", "Resumed 1", "Checkpoint 2", "ack 2", "Resumed 2", "Checkpoint 3", "ack 3 last"],
            events);
        Assert.Equal(3, result.Checkpoints);
        Assert.True(domain.IsPaused); // success: paused, as a migration's source must be
        Assert.False(domain.LogDirty);
    }

    [Theory]
    [InlineData("libxl", "hvm", "END")]
    [InlineData("libxc", "pv", "END")]
    [InlineData("legacy-4.1", "hvm", "LAST_CHECKPOINT")]
    [InlineData("legacy-4.1", "pv", "LAST_CHECKPOINT")]
    public void UnboundedCheckpoints_EndAtAStopRequest_WithAValidStream(string kind, string guest, string marker)
    {
        using var tmp = new TempDirectory();
        using var domain = Source(guest);
        using var output = new MemoryStream();
        var digests = new List<MemoryDigestResult>();
        var options = new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = SaveOptions.UntilStopped, CheckpointInterval = TimeSpan.FromMilliseconds(5) };
        using var engine = new SaveEngine(domain, output, options);
        using var driver = new CheckpointDriver(engine);
        engine.Progress = p =>
        {
            Dirty(domain, p.Checkpoint, p.Phase);
            if (p.Phase == SavePhase.Resumed && p.Checkpoint == 4)
            {
                driver.RequestStop(); // checkpoint 5 is the last
            }
        };
        driver.AfterCheckpoint = (info, ct) =>
        {
            digests.Add(MemoryDigest.Compute(domain));
            Assert.Equal(info.Checkpoint == 5, info.Last);
            return ValueTask.CompletedTask;
        };
        var result = driver.Run();
        Assert.Equal(5, result.Checkpoints);
        Assert.Equal(5, digests.Count);
        Assert.Equal(5, digests.Distinct().Count());

        var backend = new MemoryDomainBackend();
        var (restored, restoredResult) = DomainRestore.Run(new MemoryStream(output.ToArray()), backend, new RestoreOptions { Checkpointed = CheckpointedMode.Auto });
        using (restored)
        {
            Assert.Same(backend.Completed, restored);
            Assert.Equal(5, restoredResult.CheckpointCommitted);
            Assert.Equal(digests[^1], MemoryDigest.Compute(restored));
            Assert.Contains(marker, restoredResult.End, StringComparison.Ordinal);
        }

        var (simulated, _) = SaveRestoreSupport.Restore(output.ToArray(), tmp["sim"]);
        Assert.Equal(digests[^1], simulated);
    }

    [Theory]
    [InlineData("xl", "hvm", true)]
    [InlineData("libxc", "pv", true)]
    [InlineData("libxl", "pv", false)]
    [InlineData("legacy-4.0", "hvm", true)]
    [InlineData("legacy-4.1", "hvm", false)]
    [InlineData("legacy-4.1", "pv", true)]
    [InlineData("legacy-4.0", "pv", false)]
    public void TestBackend_RoundTripsThroughSaveAndRestore(string kind, string guest, bool live)
    {
        using var domain = Source(guest);
        using var output = new MemoryStream();
        using (var engine = new SaveEngine(domain, output, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Live = live }))
        {
            engine.Progress = p => Dirty(domain, p.Checkpoint, p.Phase);
            var result = engine.Run();
            // The guest dirties 3 pages per pass: Xen's v2 policy stops after the first pass (fewer than 50 dirty),
            // the legacy one after the second (it sent fewer than 50); then the paused pass.
            Assert.Equal(live ? (kind.StartsWith("legacy", StringComparison.Ordinal) ? 3 : 2) : 1, result.Iterations);
        }

        Assert.True(domain.IsPaused);
        var source = MemoryDigest.Compute(domain);
        var (restored, _) = DomainRestore.Run(new MemoryStream(output.ToArray()), new MemoryDomainBackend(), new RestoreOptions { GuestType = domain.GuestType });
        using (restored)
        {
            Assert.IsType<MemoryDomain>(restored);
            Assert.Equal(source, MemoryDigest.Compute(restored));
            Assert.Equal(domain.MaxVcpuId, restored.MaxVcpuId);
            Assert.Equal(domain.TscInfo, restored.TscInfo);
            Assert.Equal(domain.HvmContext.ToArray(), restored.HvmContext.ToArray());
            Assert.Equal(domain.SharedInfo.ToArray(), restored.SharedInfo.ToArray());
            Assert.Equal(domain.GetVcpuContext(0, VcpuContextKind.Basic).ToArray(), restored.GetVcpuContext(0, VcpuContextKind.Basic).ToArray());
        }
    }

    [Fact]
    public void Restore_RefusesAVcpuBeyondTheBackendsLimit()
    {
        using var domain = Source("pv");
        using var output = new MemoryStream();
        using (var engine = new SaveEngine(domain, output, new SaveOptions { Kind = SaveStreamKind.Libxc, Live = false }))
        {
            engine.Run();
        }

        var backend = new MemoryDomainBackend { Limits = new DomainLimits(1UL << 24, 0) };
        var e = Assert.Throws<Xmig.Formats.StreamFormatException>(() => DomainRestore.Run(new MemoryStream(output.ToArray()), backend));
        Assert.Contains("vcpu_id 1 exceeds 0", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A test-backend guest copied from a small simulated one (two vCPUs, 16 MiB).</summary>
    private static MemoryDomain Source(string guest)
    {
        using var tmp = new TempDirectory();
        using var simulated = SaveRestoreSupport.Domain(tmp, guest, memoryMiB: 16);
        return MemoryDomain.CopyOf(simulated);
    }

    /// <summary>While the guest runs (first pass, after a resume), it writes pages that differ per checkpoint.</summary>
    private static void Dirty(MemoryDomain domain, int checkpoint, SavePhase phase = SavePhase.Iteration)
    {
        if (phase is SavePhase.Iteration or SavePhase.Resumed && !domain.IsPaused)
        {
            var tag = phase == SavePhase.Resumed ? checkpoint + 1 : checkpoint; // what the next checkpoint carries
            for (var i = 0; i < 3; i++)
            {
                var pfn = domain.NextPopulated((ulong)((tag * 97) + (i * 13)));
                domain.GuestWrite(pfn, 8 * i, BitConverter.GetBytes(0x5A5A_0000UL + (ulong)tag));
            }
        }
    }

    /// <summary>An output that accepts <paramref name="limit"/> octets, then fails like a reset connection.</summary>
    private sealed class BreakingStream(long limit) : Stream
    {
        private long _written;

        public long Limit { get; set; } = limit;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _written; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > Limit)
            {
                throw new IOException($"connection broke after {_written} octets");
            }

            _written += buffer.Length;
        }
    }
}
