using System.Text.Json;
using Xmig.Cli;
using Xmig.Formats.Libxc;

namespace Xmig.Tests.Cli;

public class StreamCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var rc = Program.Run(args, stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    private static string Vector(string name) => Path.Combine(TestFiles.Vectors, name);

    [Fact]
    public void Verify_XenVector_ExitsZero_AndNamesTheKind()
    {
        var (code, output, err) = Run("verify", Vector("legacy-hvm-w64-41.xen-libxl.bin"));
        Assert.Equal(0, code);
        Assert.Contains("valid libxl stream", output);
        Assert.Equal("", err);
    }

    [Fact]
    public void Verify_XenStyleOptions_InAndFormat_AreAccepted()
    {
        var (code, _, _) = Run("verify", "-i", Vector("legacy-hvm-w64-41.xen-libxc.bin"), "-f", "libxc");
        Assert.Equal(0, code);
    }

    [Fact]
    public void Verify_WrongForcedFormat_ExitsOne()
    {
        var (code, _, err) = Run("verify", "--format", "xl", Vector("legacy-hvm-w64-41.xen-libxc.bin"));
        Assert.Equal(1, code);
        Assert.StartsWith("xmig: error: xl header at offset 0x0: magic", err);
    }

    [Fact]
    public void Verify_Quiet_PrintsNothing_EvenOnError()
    {
        var (code, output, err) = Run("verify", "-q", Path.Combine(TestFiles.Malformed, "libxc-missing-end.bin"));
        Assert.Equal(1, code);
        Assert.Equal("", output + err);
    }

    [Fact]
    public void Verify_Json_IsOneDocument_EvenWhenInvalid()
    {
        var (code, output, err) = Run("verify", "--json", Path.Combine(TestFiles.Malformed, "libxc-page-data-count-70000.bin"));
        Assert.Equal(1, code);
        using var doc = JsonDocument.Parse(output);
        Assert.False(doc.RootElement.GetProperty("valid").GetBoolean());
        Assert.Equal("0x80", doc.RootElement.GetProperty("error").GetProperty("offset").GetString());
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Verify_Verbose_ShowsRecords()
    {
        var (code, output, _) = Run("verify", "-v", Vector("legacy-pv-w32-41.xen-libxc.bin"));
        Assert.Equal(0, code);
        Assert.Contains("X86_PV_P2M_FRAMES length 16", output);
        Assert.Contains("result: valid", output);
    }

    [Fact]
    public void Verify_LegacyStream_IsDetectedAndVerifiedAsLegacy()
    {
        var (code, output, err) = Run("verify", Vector("legacy-pv-w64-41.bin"));
        Assert.True(code == 0, err);
        Assert.Contains("valid legacy stream: 64-bit toolstack, PV guest (64-bit), sender legacy-4.1", output);
    }

    [Fact]
    public void Verify_MissingFile_ExitsTwo()
    {
        var (code, _, err) = Run("verify", "/nonexistent/xmig-test.bin");
        Assert.Equal(2, code);
        Assert.StartsWith("xmig: error: /nonexistent/xmig-test.bin:", err);
    }

    [Fact]
    public void Inspect_Json_HasItemsAndSummary()
    {
        var (code, output, _) = Run("inspect", "--json", Vector("legacy-hvm-w64-41-xl.xen-xl.bin"));
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("xl_header", doc.RootElement.GetProperty("items")[0].GetProperty("item").GetString());
        Assert.Equal(40, doc.RootElement.GetProperty("summary").GetProperty("distinct_pfns").GetInt32());
    }

    [Fact]
    public void Inspect_TrailingQemuRecord_IsShown()
    {
        var (code, output, _) = Run("inspect", Vector("legacy-hvm-w32-41.xen-libxc.bin"));
        Assert.Equal(0, code);
        Assert.Contains("trailing data at 0x28640: 625 octets (QEMU record DeviceModelRecord0002, 600 octets of device state)", output);
    }

    [Fact]
    public void Inspect_UnknownOptionalRecord_IsKeptAndWarned()
    {
        var data = Xmig.Tests.Verify.MalformedStreams.Libxc(GuestType.Hvm, w => w.WriteRecord(0x8000_0001u, [1, 2, 3]));
        var path = Path.Combine(Path.GetTempPath(), $"xmig-optional-{Environment.ProcessId}.bin");
        File.WriteAllBytes(path, data);
        try
        {
            var (code, output, _) = Run("inspect", path);
            Assert.Equal(0, code);
            Assert.Contains("UNKNOWN_0x80000001 length 3 (unknown optional, skipped)", output);
            Assert.Contains("warning: UNKNOWN_0x80000001", output);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
