using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Samples;
using Xmig.Tests.Support;
using Xmig.Verify;

namespace Xmig.Tests.Verify;

public class StreamVerifierTests
{
    [Theory]
    [MemberData(nameof(TestFiles.XenV2Vectors), MemberType = typeof(TestFiles))]
    public void XenVector_Verifies(string name)
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name));
        var result = StreamVerifier.Verify(new MemoryStream(data));
        Assert.Null(result.Error);
        Assert.True(result.IsValid);
        Assert.Equal(data.Length, result.Summary.TotalBytes);
        Assert.Equal(40, result.Summary.DistinctPfns);
    }

    [Theory]
    [MemberData(nameof(TestFiles.XenV2Vectors), MemberType = typeof(TestFiles))]
    public void XenVector_VerifiesFromPipe_OneOctetAtATime(string name)
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name));
        var result = StreamVerifier.Verify(new TrickleStream(data, 1));
        Assert.True(result.IsValid, result.Error?.Message);
        Assert.Equal(data.Length, result.Summary.TotalBytes);
    }

    [Theory]
    [MemberData(nameof(Formats.SampleStreamTests.Shapes), MemberType = typeof(Formats.SampleStreamTests))]
    public void Sample_Verifies(StreamKind kind, GuestType guest, int checkpoints, bool colo)
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = kind, Guest = guest, Checkpoints = checkpoints, Colo = colo, Pages = 1500 });
        var result = StreamVerifier.Verify(new MemoryStream(data));
        Assert.True(result.IsValid, result.Error?.Message);
        Assert.Empty(result.Warnings);
        Assert.Equal(Math.Max(checkpoints, 0), result.Summary.Checkpoints);
        Assert.Equal(checkpoints > 0, result.Summary.EndedAtCheckpoint);
        Assert.Equal(1503, result.Summary.DistinctPfns);
    }

    [Fact]
    public void LegacyStream_IsReportedAsLegacy()
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "legacy-pv-w64-41.bin"));
        var result = StreamVerifier.Verify(new MemoryStream(data));
        Assert.True(result.IsLegacy);
        Assert.False(result.IsValid);
        Assert.Null(result.Error);
    }

    [Fact]
    public void LegacyXlPayload_IsReportedAsLegacy()
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "legacy-hvm-w64-41-xl.bin"));
        var result = StreamVerifier.Verify(new MemoryStream(data));
        Assert.True(result.IsLegacy);
    }
}
