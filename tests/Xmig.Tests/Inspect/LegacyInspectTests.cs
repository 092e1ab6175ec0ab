using System.Text.Json;
using Xmig.Tests.Conversion;
using Xmig.Tests.Formats.Legacy;
using Xmig.Tests.Support;

namespace Xmig.Tests.Inspect;

public class LegacyInspectTests
{
    public static TheoryData<string> Vectors => LegacyVectors.Names();

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Verify_LegacyVectorAutoDetected_IsValidWithWidthGuestGenerationAndCheckpoints(string name)
    {
        var v = LegacyVectors.Get(name);
        var (code, stdout, err) = ConvertTestSupport.Cli("verify", v.Path, "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var r = doc.RootElement;
        Assert.Equal("legacy", r.GetProperty("kind").GetString());
        Assert.True(r.GetProperty("valid").GetBoolean());
        Assert.Equal(v.Width, r.GetProperty("width").GetInt32());
        Assert.Equal(v.Guest, r.GetProperty("guest").GetString());
        Assert.Equal(v.Checkpoints, r.GetProperty("checkpoints_committed").GetInt32());
        Assert.Equal(v.Xl, r.GetProperty("xl").GetBoolean());
        var generation = v.Checkpoints > 1 ? "checkpointed" : v.Sender == "41" ? "legacy-4.1" : "legacy-4.0";
        Assert.Equal(generation, r.GetProperty("sender_generation").GetString());
        Assert.Equal(v.Bytes, r.GetProperty("bytes").GetInt64());
        if (v.Guest == "pv")
        {
            Assert.Equal(v.Name.Contains("pv32guest", StringComparison.Ordinal) ? 32 : 64, r.GetProperty("guest_bits").GetInt32());
        }
    }

    [Fact]
    public void Inspect_LegacyStream_ListsEveryChunkWithItsOffset()
    {
        var v = LegacyVectors.Get("legacy-pv-w32-41");
        var (code, stdout, err) = ConvertTestSupport.Cli("inspect", v.Path, "--format", "legacy");
        Assert.True(code == 0, err);
        Assert.Contains("p2m_size", stdout);
        Assert.Contains("'vcpu' 0x1430 octets: 64-bit guest, 4-level paging", stdout);
        Assert.Matches(@"0x1450\s+#0 cp1\s+VCPU_INFO\s+max_vcpu_id 1, online 0,1", stdout);
        Assert.Contains("PAGE_BATCH", stdout);
        Assert.Contains("LAST_CHECKPOINT", stdout);
        Assert.Contains("PV tail: vCPU", stdout);
        Assert.Contains("valid legacy stream: 32-bit toolstack, PV guest (64-bit), sender legacy-4.1", stdout);
    }

    [Fact]
    public void Inspect_LegacyRemusStreamAsJson_HasItemsOfThreeCheckpoints()
    {
        var v = LegacyVectors.Get("legacy-hvm-w64-remus3");
        var (code, stdout, err) = ConvertTestSupport.Cli("inspect", v.Path, "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var items = doc.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(3, items.Count(i => i.GetProperty("name").GetString() == "end of checkpoint"));
        Assert.Equal(3, items.Count(i => i.GetProperty("name").GetString() == "device-model record"));
        Assert.Equal("RemusDeviceModelState", doc.RootElement.GetProperty("device_model").GetString());
    }

    [Fact]
    public void Verify_TruncatedLegacyStream_ExitsOneNamingChunkAndOffset()
    {
        var v = LegacyVectors.Get("legacy-hvm-w64-41");
        var path = ConvertTestSupport.TempFile("cut.bin");
        File.WriteAllBytes(path, File.ReadAllBytes(v.Path)[..50_000]);
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli("verify", path);
            Assert.Equal(1, code);
            Assert.Contains("xmig: error: PAGE_BATCH #6 at offset 0x70: truncated", err);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Verify_UndetectableLegacyStream_NeedsWidthAndGuest_ThenPasses()
    {
        // Octets 4-7 are neither zero, ~0 nor a chunk id: no width can be detected; -w/-g make it read as legacy.
        var bytes = new RawLegacy(4).U32(16).Bytes("ABCD"u8).Zeros(8).ToArray();
        var path = ConvertTestSupport.TempFile("odd.bin");
        File.WriteAllBytes(path, bytes);
        try
        {
            var (code, _, err) = ConvertTestSupport.Cli("verify", path);
            Assert.Equal(1, code);
            Assert.Contains("is not a Migration v2 stream, and read as a legacy stream: cannot detect the toolstack width", err);
            Assert.Contains("--format legacy", err);

            var (code2, _, err2) = ConvertTestSupport.Cli("verify", path, "--format", "legacy", "-w", "32", "-g", "hvm");
            Assert.Equal(1, code2);
            Assert.Contains("chunk #0 at offset 0x4", err2);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Verify_LegacyStreamFollowedByHandshakeText_IsValidWithAWarningAboutTheTrailingOctets()
    {
        var image = new LegacyImageBuilder { Generation = Xmig.Formats.Legacy.LegacyWriterGeneration.Legacy40 }.Build();
        var path = ConvertTestSupport.TempFile("trail.bin");
        File.WriteAllBytes(path, [.. image, .. "domain is yours, you are cleared to unpause\0"u8.ToArray()]);
        try
        {
            var (code, stdout, err) = ConvertTestSupport.Cli("verify", path);
            Assert.Equal(0, code);
            Assert.Contains("valid legacy stream", stdout);
            Assert.Contains("xmig: warning: after checkpoint 1 the stream continues at offset", err);
            Assert.Contains("xl migration protocol text", err);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Trait("Category", XmigProcess.Category)]
    [Fact]
    public void ChildProcess_VerifyLegacyFromAPipe_DetectsIt()
    {
        var v = LegacyVectors.Get("legacy-hvm-w64-41-xl");
        var (code, stdout, err) = ConvertTestSupport.Process(File.ReadAllBytes(v.Path), false, "verify", "-");
        Assert.True(code == 0, err);
        Assert.Contains("valid legacy stream in an xl header: 64-bit toolstack, HVM guest", System.Text.Encoding.UTF8.GetString(stdout));
    }
}
