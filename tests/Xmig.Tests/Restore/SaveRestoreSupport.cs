using Xmig.Domains;
using Xmig.Restore;
using Xmig.Save;
using Xmig.Tests.Domains;

namespace Xmig.Tests.Restore;

/// <summary>A saved stream with the source digest at each checkpoint and where each checkpoint ends in the stream.</summary>
internal sealed record SavedStream(byte[] Bytes, MemoryDigestResult Final, List<MemoryDigestResult> AtCheckpoint, List<long> CheckpointEnds, SaveResult Result);

internal static class SaveRestoreSupport
{
    public static SaveStreamKind Kind(string kind) => kind switch
    {
        "xl" => SaveStreamKind.Xl,
        "libxl" => SaveStreamKind.Libxl,
        "legacy-4.0" => SaveStreamKind.Legacy40,
        "legacy-4.1" => SaveStreamKind.Legacy41,
        _ => SaveStreamKind.Libxc,
    };

    /// <summary>Saves <paramref name="domain"/> (running <paramref name="workload"/> meanwhile) into memory.</summary>
    /// <remarks>
    /// During the first live pass and between checkpoints the guest also writes one page deterministically (the
    /// workload thread may not get to run on a busy machine), so a live save always has a dirty set to resend and
    /// consecutive checkpoints always differ.
    /// </remarks>
    public static SavedStream Save(SimulatedDomain domain, SaveOptions options, string workload = "idle", ulong seed = 1)
    {
        Assert.True(WorkloadSpec.TryParse(workload, out var spec, out var error), error);
        using var output = new MemoryStream();
        var digests = new List<MemoryDigestResult>();
        var ends = new List<long>();
        var wroteInIteration = false;
        domain.StartWorkload(spec, seed);
        SaveResult result;
        try
        {
            using var engine = new SaveEngine(domain, output, options with { CheckpointInterval = TimeSpan.FromMilliseconds(20) });
            engine.Progress = progress =>
            {
                var (phase, checkpoint) = (progress.Phase, progress.Checkpoint);
                if (phase == SavePhase.Resumed || (phase == SavePhase.Iteration && !wroteInIteration))
                {
                    wroteInIteration |= phase == SavePhase.Iteration;
                    var pfn = domain.Populated.NextSet((ulong)(checkpoint * 7));
                    domain.GuestWrite(pfn, 0, BitConverter.GetBytes(seed + (ulong)checkpoint + 0x5A5A_0000UL));
                }

                if (phase == SavePhase.Checkpoint)
                {
                    Assert.True(domain.IsPaused);
                    digests.Add(MemoryDigest.Compute(domain));
                    ends.Add(output.Length);
                }
            };
            result = engine.Run();
        }
        finally
        {
            domain.StopWorkload();
        }

        Assert.True(domain.IsPaused);
        return new SavedStream(output.ToArray(), MemoryDigest.Compute(domain), digests, ends, result);
    }

    /// <summary>Restores <paramref name="bytes"/> into <paramref name="dir"/> and returns the digest and the result.</summary>
    public static (MemoryDigestResult Digest, RestoreResult Result) Restore(byte[] bytes, string dir, RestoreOptions? options = null)
    {
        var (domain, result) = SimulatedRestore.ToDirectory(new MemoryStream(bytes), dir, options);
        using (domain)
        {
            return (MemoryDigest.Compute(domain), result);
        }
    }

    /// <summary>A stream that hands out at most one octet per read (a slow pipe).</summary>
    public static Stream Trickle(byte[] bytes) => new TrickleStream(bytes);

    public static SimulatedDomain Domain(TempDirectory tmp, string guest, int width = 8, ulong memoryMiB = 16, int vcpus = 2, ulong seed = 1) =>
        DomainTestSupport.CreateDomain(tmp["src-" + Guid.NewGuid().ToString("N")[..8]], guest == "pv" ? GuestType.Pv : GuestType.Hvm, memoryMiB, vcpus, seed, width);

    private sealed class TrickleStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, 1));

        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, 1)]);

        public override bool CanSeek => false;
    }
}
