using System.Buffers.Binary;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Restore;
using Xmig.Samples;
using Xmig.Tests.Domains;

namespace Xmig.Tests.Restore;

public class RestoreEngineTests
{
    public static IEnumerable<object[]> XenV2Vectors() => TestFiles.XenV2Vectors();

    [Theory]
    [MemberData(nameof(XenV2Vectors))]
    public void XenV2Vector_RestoresToManifestDigest(string name)
    {
        using var tmp = new TempDirectory();
        var legacyName = name[..name.IndexOf(".xen-", StringComparison.Ordinal)];
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "manifest.json")));
        var entry = manifest.RootElement.GetProperty(legacyName);
        var bytes = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name));
        var (digest, result) = SaveRestoreSupport.Restore(bytes, tmp["d"]);
        Assert.Equal(entry.GetProperty("memory_sha256").GetString(), digest.Sha256);
        Assert.Equal(entry.GetProperty("pages").GetUInt64(), digest.Pages);
        Assert.Equal("legacy-converter-1", result.SenderGeneration);
        Assert.Equal(0, result.CheckpointsSeen);
    }

    public static IEnumerable<object[]> LegacyVectors() =>
        Directory.GetFiles(TestFiles.Vectors, "legacy-*.bin")
            .Where(p => !p.Contains(".xen-", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(p => new object[] { Path.GetFileName(p) });

    [Theory]
    [MemberData(nameof(LegacyVectors))]
    public void LegacyVector_RestoresToManifestDigest(string name)
    {
        using var tmp = new TempDirectory();
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "manifest.json")));
        var entry = manifest.RootElement.GetProperty(name[..^4]);
        var (digest, result) = SaveRestoreSupport.Restore(File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name)), tmp["d"]);
        Assert.Equal(entry.GetProperty("memory_sha256").GetString(), digest.Sha256);
        Assert.Equal(entry.GetProperty("pages").GetUInt64(), digest.Pages);
        var checkpoints = entry.GetProperty("checkpoints").GetInt32();
        Assert.Equal(checkpoints, result.CheckpointCommitted);
        Assert.Equal(entry.TryGetProperty("xl", out _) ? "xl-legacy" : "legacy", result.StreamKind);
        Assert.Equal(
            checkpoints > 1 ? "legacy-checkpointed" : entry.GetProperty("sender").GetString() == "41" ? "legacy-4.1" : "legacy-4.0",
            result.SenderGeneration);
    }

    [Theory]
    [InlineData("legacy-pv-w64-remus3.bin")]
    [InlineData("legacy-hvm-w64-remus3.bin")]
    public void LegacyRemusVector_CutInsideLastCheckpoint_CommitsThePreviousOne(string name)
    {
        using var tmp = new TempDirectory();
        var bytes = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name));
        var (_, full) = SaveRestoreSupport.Restore(bytes, tmp["full"]);
        Assert.Equal(3, full.CheckpointCommitted);
        var (_, cut) = SaveRestoreSupport.Restore(bytes[..(bytes.Length - 100)], tmp["cut"]);
        Assert.Equal(2, cut.CheckpointCommitted);
        Assert.Equal(3, cut.CheckpointsSeen);
        Assert.NotNull(cut.Discarded);
    }

    [Fact]
    public void LegacyVector_RestoredAsPlain_CommitsFirstCheckpoint()
    {
        using var tmp = new TempDirectory();
        var bytes = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "legacy-pv-w64-remus3.bin"));
        var (_, result) = SaveRestoreSupport.Restore(bytes, tmp["d"], new RestoreOptions { Checkpointed = CheckpointedMode.No });
        Assert.Equal(1, result.CheckpointCommitted);
    }

    public static TheoryData<string, string, int, bool, bool> Samples => new()
    {
        { "xl", "hvm", 0, false, false },
        { "libxl", "pv", 0, false, false },
        { "libxc", "hvm", 0, false, false },
        { "libxl", "hvm", 3, false, false },
        { "libxl", "pv", 2, true, false },
        { "libxl", "hvm", 2, false, true },
        { "libxc", "pv", 3, false, false },
        { "libxc", "hvm", 2, false, true },
    };

    [Theory]
    [MemberData(nameof(Samples))]
    public void SampleStream_FromTheV2Writer_Restores(string kind, string guest, int checkpoints, bool colo, bool endAfter)
    {
        using var tmp = new TempDirectory();
        var options = new SampleStreamOptions
        {
            Kind = kind == "xl" ? StreamKind.Xl : kind == "libxl" ? StreamKind.Libxl : StreamKind.Libxc,
            Guest = guest == "pv" ? GuestType.Pv : GuestType.Hvm,
            Pages = 100,
            Checkpoints = checkpoints,
            Colo = colo,
            EndAfterCheckpoints = endAfter,
        };
        var (digest, result) = SaveRestoreSupport.Restore(SampleStreams.Create(options), tmp["d"]);
        Assert.Equal(checkpoints, result.CheckpointCommitted);
        Assert.Equal(checkpoints, result.CheckpointsSeen);
        Assert.True(digest.Pages >= 100);
        Assert.Equal(endAfter || checkpoints == 0 ? "END" : $"end of stream after checkpoint {checkpoints}", result.End);
    }

    [Fact]
    public void PvPfnBeyondDeclaredP2mSize_IsRefusedWithRecordAndOffset()
    {
        using var tmp = new TempDirectory();
        var (bytes, offset) = PvStream(w =>
        {
            var at = w.Output.Position;
            w.WritePageData([PageTypes.Encode(16, PageType.NoTab)], new byte[4096]);
            return at;
        });
        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(bytes, tmp["d"]));
        Assert.Equal("PAGE_DATA", e.What);
        Assert.Equal(offset, e.Offset);
        Assert.Contains("beyond the declared p2m size", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void HvmPfnBeyondMemoryBound_IsRefused()
    {
        using var tmp = new TempDirectory();
        var bytes = Build(w =>
        {
            w.WriteImageHeader();
            w.WriteDomainHeader(DomainHeader.Create(GuestType.Hvm, 4, 22));
            w.WriteStaticDataEnd();
            w.WritePageData([PageTypes.Encode(0x100000, PageType.NoTab)], new byte[4096]);
            return 0;
        }).Bytes;
        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(bytes, tmp["d"], new RestoreOptions { MaxGuestPhysicalBytes = 1UL << 30 }));
        Assert.Contains("restore bound", e.Message);
        Assert.False(Directory.Exists(tmp["d"]));
    }

    [Fact]
    public void BadRecordInBufferedCheckpoint_FailsAtCommitNamingItsOriginalOffset()
    {
        using var tmp = new TempDirectory();
        var (bytes, offset) = PvStream(w =>
        {
            w.WriteCheckpoint();
            var at = w.Output.Position;
            w.WritePageData([PageTypes.Encode(99, PageType.NoTab)], new byte[4096]);
            w.WriteCheckpoint();
            return at;
        }, checkpointed: true);
        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(bytes, tmp["d"]));
        Assert.Equal("PAGE_DATA", e.What);
        Assert.Equal(offset, e.Offset);
        Assert.Contains("committing checkpoint 2", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Theory]
    [InlineData("toolstack")]
    [InlineData("dirty-pfn-list")]
    [InlineData("unknown-mandatory")]
    [InlineData("basic-size")]
    [InlineData("hvm-record")]
    [InlineData("static-twice")]
    public void MalformedRecord_IsRefused(string what)
    {
        using var tmp = new TempDirectory();
        var (bytes, offset) = PvStream(w =>
        {
            var at = w.Output.Position;
            switch (what)
            {
                case "toolstack": w.WriteToolstack([1, 2, 3]); break;
                case "dirty-pfn-list": w.WriteCheckpointDirtyPfnList([1]); break;
                case "unknown-mandatory": w.WriteRecord(0x13u, [1]); break;
                case "basic-size": w.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, 0, new byte[100]); break;
                case "hvm-record": w.WriteHvmContext([1, 2, 3, 4]); break;
                case "static-twice": w.WriteStaticDataEnd(); break;
            }

            return at;
        });
        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(bytes, tmp["d"]));
        Assert.Equal(offset, e.Offset);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void UnknownOptionalRecord_IsSkipped()
    {
        using var tmp = new TempDirectory();
        var (bytes, _) = PvStream(w =>
        {
            w.WriteRecord(0x8000_0042u, [1, 2, 3]);
            return 0;
        });
        var (digest, _) = SaveRestoreSupport.Restore(bytes, tmp["d"]);
        Assert.Equal(16UL, digest.Pages);
    }

    [Fact]
    public void VerifyRecord_ComparesWithoutWriting()
    {
        using var tmp = new TempDirectory();
        var (bytes, _) = PvStream(w =>
        {
            w.WriteVerify();
            var page = new byte[4096];
            page[0] = 0xEE;
            w.WritePageData([PageTypes.Encode(3, PageType.NoTab)], page);
            return 0;
        });
        var (domain, result) = SimulatedRestore.ToDirectory(new MemoryStream(bytes), tmp["d"]);
        using (domain)
        {
            Assert.Equal(1, result.VerifyMismatches);
            Assert.Equal(3, domain.GetPage(3)[0]);
        }
    }

    [Fact]
    public void EmptyAndGarbageInput_AreRefused()
    {
        using var tmp = new TempDirectory();
        Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore([], tmp["a"]));
        var garbage = new byte[64];
        garbage.AsSpan().Fill(0xFF);
        Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(garbage, tmp["b"]));
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void EmulatorRecordInPvStream_IsRefused()
    {
        using var tmp = new TempDirectory();
        using var output = new MemoryStream();
        using (var buffer = new OutputBuffer(output))
        {
            var libxl = new LibxlWriter(buffer);
            libxl.WriteHeader();
            var w = libxl.BeginLibxcContext();
            WritePvBody(w);
            w.WriteEnd();
            libxl.WriteEmulatorContext((uint)EmulatorId.QemuUpstream, 0, [1, 2, 3]);
            libxl.WriteEnd();
            buffer.Flush();
        }

        var e = Assert.Throws<StreamFormatException>(() => SaveRestoreSupport.Restore(output.ToArray(), tmp["d"]));
        Assert.Equal("EMULATOR_CONTEXT", e.What);
    }

    /// <summary>A PV libxc stream of 16 pages with <paramref name="extra"/> records before the end; returns what it returns.</summary>
    private static (byte[] Bytes, long Offset) PvStream(Func<LibxcWriter, long> extra, bool checkpointed = false) => Build(w =>
    {
        WritePvBody(w);
        var at = extra(w);
        if (!checkpointed)
        {
            w.WriteEnd();
        }

        return at;
    });

    private static void WritePvBody(LibxcWriter w)
    {
        w.WriteImageHeader();
        w.WriteDomainHeader(DomainHeader.Create(GuestType.Pv, 4, 22));
        w.WriteX86PvInfo(new X86PvInfo(8, 4));
        w.WriteStaticDataEnd();
        w.WriteX86PvP2mFrames(0, 15, [5]);
        var entries = new ulong[16];
        var pages = new byte[16 * 4096];
        for (var i = 0; i < 16; i++)
        {
            entries[i] = PageTypes.Encode((ulong)i, PageType.NoTab);
            BinaryPrimitives.WriteUInt64LittleEndian(pages.AsSpan(i * 4096), (ulong)i);
        }

        w.WritePageData(entries, pages);
        w.WriteX86TscInfo(new X86TscInfo(0, 1000, 1, 1));
        w.WriteSharedInfo(new byte[4096]);
        w.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, 0, new byte[X86PvVcpuView.BasicContextSize64]);
    }

    private static (byte[] Bytes, long Offset) Build(Func<LibxcWriter, long> write)
    {
        using var output = new MemoryStream();
        long at;
        using (var buffer = new OutputBuffer(output))
        {
            at = write(new LibxcWriter(buffer));
            buffer.Flush();
        }

        return (output.ToArray(), at);
    }
}
