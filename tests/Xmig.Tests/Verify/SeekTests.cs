using Xmig.Formats;
using Xmig.Samples;
using Xmig.Verify;

namespace Xmig.Tests.Verify;

public class SeekTests
{
    /// <summary>A seekable stream that counts the octets actually read.</summary>
    private sealed class CountingStream(byte[] data) : MemoryStream(data, writable: false)
    {
        public long ReadBytes { get; private set; }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = base.Read(buffer, offset, count);
            ReadBytes += n;
            return n;
        }

        public override int Read(Span<byte> buffer)
        {
            var n = base.Read(buffer);
            ReadBytes += n;
            return n;
        }
    }

    [Fact]
    public void Verify_SeekableInput_SkipsPageDataBySeeking()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Pages = 8192 });
        using var stream = new CountingStream(data);
        var result = StreamVerifier.Verify(stream);
        Assert.True(result.IsValid, result.Error?.Message);
        Assert.Equal(data.Length, result.Summary.TotalBytes);
        Assert.True(stream.ReadBytes < data.Length / 4, $"read {stream.ReadBytes} of {data.Length} octets");
    }

    [Fact]
    public void Verify_SeekDisabled_ReadsEverything()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Pages = 2048 });
        using var stream = new CountingStream(data);
        var result = StreamVerifier.Verify(stream, StreamFormat.Auto, new VerifyOptions { SeekPageData = false });
        Assert.True(result.IsValid);
        Assert.Equal(data.Length, stream.ReadBytes);
    }
}
