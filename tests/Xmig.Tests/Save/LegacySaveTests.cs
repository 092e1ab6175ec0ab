using System.Text;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;

namespace Xmig.Tests.Save;

public class LegacySaveTests
{
    [Theory]
    [InlineData("legacy-4.0", 0)]
    [InlineData("legacy-4.1", 0)]
    [InlineData("legacy-4.0", 2)]
    public void LegacyHvmSave_WritesTheDeviceModelRecordAsLibxlDid_OncePerCheckpoint(string kind, int checkpoints)
    {
        // Xen's convert-legacy-stream accepts only DeviceModelRecord0002 (v2-stream.md §9.1), whatever the sender
        // generation; the xend-era signatures would make it exit 2.
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = checkpoints, Live = false });
        var text = Encoding.Latin1.GetString(saved.Bytes);
        Assert.Equal(Math.Max(1, checkpoints), CountOf(text, "DeviceModelRecord0002"));
        Assert.Equal(0, CountOf(text, "QemuDeviceModelRecord"));
        Assert.Equal(0, CountOf(text, "RemusDeviceModelState"));
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;
}
