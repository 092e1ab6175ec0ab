using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Tests.Formats.Legacy;

public class LegacyRoundTripTests
{
    public static TheoryData<int, string, int, string, int, bool> Matrix()
    {
        var data = new TheoryData<int, string, int, string, int, bool>();
        foreach (var width in new[] { 4, 8 })
        {
            foreach (var (guest, gw) in new[] { ("pv", 8), ("pv", 4), ("hvm", 8) })
            {
                foreach (var gen in new[] { "4.0", "4.1" })
                {
                    data.Add(width, guest, gw, gen, 1, false);
                    data.Add(width, guest, gw, gen, 3, false);
                    data.Add(width, guest, gw, gen, 3, true);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void WriteThenRestore_ReproducesEveryCheckpointsMemory(int width, string guest, int guestWidth, string generation, int checkpoints, bool compress)
    {
        var b = new LegacyImageBuilder
        {
            Width = width,
            Guest = guest == "pv" ? GuestType.Pv : GuestType.Hvm,
            GuestWidth = guestWidth,
            Generation = generation == "4.0" ? LegacyWriterGeneration.Legacy40 : LegacyWriterGeneration.Legacy41,
            Checkpoints = checkpoints,
            Compress = compress,
            Xcnt = guest == "pv" ? 16u + 576 : 0,
            PageTables = true,
        };
        var bytes = b.Build();

        var (sink, result, position) = LegacyTestStreams.Restore(bytes, width, b.Guest, checkpoints > 1 ? CheckpointedMode.Yes : CheckpointedMode.Auto);

        Assert.Equal(checkpoints, result.CheckpointsCommitted);
        Assert.Equal(bytes.Length, position);
        Assert.Equal(b.Expected[^1].Keys, sink.Memory.Keys);
        foreach (var (pfn, page) in b.Expected[^1])
        {
            Assert.True(page.AsSpan().SequenceEqual(sink.Memory[pfn]), $"pfn {pfn}");
        }

        Assert.Equal(compress, result.CompressionEnabled);
        Assert.Equal(generation == "4.1" && checkpoints == 1, result.LastCheckpointSeen);
        if (b.Guest == GuestType.Pv)
        {
            Assert.Equal(2 * checkpoints, sink.Vcpus.Count);
            Assert.Equal([0, 2], sink.Vcpus.Take(2).Select(v => v.Id));
            Assert.Equal(checkpoints, sink.SharedInfos.Count);
            Assert.Equal(guestWidth, sink.Info!.GuestWidth);
        }
        else
        {
            Assert.Equal(checkpoints, sink.DeviceModels.Count);
            Assert.Equal(checkpoints, sink.HvmContexts.Count);
            Assert.Equal(1000 + checkpoints, sink.HvmContexts[^1].Length);
        }
    }

    [Fact]
    public void WriteThenRead_FillerXallocAndPinnedTypes_AreReportedAsWritten()
    {
        var b = new LegacyImageBuilder { PageTables = true, Width = 4, GuestWidth = 4 };
        var bytes = b.Build();
        using var ms = new MemoryStream(bytes);
        using var input = new Xmig.Formats.InputBuffer(ms);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(4, GuestType.Pv));
        var types = new HashSet<LegacyPageType>();
        var fillers = 0;
        while (reader.Read() != LegacyItemKind.EndOfCheckpoint)
        {
            if (reader.Kind == LegacyItemKind.PageBatch)
            {
                foreach (var e in reader.PageEntries)
                {
                    if (e == LegacyPfnEntry.Filler)
                    {
                        fillers++;
                    }
                    else
                    {
                        types.Add(LegacyPfnEntry.Type(e));
                    }
                }
            }
        }

        Assert.Contains(LegacyPageType.PinnedL1Tab, types);
        Assert.Contains(LegacyPageType.XAlloc, types);
        Assert.Contains(LegacyPageType.XTab, types);
        Assert.True(fillers > 0);
        Assert.Equal("4.2", reader.MinimumSenderVersion);
    }

    [Fact]
    public void WriteThenRestore_ToolstackChunk_IsDeliveredAndDecodesWithThePhysmapQuirk()
    {
        foreach (var width in new[] { 4, 8 })
        {
            var entries = new List<LibxlPhysmapEntry> { new(0xF0000000, 0xFC000000, 0x800000, "vga.vram"u8.ToArray()), new(0x1000, 0x2000, 0x3000, null) };
            var blob = LibxlToolstackBlob.Build(entries, width);
            var b = new LegacyImageBuilder { Width = width, Guest = GuestType.Hvm, Toolstack = blob };
            var (sink, _, _) = LegacyTestStreams.Restore(b.Build(), width, GuestType.Hvm);
            var parsed = LibxlToolstackBlob.Parse(sink.Toolstacks.Single(), width, 0, 0);
            Assert.Equal(2, parsed.Count);
            Assert.Equal(0xF0000000UL, parsed[0].PhysOffset);
            Assert.Equal("vga.vram"u8.ToArray(), parsed[0].Name);
            Assert.Null(parsed[1].Name);
            Assert.Equal(blob.Length, 8 + 28 + 9 + 28 + (width == 8 ? 8 : 0));
        }
    }

    [Theory]
    [InlineData("DeviceModelRecord0002")]
    [InlineData("RemusDeviceModelState")]
    [InlineData("QemuDeviceModelRecord")]
    public void WriteThenRestore_EachDeviceModelSignature_IsReadAsPartOfTheHvmTail(string name)
    {
        var signature = Enum.Parse<LegacyDeviceModelSignature>(name);
        var b = new LegacyImageBuilder { Guest = GuestType.Hvm, DeviceModel = signature, Generation = LegacyWriterGeneration.Legacy40 };
        var bytes = b.Build();
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Hvm);
        var dm = Assert.Single(sink.DeviceModels);
        Assert.Equal(signature, dm.Signature);
        Assert.Equal(601, dm.Data.Length);
        Assert.Equal("QEVM"u8.ToArray(), dm.Data[..4]);
        Assert.Equal(LegacyRestoreEnd.EndOfStream, result.End);
        Assert.Equal(bytes.Length, position);
    }
}
