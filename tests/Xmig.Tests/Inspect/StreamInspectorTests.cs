using System.Text.Json;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Inspect;
using Xmig.Samples;

namespace Xmig.Tests.Inspect;

public class StreamInspectorTests
{
    [Fact]
    public void Text_ShowsHeadersRecordsAndSummary()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Guest = GuestType.Pv, Pages = 2000 });
        using var text = new StringWriter();
        var result = StreamInspector.Inspect(new MemoryStream(data), StreamFormat.Auto, text, new InspectOptions());
        Assert.True(result.IsValid, result.Error?.Message);
        var output = text.ToString();
        Assert.Contains("xl header at 0x0: mandatory 0x3 (JSON|STREAMv2)", output);
        Assert.Contains("libxc domain header", output);
        Assert.Contains("PAGE_DATA length 4202504 count=1024 pages=1024 pfn_min=0x0 pfn_max=0x3FF", output);
        Assert.Contains("L4TAB|PIN=", output);
        Assert.Contains("X86_PV_VCPU_BASIC length 5176 vcpu_id=1 context=5168", output);
        Assert.Contains("distinct pfns: 2003", output);
        Assert.Contains("result: valid", output);
    }

    [Fact]
    public void Verbose_AddsPageRunsAndParams()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 10 });
        using var text = new StringWriter();
        StreamInspector.Inspect(new MemoryStream(data), StreamFormat.Auto, text, new InspectOptions { Verbose = true });
        var output = text.ToString();
        Assert.Contains("pfn 0x0-0x9 NOTAB (10)", output);
        Assert.Contains("param 1 (StorePfn) = 0xFEFFC", output);
        Assert.Contains("physmap/f0000000/name = vga.vram", output);
        Assert.Contains("leaf 0x00000007:0x00000000", output);
    }

    [Fact]
    public void Json_IsOneDocument_WithItemsAndSummary()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Checkpoints = 2, Colo = true });
        using var text = new StringWriter();
        StreamInspector.Inspect(new MemoryStream(data), StreamFormat.Auto, text, new InspectOptions { Json = true });
        using var doc = JsonDocument.Parse(text.ToString());
        var root = doc.RootElement;
        Assert.True(root.GetProperty("valid").GetBoolean());
        Assert.Equal("libxl", root.GetProperty("kind").GetString());
        Assert.Equal(2, root.GetProperty("summary").GetProperty("checkpoints").GetInt32());
        var items = root.GetProperty("items");
        Assert.Equal("libxl_header", items[0].GetProperty("item").GetString());
        Assert.Contains(items.EnumerateArray(), i => i.TryGetProperty("name", out var n) && n.GetString() == "CHECKPOINT_STATE");
    }

    [Fact]
    public void InvalidStream_ShowsRecordsUpToTheError()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxc, Guest = GuestType.Hvm });
        using var text = new StringWriter();
        var result = StreamInspector.Inspect(new MemoryStream(data[..^8]), StreamFormat.Auto, text, new InspectOptions());
        Assert.False(result.IsValid);
        Assert.Contains("missing END", result.Error!.Message);
        Assert.Contains("HVM_PARAMS", text.ToString());
        Assert.Contains("INVALID", text.ToString());
    }
}
