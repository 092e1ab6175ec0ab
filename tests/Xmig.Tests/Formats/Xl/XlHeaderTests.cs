using Xmig.Formats;
using Xmig.Formats.Xl;
using Xmig.Samples;

namespace Xmig.Tests.Formats.Xl;

public class XlHeaderTests
{
    [Fact]
    public void XlHeader_RoundTrip_WithConfigBlock()
    {
        var block = XlHeader.BuildConfigBlock("{\"a\":1}\0"u8);
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            XlHeader.WriteTo(output, XlMandatoryFlags.Json | XlMandatoryFlags.StreamV2, block);
            output.Flush();
        }

        var data = ms.ToArray();
        Assert.Equal(48 + 12, data.Length);
        Assert.Equal(Convert.FromHexString("04030201030000000000000000000000"[..24] + "0C000000"), data.AsSpan(32, 16).ToArray());
        using var input = new InputBuffer(new MemoryStream(data));
        var h = XlHeader.ReadFrom(input, out var optional);
        Assert.True(h.IsStreamV2);
        Assert.Equal(block, optional);
        Assert.True(XlHeader.TryGetConfig(optional, out var config));
        Assert.Equal("{\"a\":1}\0"u8.ToArray(), config.ToArray());
    }

    [Fact]
    public void XlHeader_UnknownMandatoryFlag_IsRejected()
    {
        var data = new byte[48];
        XlHeader.Create((XlMandatoryFlags)4, 0).Write(data);
        using var input = new InputBuffer(new MemoryStream(data));
        var e = Assert.Throws<StreamFormatException>(() => XlHeader.ReadFrom(input, out _));
        Assert.Equal(36, e.Offset);
    }

    [Fact]
    public void XlSample_RoundTrips_AndStreamStartIsNotAligned()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Guest = GuestType.Pv });
        using var input = new InputBuffer(new MemoryStream(data));
        var walker = new V2StreamReader(input);
        Assert.True(walker.Read());
        Assert.Equal(V2Item.XlHeader, walker.Item);
        Assert.True(walker.Read());
        Assert.Equal(V2Item.LibxlHeader, walker.Item);
        Assert.NotEqual(0, walker.ItemOffset % 8);
        Assert.Equal(data, StreamRewriter.Rewrite(new MemoryStream(data)));
    }
}
