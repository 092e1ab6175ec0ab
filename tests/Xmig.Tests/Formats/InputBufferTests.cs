using Xmig.Formats;
using Xmig.Tests.Support;

namespace Xmig.Tests.Formats;

public class InputBufferTests
{
    private static byte[] Data(int n)
    {
        var data = new byte[n];
        for (var i = 0; i < n; i++)
        {
            data[i] = (byte)(i * 7 + 3);
        }

        return data;
    }

    [Fact]
    public void Peek_DoesNotConsume_AndReadReturnsSameOctets()
    {
        using var input = new InputBuffer(new TrickleStream(Data(100)));
        var peeked = input.Peek(4).ToArray();
        Assert.Equal(0, input.Position);
        Assert.Equal(peeked, input.Read(4).ToArray());
        Assert.Equal(4, input.Position);
    }

    [Fact]
    public void TryRead_AtEndOfStream_ReportsAvailableAndConsumesNothing()
    {
        using var input = new InputBuffer(new MemoryStream(Data(10)));
        input.Read(8);
        Assert.False(input.TryRead(4, out _, out var available));
        Assert.Equal(2, available);
        Assert.Equal(8, input.Position);
        Assert.Throws<EndOfStreamException>(() => input.Read(4));
    }

    [Fact]
    public void Read_LargerThanBuffer_GrowsAndKeepsOctets()
    {
        var data = Data(3 * 4096 + 17);
        using var input = new InputBuffer(new TrickleStream(data, 1000), size: 4096);
        input.Read(5);
        Assert.Equal(data.AsSpan(5, 3 * 4096).ToArray(), input.Read(3 * 4096).ToArray());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Skip_SeekableOrPipe_LandsOnSameOctet(bool seekable)
    {
        var data = Data(100_000);
        Stream stream = seekable ? new MemoryStream(data) : new TrickleStream(data, 333);
        using var input = new InputBuffer(stream, size: 4096);
        input.Read(3);
        Assert.Equal(50_000, input.Skip(50_000));
        Assert.Equal(50_003, input.Position);
        Assert.Equal(data[50_003], input.Read(1)[0]);
        Assert.Equal(100_000 - 50_004, input.Skip(1_000_000));
        Assert.True(input.AtEnd);
    }

    [Fact]
    public void ReadInto_LargeDestination_BypassesBufferAndCountsPosition()
    {
        var data = Data(64 * 1024);
        using var input = new InputBuffer(new TrickleStream(data, 5000), size: 4096);
        input.Read(10);
        var page = new byte[40_000];
        Assert.Equal(page.Length, input.ReadInto(page));
        Assert.Equal(data.AsSpan(10, page.Length).ToArray(), page);
        Assert.Equal(40_010, input.Position);
        var rest = new byte[100_000];
        Assert.Equal(data.Length - 40_010, input.ReadInto(rest));
    }

    [Fact]
    public void CopyTo_CopiesExactCount()
    {
        var data = Data(10_000);
        using var input = new InputBuffer(new TrickleStream(data, 7), size: 4096);
        using var output = new MemoryStream();
        Assert.Equal(9_000, input.CopyTo(output, 9_000));
        Assert.Equal(data.AsSpan(0, 9_000).ToArray(), output.ToArray());
        Assert.Equal(1_000, input.CopyTo(output, 5_000));
    }

    [Fact]
    public void OutputBuffer_CountsPositionAndFlushesInOrder()
    {
        using var sink = new MemoryStream();
        using (var output = new OutputBuffer(sink, size: 4096))
        {
            output.WriteUInt32LittleEndian(0x01020304);
            output.WriteZeros(4);
            output.Write(Data(10_000));
            output.WriteUInt64LittleEndian(ulong.MaxValue);
            Assert.Equal(10_016, output.Position);
            output.Flush();
        }

        var bytes = sink.ToArray();
        Assert.Equal(10_016, bytes.Length);
        Assert.Equal(new byte[] { 4, 3, 2, 1, 0, 0, 0, 0 }, bytes[..8]);
        Assert.Equal(Data(10_000), bytes[8..10_008]);
    }
}
