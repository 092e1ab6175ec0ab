using Xmig.Domains;
using Xmig.Formats;
using Xmig.Restore;
using Xmig.Samples;
using Xmig.Save;
using Xmig.Tests.Domains;

namespace Xmig.Tests.Restore;

public class RoundTripTests
{
    public static TheoryData<string, int, string> Guests => new()
    {
        { "hvm", 8, "xl" }, { "hvm", 8, "libxl" }, { "hvm", 8, "libxc" },
        { "pv", 8, "xl" }, { "pv", 8, "libxl" }, { "pv", 8, "libxc" },
        { "pv", 4, "xl" }, { "pv", 4, "libxc" },
        { "hvm", 8, "legacy-4.0" }, { "hvm", 8, "legacy-4.1" },
        { "pv", 8, "legacy-4.0" }, { "pv", 8, "legacy-4.1" }, { "pv", 4, "legacy-4.1" },
    };

    [Theory]
    [MemberData(nameof(Guests))]
    public void RestoreOfSave_KeepsDigestAndState(string guest, int width, string kind)
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, guest, width, vcpus: 3, seed: 21);
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind) });
        var before = saved.Final;
        Assert.Equal(before, MemoryDigest.Compute(source));

        var (domain, result) = SimulatedRestore.ToDirectory(new MemoryStream(saved.Bytes), tmp["restored"]);
        using (domain)
        {
            Assert.Equal(before, MemoryDigest.Compute(domain));
            var legacy = kind.StartsWith("legacy", StringComparison.Ordinal);
            Assert.Equal(legacy ? "legacy" : kind, result.StreamKind);
            Assert.Equal(legacy ? kind : "xen-4.22", result.SenderGeneration);
            Assert.Equal(legacy ? 1 : 0, result.CheckpointsSeen);
            Assert.Equal(source.GuestType, domain.GuestType);
            Assert.Equal(source.GuestWidth, domain.GuestWidth);
            Assert.Equal(source.P2mSize, domain.P2mSize);
            Assert.Equal(source.MaxVcpuId, domain.MaxVcpuId);
            Assert.Equal(source.TscInfo, domain.TscInfo);
            if (!legacy)
            {
                // Legacy streams carry no CPU policy (the receiver regenerates one).
                Assert.Equal(source.CpuidPolicy.ToArray(), domain.CpuidPolicy.ToArray());
                Assert.Equal(source.MsrPolicy.ToArray(), domain.MsrPolicy.ToArray());
            }

            if (guest == "hvm")
            {
                Assert.Equal(source.HvmContext.ToArray(), domain.HvmContext.ToArray());
                for (uint i = 0; i < HvmParam.Count; i++)
                {
                    // Legacy streams have no chunk for the parameters newer than 4.5 (VM86_TSS_SIZED and later).
                    if (!legacy || i < HvmParam.X87FipWidth)
                    {
                        Assert.Equal(source.GetHvmParam(i), domain.GetHvmParam(i));
                    }
                }

                if (kind != "libxc")
                {
                    Assert.Equal(source.EmulatorContext.ToArray(), domain.EmulatorContext.ToArray());
                }

                if (kind is not ("libxc" or "legacy-4.0"))
                {
                    Assert.Equal(source.EmulatorXenstore, domain.EmulatorXenstore); // legacy 4.1+: via the TOOLSTACK chunk
                }
            }
            else
            {
                Assert.Equal(source.SharedInfo.ToArray(), domain.SharedInfo.ToArray());
                Assert.Equal(source.P2mFrames.ToArray(), domain.P2mFrames.ToArray());
                for (var v = 0; v <= source.MaxVcpuId; v++)
                {
                    for (var k = VcpuContextKind.Basic; k <= VcpuContextKind.Msrs; k++)
                    {
                        Assert.Equal(source.GetVcpuContext(v, k).ToArray(), domain.GetVcpuContext(v, k).ToArray());
                    }
                }

                var a = new PageType[source.P2mSize];
                var b = new PageType[source.P2mSize];
                source.GetPageTypes(0, a);
                domain.GetPageTypes(0, b);
                Assert.Equal(a, b);
            }
        }

        // The directory is a domain directory that 'domain digest' accepts.
        var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "digest", tmp["restored"]);
        Assert.True(code == 0, stderr);
        Assert.StartsWith(before.Sha256, stdout);
    }

    [Theory]
    [InlineData("hvm", "xl", true)]
    [InlineData("pv", "libxl", true)]
    [InlineData("hvm", "libxc", false)]
    public void RestoreOfLiveSaveUnderWorkload_HasDigestOfTheStoppedDomain(string guest, string kind, bool live)
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, guest, memoryMiB: 32);
        var before = MemoryDigest.Compute(source);
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Live = live }, "uniform:200");
        var (digest, result) = SaveRestoreSupport.Restore(saved.Bytes, tmp["restored"]);
        Assert.Equal(saved.Final, digest);
        Assert.Equal("END", result.End);
        if (live)
        {
            Assert.NotEqual(before.Sha256, saved.Final.Sha256); // the guest ran and wrote while it was saved
            Assert.True(saved.Result.Iterations >= 2);
        }
    }

    [Theory]
    [InlineData("hvm", "xl")]
    [InlineData("hvm", "libxc")]
    [InlineData("pv", "libxl")]
    [InlineData("hvm", "legacy-4.1")]
    [InlineData("pv", "legacy-4.0")]
    public void CheckpointedSave_RestoresLastCheckpoint(string guest, string kind)
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, guest, memoryMiB: 16);
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = 3 }, "hotset:1MiB:100");
        Assert.Equal(3, saved.AtCheckpoint.Count);
        Assert.Equal(saved.Final, saved.AtCheckpoint[2]);

        var (digest, result) = SaveRestoreSupport.Restore(saved.Bytes, tmp["restored"]);
        Assert.Equal(saved.Final, digest);
        Assert.Equal(3, result.CheckpointsSeen);
        Assert.Equal(3, result.CheckpointCommitted);
        Assert.Null(result.Discarded);
    }

    [Theory]
    [InlineData("hvm", "xl", 0.5)]
    [InlineData("hvm", "libxc", 0.5)]
    [InlineData("pv", "libxl", 0.5)]
    [InlineData("pv", "libxl", 0.999)]
    [InlineData("hvm", "libxl", 0.999)]
    [InlineData("pv", "legacy-4.1", 0.5)]
    [InlineData("hvm", "legacy-4.1", 0.999)]
    public void CutShortLastCheckpoint_CommitsThePreviousOne(string guest, string kind, double where)
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, guest, memoryMiB: 16);
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = 3 }, "uniform:100");
        Assert.NotEqual(saved.AtCheckpoint[1], saved.AtCheckpoint[2]);

        // Cut inside checkpoint 3 (0.999: in its very last records, the libxl CHECKPOINT_END for wrapped streams).
        var start = saved.CheckpointEnds[1];
        var cut = (int)(start + ((saved.CheckpointEnds[2] - start) * where));
        Assert.True(cut > start && cut < saved.CheckpointEnds[2]);
        var (digest, result) = SaveRestoreSupport.Restore(saved.Bytes[..cut], tmp["restored"]);
        Assert.Equal(saved.AtCheckpoint[1], digest);
        Assert.Equal(2, result.CheckpointCommitted);
        Assert.Equal(3, result.CheckpointsSeen);
        Assert.NotNull(result.Discarded);
        Assert.Contains("checkpoint 3", result.Discarded);
    }

    /// <summary>
    /// The case matrix end to end: each sender generation (plain or checkpointed) × receiver mode restores the
    /// checkpoint the spec says (legacy-stream.md §10.3; v2-stream.md §6.4), with that checkpoint's digest.
    /// </summary>
    [Theory]
    [InlineData("legacy-4.0", 0, "no", 1)]
    [InlineData("legacy-4.0", 0, "auto", 1)]
    [InlineData("legacy-4.0", 0, "yes", 1)]
    [InlineData("legacy-4.1", 0, "no", 1)]
    [InlineData("legacy-4.1", 0, "auto", 1)]
    [InlineData("legacy-4.1", 0, "yes", 1)]
    [InlineData("legacy-4.1", 3, "no", 1)]
    [InlineData("legacy-4.1", 3, "auto", 3)]
    [InlineData("legacy-4.1", 3, "yes", 3)]
    [InlineData("legacy-4.0", 3, "auto", 3)]
    [InlineData("libxl", 0, "no", 0)]
    [InlineData("libxl", 0, "yes", 0)]
    [InlineData("libxl", 3, "auto", 3)]
    [InlineData("libxl", 3, "yes", 3)]
    [InlineData("libxl", 3, "no", -1)]
    public void CaseMatrix_SenderByReceiverMode_RestoresTheRightCheckpoint(string kind, int checkpoints, string mode, int committed)
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, "pv");
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = checkpoints }, "uniform:50");
        var options = new RestoreOptions
        {
            Checkpointed = mode switch { "no" => CheckpointedMode.No, "yes" => CheckpointedMode.Yes, _ => CheckpointedMode.Auto },
        };
        if (committed < 0)
        {
            Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(saved.Bytes, tmp["r"], options));
            Assert.False(Directory.Exists(tmp["r"]));
            return;
        }

        var (digest, result) = SaveRestoreSupport.Restore(saved.Bytes, tmp["r"], options);
        Assert.Equal(committed, result.CheckpointCommitted);
        Assert.Equal(committed <= 1 || checkpoints == 0 ? (checkpoints == 0 ? saved.Final : saved.AtCheckpoint[0]) : saved.AtCheckpoint[committed - 1], digest);
    }

    [Fact]
    public void CheckpointedStream_RestoredAsPlain_FailsAndLeavesNothing()
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveStreamKind.Xl, Checkpoints = 2 });
        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(saved.Bytes, tmp["restored"], new RestoreOptions { Checkpointed = CheckpointedMode.No }));
        Assert.Contains("CHECKPOINT", e.Message);
        Assert.False(Directory.Exists(tmp["restored"]));
        Assert.Single(Directory.GetDirectories(tmp.Path)); // only the source
    }

    [Fact]
    public void PlainStream_RestoredAsCheckpointed_Works()
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, "pv");
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveStreamKind.Libxl });
        var (digest, result) = SaveRestoreSupport.Restore(saved.Bytes, tmp["restored"], new RestoreOptions { Checkpointed = CheckpointedMode.Yes });
        Assert.Equal(saved.Final, digest);
        Assert.Equal(0, result.CheckpointCommitted);
    }

    [Fact]
    public void FirstCheckpointCutShort_IsAnError()
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveStreamKind.Xl, Checkpoints = 2 });
        var cut = (int)saved.CheckpointEnds[0] - 4;
        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(saved.Bytes[..cut], tmp["restored"]));
        Assert.Contains("truncated", e.Message);
        Assert.False(Directory.Exists(tmp["restored"]));
    }

    [Fact]
    public void Restore_ThroughOneOctetReads_GivesSameDigest()
    {
        using var tmp = new TempDirectory();
        var bytes = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Guest = GuestType.Hvm, Pages = 40, Checkpoints = 2 });
        var (a, _) = SimulatedRestore.ToDirectory(new MemoryStream(bytes), tmp["a"]);
        var (b, result) = SimulatedRestore.ToDirectory(SaveRestoreSupport.Trickle(bytes), tmp["b"]);
        using (a)
        using (b)
        {
            Assert.Equal(MemoryDigest.Compute(a), MemoryDigest.Compute(b));
            Assert.Equal(2, result.CheckpointCommitted);
        }
    }
}
