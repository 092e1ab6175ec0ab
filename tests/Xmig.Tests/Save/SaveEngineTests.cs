using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;
using Xmig.Verify;

namespace Xmig.Tests.Save;

public class SaveEngineTests
{
    [Theory]
    [InlineData("hvm", 8, "xl", 0)]
    [InlineData("hvm", 8, "libxl", 2)]
    [InlineData("hvm", 8, "libxc", 0)]
    [InlineData("pv", 8, "xl", 0)]
    [InlineData("pv", 4, "libxl", 0)]
    [InlineData("pv", 8, "libxc", 3)]
    public void SavedStream_PassesTheVerifier(string guest, int width, string kind, int checkpoints)
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, guest, width);
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = checkpoints }, "uniform:20");
        var result = StreamVerifier.Verify(new MemoryStream(saved.Bytes));
        Assert.True(result.IsValid, result.Error?.Message);
    }

    /// <summary>The record sequence of v2-stream.md §3.6 and §4.5, checked record by record for a plain HVM xl save.</summary>
    [Fact]
    public void PlainHvmSave_WritesXensRecordSequence()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Xl, Live = false });
        var sequence = Sequence(saved.Bytes);
        var expected = new List<string> { "xl", "libxl", "LIBXC_CONTEXT", "image", "domain:2", "X86_CPUID_POLICY", "X86_MSR_POLICY", "STATIC_DATA_END" };
        var pageRecords = (int)((domain.P2mSize + 1023) / 1024);
        expected.AddRange(Enumerable.Repeat("PAGE_DATA", pageRecords));
        expected.AddRange(["X86_TSC_INFO", "HVM_CONTEXT", "HVM_PARAMS", "END", "EMULATOR_XENSTORE_DATA", "EMULATOR_CONTEXT", "libxl END"]);
        Assert.Equal(expected, sequence);
    }

    [Fact]
    public void PlainPvSave_WritesXensRecordSequence()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv", vcpus: 2);
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Libxc, Live = false });
        var sequence = Sequence(saved.Bytes);
        var expected = new List<string> { "image", "domain:1", "X86_PV_INFO", "X86_CPUID_POLICY", "X86_MSR_POLICY", "STATIC_DATA_END", "X86_PV_P2M_FRAMES" };
        expected.AddRange(Enumerable.Repeat("PAGE_DATA", (int)((domain.P2mSize + 1023) / 1024)));
        expected.AddRange(["X86_TSC_INFO", "SHARED_INFO"]);
        for (var v = 0; v < 2; v++)
        {
            expected.AddRange(["X86_PV_VCPU_BASIC", "X86_PV_VCPU_EXTENDED", "X86_PV_VCPU_XSAVE"]);
        }

        expected.Add("END");
        Assert.Equal(expected, sequence);
    }

    /// <summary>v2-stream.md §6.3: each checkpoint ends with CHECKPOINT then the libxl records and CHECKPOINT_END; no END.</summary>
    [Fact]
    public void CheckpointedSave_WritesCheckpointShape()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Libxl, Checkpoints = 2 }, "uniform:50");
        var sequence = Sequence(saved.Bytes).Where(r => r != "PAGE_DATA").ToList();
        var checkpoint = new[] { "X86_TSC_INFO", "HVM_CONTEXT", "HVM_PARAMS", "CHECKPOINT", "EMULATOR_XENSTORE_DATA", "EMULATOR_CONTEXT", "CHECKPOINT_END" };
        Assert.Equal(
            ["libxl", "LIBXC_CONTEXT", "image", "domain:2", "X86_CPUID_POLICY", "X86_MSR_POLICY", "STATIC_DATA_END", .. checkpoint, .. checkpoint],
            sequence);
        Assert.Equal(2, saved.Result.Checkpoints);
    }

    [Fact]
    public void LiveSave_UnderWorkload_IteratesAndEndsPaused()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv", memoryMiB: 32);
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Xl, Policy = new XenPrecopyPolicy(maxIterations: 3, targetDirtyPages: 1) }, "uniform:400");
        Assert.True(domain.IsPaused);
        Assert.False(domain.LogDirty);
        Assert.InRange(saved.Result.Iterations, 2, 4);
        Assert.True(saved.Result.PagesSent > (long)domain.PopulatedPages);
    }

    private static List<string> Sequence(byte[] bytes)
    {
        using var input = new InputBuffer(new MemoryStream(bytes));
        var walker = new V2StreamReader(input);
        var names = new List<string>();
        while (walker.Read())
        {
            names.Add(walker.Item switch
            {
                V2Item.XlHeader => "xl",
                V2Item.LibxlHeader => "libxl",
                V2Item.LibxcImageHeader => "image",
                V2Item.LibxcDomainHeader => "domain:" + walker.Libxc!.DomainHeader.Type,
                V2Item.LibxcRecord => RecordTypes.Name(walker.Libxc!.Header.Type),
                V2Item.LibxlRecord => LibxlRecordTypes.Name(walker.Libxl!.Header.Type),
                _ => walker.Item.ToString(),
            });
        }

        return names;
    }
}
