using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;
using Xmig.Tests.Formats.Legacy;
using Xmig.Verify;

namespace Xmig.Tests.Conversion;

public class ConvertCommandTests
{
    public static TheoryData<string, string, bool> XenConversions()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (var v in LegacyVectors.All)
        {
            foreach (var kind in v.XenConvert.Keys)
            {
                data.Add(v.Name, kind, true);
                data.Add(v.Name, kind, false);
            }
        }

        return data;
    }

    private static string[] Options(string options, bool keepWidthAndGuest)
    {
        var list = new List<string>();
        var o = options.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < o.Length; i++)
        {
            if (!keepWidthAndGuest && o[i] is "-w" or "-g")
            {
                i++;
                continue;
            }

            list.Add(o[i]);
        }

        return [.. list];
    }

    [Theory]
    [MemberData(nameof(XenConversions))]
    public void Convert_XenVector_WritesExactlyWhatXensConverterWrote(string name, string kind, bool withWidthAndGuest)
    {
        var v = LegacyVectors.Get(name);
        var output = ConvertTestSupport.TempFile("out.bin");
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli(["convert", "-i", v.Path, "-o", output, .. Options(v.XenConvert[kind], withWidthAndGuest)]);
            Assert.True(code == 0, err);
            var expected = File.ReadAllBytes(Path.Combine(LegacyVectors.Directory, $"{name}.xen-{kind}.bin"));
            Assert.Equal(expected, File.ReadAllBytes(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Theory]
    [InlineData("legacy-pv-w64-remus3", "libxc")]
    [InlineData("legacy-pv-w64-remus3", "libxl")]
    [InlineData("legacy-hvm-w64-remus3", "libxc")]
    [InlineData("legacy-hvm-w64-remus3", "libxl")]
    public void Convert_Remus3_WritesThreeV2CheckpointsThatVerifyAndHoldTheLastCheckpointsMemory(string name, string format)
    {
        var v = LegacyVectors.Get(name);
        var output = ConvertTestSupport.TempFile("remus.bin");
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli("convert", "-i", v.Path, "-o", output, "-f", format);
            Assert.True(code == 0, err);
            var bytes = File.ReadAllBytes(output);
            using var ms = new MemoryStream(bytes);
            var verify = StreamVerifier.Verify(ms);
            Assert.Null(verify.Error);
            Assert.Equal(3, verify.Summary.Checkpoints);
            var (sha, pages) = ConvertTestSupport.V2MemoryDigest(bytes);
            Assert.Equal(v.MemorySha256, sha);
            Assert.Equal(v.Pages, pages);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Theory]
    [InlineData("libxc", true, true, "auto")]
    [InlineData("libxl", true, false, "auto")]
    [InlineData("libxl", false, false, "auto")]
    [InlineData("libxc", false, true, "yes")]
    public void Convert_CompressedRemusStream_DecodesDeltasAgainstTheEarlierCheckpoints(string format, bool fromFile, bool cacheFirst, string mode)
    {
        foreach (var guest in new[] { GuestType.Pv, GuestType.Hvm })
        {
            var b = new LegacyImageBuilder { Guest = guest, Checkpoints = 4, Compress = true, Width = 4, CacheFirstCheckpoint = cacheFirst };
            var input = ConvertTestSupport.TempFile("compressed.bin");
            var output = ConvertTestSupport.TempFile("compressed.v2");
            File.WriteAllBytes(input, b.Build());
            try
            {
                byte[] bytes;
                if (fromFile)
                {
                    var (code, _, err) = ConvertTestSupport.Cli("convert", "-i", input, "-o", output, "-f", format, "--checkpointed", mode);
                    Assert.True(code == 0, err);
                    bytes = File.ReadAllBytes(output);
                }
                else
                {
                    // A non-seekable input keeps the first checkpoint's pages in the temporary page store.
                    using var pipe = new TrickleStream(File.ReadAllBytes(input), 1 << 16);
                    using var ms = new MemoryStream();
                    Xmig.Conversion.LegacyToV2Converter.Convert(pipe, ms, new Xmig.Conversion.LegacyConvertOptions
                    {
                        Format = format == "libxl" ? Xmig.Conversion.V2OutputFormat.Libxl : Xmig.Conversion.V2OutputFormat.Libxc,
                        Mode = mode == "yes" ? CheckpointedMode.Yes : CheckpointedMode.Auto,
                    });
                    bytes = ms.ToArray();
                }

                using var check = new MemoryStream(bytes);
                var verify = StreamVerifier.Verify(check);
                Assert.Null(verify.Error);
                Assert.Equal(4, verify.Summary.Checkpoints);
                var expected = new MemorySink();
                foreach (var (pfn, page) in b.Expected[^1])
                {
                    expected.Memory[pfn] = page;
                }

                Assert.Equal(expected.MemoryDigest(), ConvertTestSupport.V2MemoryDigest(bytes).Sha256);
            }
            finally
            {
                File.Delete(input);
                File.Delete(output);
            }
        }
    }

    [Fact]
    public void Convert_CompressedDeltaAgainstFirstCheckpointFromAPipeInAutoMode_DiscardsThatCheckpointAndSaysWhy()
    {
        var b = new LegacyImageBuilder { Checkpoints = 3, Compress = true, CacheFirstCheckpoint = true };
        using var pipe = new TrickleStream(b.Build(), 1 << 16);
        using var ms = new MemoryStream();

        var result = Xmig.Conversion.LegacyToV2Converter.Convert(pipe, ms, new Xmig.Conversion.LegacyConvertOptions());

        Assert.Equal(LegacyRestoreEnd.IncompleteCheckpoint, result.Checkpoints.End);
        Assert.Equal(1, result.Checkpoints.CheckpointsCommitted);
        Assert.Contains("no earlier content of that pfn", result.Checkpoints.DiscardedBecause!.Message);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void Convert_ToolstackPhysmapAndQemuDeviceModelRecord_BecomeEmulatorRecordsThatVerify(int width)
    {
        var blob = LibxlToolstackBlob.Build([new(0xF0000000, 0xFC000000, 0x800000, "vga.vram"u8.ToArray())], width);
        var b = new LegacyImageBuilder
        {
            Width = width,
            Guest = GuestType.Hvm,
            Toolstack = blob,
            DeviceModel = LegacyDeviceModelSignature.QemuDeviceModelRecord,
            Generation = LegacyWriterGeneration.Legacy40,
        };
        using var input = new MemoryStream(b.Build());
        using var output = new MemoryStream();

        Xmig.Conversion.LegacyToV2Converter.Convert(input, output, new Xmig.Conversion.LegacyConvertOptions { Format = Xmig.Conversion.V2OutputFormat.Libxl });

        var bytes = output.ToArray();
        using var check = new MemoryStream(bytes);
        var verify = StreamVerifier.Verify(check);
        Assert.Null(verify.Error);
        var text = System.Text.Encoding.ASCII.GetString(bytes);
        Assert.Contains("physmap/f0000000/start_addr\0fc000000\0physmap/f0000000/size\0800000\0physmap/f0000000/name\0vga.vram\0", text);
        Assert.Contains("QEVM", text);
    }

    [Fact]
    public void Convert_TruncatedInput_ExitsOneWithOneLineNamingChunkAndOffset_AndRemovesThePartialOutput()
    {
        var v = LegacyVectors.Get("legacy-pv-w64-41");
        var input = ConvertTestSupport.TempFile("cut.bin");
        var output = ConvertTestSupport.TempFile("cut.v2");
        File.WriteAllBytes(input, File.ReadAllBytes(v.Path)[..100_000]);
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli("convert", "-i", input, "-o", output);
            Assert.Equal(1, code);
            var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("xmig: error: PAGE_BATCH #2 at offset 0x1484: truncated", line);
            Assert.False(File.Exists(output));
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Fact]
    public void Convert_TmemChunk_ExitsTwoAsXensUnsupportedContent()
    {
        var tmem = new RawLegacy().PvHeader().VcpuInfo().I32(-5).U32(1).U32(4).U32(0xFFFF_FFFF).U32(0).U32(0).U32(0).U32(0xFFFF_FFFF)
            .U32(0xFFFF_FFFF).I32(0).PvTail().ToArray();
        var input = ConvertTestSupport.TempFile("tmem.bin");
        var output = ConvertTestSupport.TempFile("tmem.v2");
        File.WriteAllBytes(input, tmem);
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli("convert", "-i", input, "-o", output, "-w", "64", "-g", "pv");
            Assert.Equal(2, code);
            Assert.Contains("TMEM #1", err);
            Assert.False(File.Exists(output));
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Fact]
    public void Convert_WithoutOutput_ExitsOneLikeXen()
    {
        var (code, _, err) = ConvertTestSupport.Cli("convert", "-i", "x.bin");
        Assert.Equal(1, code);
        Assert.Contains("needs -i INPUT and -o OUTPUT", err);
    }

    [Fact]
    public void Convert_UndetectableWidth_SaysWhichOptionToPass()
    {
        var input = ConvertTestSupport.TempFile("odd.bin");
        var output = ConvertTestSupport.TempFile("odd.v2");
        File.WriteAllBytes(input, [0x57, 0, 0, 0, 0x41, 0x42, 0x43, 0x44, 1, 2, 3, 4, 5, 6, 7, 8]);
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli("convert", "-i", input, "-o", output);
            Assert.Equal(1, code);
            Assert.Contains("cannot detect the toolstack width", err);
            Assert.Contains("pass -w 32 or -w 64", err);
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Trait("Category", Support.XmigProcess.Category)]
    [Fact]
    public void ChildProcess_PipeToPipe_WritesXensBytes()
    {
        var v = LegacyVectors.Get("legacy-hvm-w64-41-xl");
        var (code, output, err) = ConvertTestSupport.Process(File.ReadAllBytes(v.Path), false, "convert", "-i", "-", "-o", "-", "-x", "-f", "libxl");
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(Path.Combine(LegacyVectors.Directory, "legacy-hvm-w64-41-xl.xen-xl.bin")), output);
    }

    [Trait("Category", Support.XmigProcess.Category)]
    [Fact]
    public void ChildProcess_ClosedOutputPipe_EndsWithAnErrorInsteadOfHanging()
    {
        var v = LegacyVectors.Get("legacy-pv-w64-remus3");
        var (code, _, err) = ConvertTestSupport.Process(File.ReadAllBytes(v.Path), true, "convert", "-i", "-", "-o", "-");
        Assert.Equal(2, code);
        Assert.StartsWith("xmig: error:", err);
    }

    [Trait("Category", Support.XmigProcess.Category)]
    [Fact]
    public void ChildProcess_InputPipeClosedEarly_ReportsTruncation()
    {
        var v = LegacyVectors.Get("legacy-hvm-w64-41");
        var (code, _, err) = ConvertTestSupport.Process(File.ReadAllBytes(v.Path)[..5000], false, "convert", "-i", "0", "-o", "-");
        Assert.Equal(1, code);
        Assert.Contains("truncated", err);
    }
}
