using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Tests.Formats.Legacy;

/// <summary>Every hole in Xen's validation listed in legacy-stream.md §11, rejected with a clear error and its offset.</summary>
public class LegacyValidationTests
{
    private const int BodyStart64 = 0x145C; // RawLegacy.PvHeader(16) with W = 8

    private static StreamFormatException Rejects(byte[] bytes, int width, GuestType guest, long offset, params string[] fragments)
    {
        var e = Assert.Throws<StreamFormatException>(() => LegacyTestStreams.Restore(bytes, width, guest));
        Assert.Equal(offset, e.Offset);
        foreach (var f in fragments)
        {
            Assert.Contains(f, e.Message);
        }

        return e;
    }

    private static RawLegacy Pv() => new RawLegacy().PvHeader().VcpuInfo();

    private static RawLegacy Hvm() => new RawLegacy().ULong(16).VcpuInfo();

    [Fact]
    public void Reject_P2mSizeZero() => Rejects(new RawLegacy().ULong(0).ULong(ulong.MaxValue).ToArray(), 8, GuestType.Pv, 0, "libxc image header", "p2m_size is 0");

    [Fact]
    public void Reject_P2mSizeAbove28BitPfns() => Rejects(new RawLegacy().ULong(0x1000_0000).ULong(ulong.MaxValue).ToArray(), 8, GuestType.Pv, 0, "p2m_size 0x10000000 exceeds 0xFFFFFFF");

    [Fact]
    public void Reject_ExtendedInfoTotalLengthUnbounded() =>
        Rejects(new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(0x7FFF_0000).ToArray(), 8, GuestType.Pv, 8, "PV extended info", "total_len 2147418112 exceeds");

    [Fact]
    public void Reject_ExtendedInfoBlockLengthThatWrapsIn32Bits() =>
        Rejects(new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(16).U32(0x75706376).U32(0xFFFF_FFF8).Zeros(8).ToArray(), 8, GuestType.Pv, 20, "'vcpu' length 4294967288 runs past total_len");

    [Fact]
    public void Reject_VcpuBlockOfUnknownLength() =>
        Rejects(new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(8 + 0x100).U32(0x75706376).U32(0x100).Zeros(0x100).ToArray(), 8, GuestType.Pv, 20, "'vcpu' length 0x100 is neither 0xAF0");

    [Fact]
    public void Reject_XcntBlockNotFourOctets() =>
        Rejects(new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(16).U32(0x746E6378).U32(8).Zeros(8).ToArray(), 8, GuestType.Pv, 20, "'xcnt' length 8 is not 4");

    [Fact]
    public void Reject_ExtvBlockWithPayload() =>
        Rejects(new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(12).U32(0x76747865).U32(4).Zeros(4).ToArray(), 8, GuestType.Pv, 20, "'extv' length 4 is not 0");

    [Fact]
    public void Reject_UnknownExtendedInfoBlock() =>
        Rejects(new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(12).Bytes("xsav"u8).U32(4).Zeros(4).ToArray(), 8, GuestType.Pv, 20, "unknown extended-info block 'xsav'");

    [Fact]
    public void Reject_TextWhereAChunkIdIsExpected_SaysSoInWords()
    {
        var bytes = Hvm().Bytes("QemuDeviceModelRecord"u8).ToArray();
        Rejects(bytes, 8, GuestType.Hvm, 8 + 16, "chunk #1", "1970103633", "\"Qemu\", text rather than a chunk");
    }

    [Fact]
    public void Reject_PfnEqualToP2mSize_TheReferenceOffByOne() =>
        Rejects(Pv().Batch(16).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "PAGE_BATCH #1", "pfn 0x10 is not below p2m_size 0x10");

    [Fact]
    public void Reject_PfnBeyondP2mSize() =>
        Rejects(Pv().Batch(1, 0x0FFF_FFFF).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "entry 1", "pfn 0xFFFFFFF is not below p2m_size");

    [Fact]
    public void Reject_EntryWithBits32To63Set() =>
        Rejects(Pv().I32(1).U64((1UL << 32) | 1).Zeros(4096).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "bits 32–63 set");

    [Fact]
    public void Reject_UndefinedPageType() =>
        Rejects(Pv().Batch(0x5000_0001).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "undefined page type 0x5");

    [Fact]
    public void Reject_DuplicatePfnInABatch() =>
        Rejects(Pv().Batch(3, 1, 0x1000_0003).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "pfn 0x3 appears twice");

    [Fact]
    public void Reject_PageTableTypeInAnHvmStream() =>
        Rejects(Hvm().Batch(0x1000_0001).ToArray(), 8, GuestType.Hvm, 24, "PV page type L1TAB in an HVM stream");

    [Fact]
    public void Reject_NegativeMaxVcpuId() =>
        Rejects(new RawLegacy().PvHeader().I32(-2).I32(-1).U64(1).ToArray(), 8, GuestType.Pv, BodyStart64, "VCPU_INFO #0", "max_vcpu_id -1 is outside 0…4095");

    [Fact]
    public void Reject_MaxVcpuIdOf4096() =>
        Rejects(new RawLegacy().PvHeader().I32(-2).I32(4096).ToArray(), 8, GuestType.Pv, BodyStart64, "max_vcpu_id 4096");

    [Fact]
    public void Reject_VcpuBitmapBeyondMaxVcpuId() =>
        Rejects(new RawLegacy().PvHeader().VcpuInfo(0, 3).ToArray(), 8, GuestType.Pv, BodyStart64, "above max_vcpu_id 0");

    [Fact]
    public void Reject_HvmParameterChunkInAPvStream() =>
        Rejects(Pv().I32(-3).U32(0).U64(1).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "HVM_IDENT_PT #1", "HVM-only chunk in a PV stream");

    [Fact]
    public void Reject_HvmParameterPadNotZero() =>
        Rejects(Hvm().I32(-11).U32(7).U64(1).ToArray(), 8, GuestType.Hvm, 24, "HVM_VIRIDIAN", "pad 0x00000007 is not zero");

    [Fact]
    public void Reject_AcpiIoportsLocationOtherThanZeroOrOne() =>
        Rejects(Hvm().I32(-10).U32(0).U64(2).ToArray(), 8, GuestType.Hvm, 24, "value 2 is neither 0 nor 1");

    [Fact]
    public void Reject_IoreqServerPfnWithoutPageCount() =>
        Rejects(Hvm().I32(-19).U32(0).U64(0xFE000).I32(0).ToArray(), 8, GuestType.Hvm, 40, "END_OF_BODY", "both present or both absent");

    [Fact]
    public void Reject_TscModeOutOfRange() =>
        Rejects(Pv().I32(-7).U32(9).U64(0).U32(0).U32(0).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "TSC_INFO", "tsc_mode 9");

    [Fact]
    public void Reject_ToolstackLengthUnbounded() =>
        Rejects(Pv().I32(-18).U32(0xFFFF_FFFF).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "TOOLSTACK #1", "length 4294967295 exceeds");

    [Fact]
    public void Reject_CompressedDataInTheFirstCheckpoint() =>
        Rejects(Pv().I32(-12).U64(8).Zeros(8).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "COMPRESSED_DATA", "in the first checkpoint");

    [Fact]
    public void Reject_NumberOfUnmappedPfnsAboveP2mSize() =>
        Rejects(Pv().I32(0).U32(17).ToArray(), 8, GuestType.Pv, BodyStart64 + 20, "PV tail #1", "nr_unmapped 17 exceeds p2m_size 16");

    [Fact]
    public void Reject_UnmappedPfnOutOfRange() =>
        Rejects(Pv().I32(0).U32(1).U64(16).ToArray(), 8, GuestType.Pv, BodyStart64 + 20, "unmapped pfn 0x10", "not below p2m_size");

    [Fact]
    public void Reject_XsaveSizeNotMatchingXcnt()
    {
        var raw = new RawLegacy().ULong(16).ULong(ulong.MaxValue).U32(8 + 0x1430 + 8 + 12)
            .U32(0x75706376).U32(0x1430).Zeros(0x1430).U32(0x76747865).U32(0).U32(0x746E6378).U32(4).U32(80).ULong(0);
        var tailAt = raw.Length + 16 + 4 + 4;
        raw.VcpuInfo().I32(0).U32(0).Zeros(0x1430 + 128).U64(7).U64(99).Zeros(64).Zeros(4096);
        Rejects(raw.ToArray(), 8, GuestType.Pv, tailAt, "vCPU 0 xsave size 99 does not match xcnt 80");
    }

    [Fact]
    public void Reject_HvmContextLengthZero() =>
        Rejects(Hvm().I32(0).U64(1).U64(2).U64(3).U32(0).ToArray(), 8, GuestType.Hvm, 52, "HVM tail #1", "HVM context length is 0");

    [Fact]
    public void Reject_HvmContextLengthUnbounded() =>
        Rejects(Hvm().I32(0).U64(1).U64(2).U64(3).U32(0xFFFF_FFFF).ToArray(), 8, GuestType.Hvm, 52, "HVM context length 4294967295 exceeds");

    [Fact]
    public void Reject_DeviceModelLengthUnbounded() =>
        Rejects(Hvm().I32(0).U64(1).U64(2).U64(3).U32(4).Zeros(4).Bytes("DeviceModelRecord0002"u8).U32(0xFFFF_FFFF).ToArray(), 8, GuestType.Hvm, 60, "device-model record #1", "length 4294967295 exceeds");

    [Fact]
    public void Reject_UnknownDeviceModelSignature() =>
        Rejects(Hvm().I32(0).U64(1).U64(2).U64(3).U32(4).Zeros(4).Bytes("DeviceModelRecord0003"u8).U32(0).ToArray(), 8, GuestType.Hvm, 60, "expected a device-model record signature", "DeviceModelRecord0003");

    [Fact]
    public void Reject_QemuDeviceModelRecordNotStartingWithQevm() =>
        Rejects(Hvm().I32(0).U64(1).U64(2).U64(3).U32(4).Zeros(4).Bytes("QemuDeviceModelRecord"u8).Bytes("XXXX"u8).ToArray(), 8, GuestType.Hvm, 60, "does not start with \"QEVM\"");

    [Fact]
    public void Reject_TmemWithBadSeparator() =>
        Rejects(Pv().I32(-5).U32(1).U32(2).U32(0).Zeros(16).ToArray(), 8, GuestType.Pv, BodyStart64 + 16, "TMEM #1", "first separator");

    [Fact]
    public void Refuse_TmemChunk_IsParsedThenRefusedWithAClearMessage()
    {
        var tmem = Pv().I32(-5).U32(1).U32(4).U32(0xFFFF_FFFF).U32(0).U32(0).U32(0).U32(0xFFFF_FFFF)
            .U32(0).U32(1).U32(1).U64(0).U64(0).U64(1).U64(2).U64(3).U32(0).Zeros(4096)
            .U32(0xFFFF_FFFF).I32(0).PvTail().ToArray();
        using var ms = new MemoryStream(tmem);
        using var input = new InputBuffer(ms);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(8, GuestType.Pv));
        while (reader.Read() != LegacyItemKind.Chunk || reader.ChunkId != LegacyChunkId.Tmem)
        {
        }

        Assert.Equal(1, reader.Tmem.Pools);
        Assert.Equal(1, reader.Tmem.Pages);
        Assert.Equal(LegacyItemKind.EndOfBody, reader.Read());

        var e = Assert.Throws<LegacyUnsupportedContentException>(() => LegacyTestStreams.Restore(tmem, 8, GuestType.Pv));
        Assert.Contains("TMEM #1", e.Message);
        Assert.Contains("cannot be restored", e.Message);
    }

    [Fact]
    public void Reject_CompressedDataLengthUnbounded_DiscardsThatCheckpoint()
    {
        var b = new LegacyImageBuilder { Checkpoints = 2, Compress = true };
        var full = b.Build();
        var (_, first, firstEnd) = LegacyTestStreams.Restore(full, 8, GuestType.Pv, CheckpointedMode.No);
        var bytes = new RawLegacy().Bytes(full.AsSpan(0, (int)firstEnd)).VcpuInfo().I32(-12).U64(ulong.MaxValue >> 1).ToArray();

        var (sink, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);

        Assert.Equal(LegacyRestoreEnd.IncompleteCheckpoint, result.End);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(firstEnd + 16, result.DiscardedRecord!.Offset);
        Assert.Contains("exceeds", result.DiscardedBecause!.Message);
        Assert.True(first.CompressionEnabled);
    }

    [Fact]
    public void Reject_EnableCompressionOutsideTheFirstCheckpoint()
    {
        var full = new LegacyImageBuilder { Checkpoints = 2 }.Build();
        var (_, _, firstEnd) = LegacyTestStreams.Restore(full, 8, GuestType.Pv, CheckpointedMode.No);
        var bytes = new RawLegacy().Bytes(full.AsSpan(0, (int)firstEnd)).I32(-13).ToArray();

        var (_, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);

        Assert.Equal(firstEnd, result.DiscardedRecord!.Offset);
        Assert.Contains("only be enabled in the first checkpoint", result.DiscardedBecause!.Message);
    }

    [Fact]
    public void Reject_CompressedPagesAnnouncedButNeverSent()
    {
        var full = new LegacyImageBuilder { Checkpoints = 2, Compress = true }.Build();
        var (_, _, firstEnd) = LegacyTestStreams.Restore(full, 8, GuestType.Pv, CheckpointedMode.No);
        var bytes = new RawLegacy().Bytes(full.AsSpan(0, (int)firstEnd)).I32(1).U64(0).VcpuInfo().I32(0).PvTail().ToArray();

        var (_, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);

        Assert.Contains("1 compressed pages announced by the batches have no data", result.DiscardedBecause!.Message);
    }

    [Theory]
    [InlineData("legacy-pv-w32-41")]
    [InlineData("legacy-hvm-w64-pre41")]
    [InlineData("legacy-pv32guest-w64-41")]
    public void Reject_VectorTruncatedAnywhere_NamesWhereWithAnOffsetInsideTheInput(string name)
    {
        var v = LegacyVectors.Get(name);
        var bytes = File.ReadAllBytes(v.Path);
        var cuts = Enumerable.Range(0, 64).Concat(Enumerable.Range(1, 150).Select(i => (int)((long)bytes.Length * i / 151))).Distinct();
        foreach (var cut in cuts)
        {
            var e = Assert.Throws<StreamFormatException>(() => LegacyTestStreams.Restore(bytes[..cut], v.Width / 8, v.GuestType));
            Assert.InRange(e.Offset, 0, cut);
            Assert.Contains("truncated", e.Message);
        }
    }
}
