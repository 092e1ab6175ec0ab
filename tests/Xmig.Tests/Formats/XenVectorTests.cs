using Xmig.Formats;

namespace Xmig.Tests.Formats;

public class XenVectorTests
{
    [Theory]
    [MemberData(nameof(TestFiles.XenV2Vectors), MemberType = typeof(TestFiles))]
    public void XenVector_ReadAndRewrite_IsByteIdentical(string name)
    {
        var original = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name));
        var rewritten = StreamRewriter.Rewrite(new MemoryStream(original));
        Assert.Equal(original.Length, rewritten.Length);
        Assert.True(original.AsSpan().SequenceEqual(rewritten), "rewritten stream differs");
    }

    [Theory]
    [MemberData(nameof(TestFiles.XenV2Vectors), MemberType = typeof(TestFiles))]
    public void XenVector_Detect_MatchesFileName(string name)
    {
        var head = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name)).AsSpan(0, StreamDetector.HeadLength);
        var expected = name.Contains(".xen-xl", StringComparison.Ordinal) ? StreamKind.Xl
            : name.Contains(".xen-libxl", StringComparison.Ordinal) ? StreamKind.Libxl
            : StreamKind.Libxc;
        Assert.Equal(expected, StreamDetector.Detect(head));
    }

    [Fact]
    public void LegacyVectors_DetectAsLegacy()
    {
        foreach (var path in Directory.GetFiles(TestFiles.Vectors, "legacy-*.bin").Where(p => !p.Contains(".xen-", StringComparison.Ordinal)))
        {
            var head = File.ReadAllBytes(path).AsSpan(0, StreamDetector.HeadLength);
            var kind = StreamDetector.Detect(head);
            Assert.True(kind is StreamKind.Legacy or StreamKind.Xl, path);
        }
    }

    [Fact]
    public void HvmLibxcVector_HasQemuRecordAfterEnd()
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "legacy-hvm-w64-41.xen-libxc.bin"));
        using var input = new InputBuffer(new MemoryStream(data));
        var walker = new V2StreamReader(input);
        var trailing = -1L;
        while (walker.Read())
        {
            if (walker.Item == V2Item.TrailingData)
            {
                trailing = walker.ItemOffset;
            }
        }

        Assert.Equal(165440, trailing);
        Assert.True(Xmig.Formats.Libxc.QemuDeviceModelRecord.TryParse(data.AsSpan((int)trailing), out var length));
        Assert.Equal(data.Length - trailing - 25, length);
    }
}
