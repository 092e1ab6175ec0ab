using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Samples;
using Xmig.Tests.Formats;
using Xmig.Tests.Support;
using Xmig.Verify;

namespace Xmig.Tests.Verify;

public class TruncationAndChunkingTests
{
    public static TheoryData<StreamKind, GuestType> Kinds() => new()
    {
        { StreamKind.Libxc, GuestType.Hvm },
        { StreamKind.Libxc, GuestType.Pv },
        { StreamKind.Libxl, GuestType.Hvm },
        { StreamKind.Xl, GuestType.Pv },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void TruncatedAtAndInsideEveryItem_IsInvalid_AtThatItemsOffset(StreamKind kind, GuestType guest)
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = kind, Guest = guest, Pages = 3, Vcpus = 1 });
        var starts = MalformedStreams.Items(data).Select(i => i.Offset).ToList();
        var checkedCuts = 0;
        for (var k = 0; k < starts.Count; k++)
        {
            var start = starts[k];
            var next = k + 1 < starts.Count ? starts[k + 1] : data.Length;
            long[] cuts = [start, start + 1, start + 4, start + 7, start + 8, start + 9, (start + next) / 2, next - 1];
            foreach (var cut in cuts.Where(c => c >= start && c < next).Distinct())
            {
                var result = StreamVerifier.Verify(new MemoryStream(data[..(int)cut]));
                Assert.False(result.IsValid, $"cut at 0x{cut:X} accepted");
                Assert.True(result.Error is not null, $"cut at 0x{cut:X}: no error");
                Assert.True(start == result.Error.Offset, $"cut at 0x{cut:X}: {result.Error.Message}, expected offset 0x{start:X}");
                checkedCuts++;
            }
        }

        Assert.True(checkedCuts > starts.Count * 3);
        Assert.True(StreamVerifier.Verify(new MemoryStream(data)).IsValid);
    }

    [Fact]
    public void SplitAtEveryOffset_YieldsTheSameRecords()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Guest = GuestType.Hvm, Pages = 2, Checkpoints = 2, Colo = true, EndAfterCheckpoints = true });
        var expected = Log(new MemoryStream(data));
        for (var split = 1; split < data.Length; split++)
        {
            var log = new List<string>();
            var rewritten = StreamRewriter.Rewrite(new SplitStream(data, split), StreamKind.Unknown, log);
            Assert.Equal(expected, log);
            Assert.True(data.AsSpan().SequenceEqual(rewritten), $"split at {split}");
        }
    }

    [Theory]
    [MemberData(nameof(TestFiles.XenV2Vectors), MemberType = typeof(TestFiles))]
    public void OneOctetPerRead_YieldsTheSameRecords(string name)
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, name));
        var expected = Log(new MemoryStream(data));
        var log = new List<string>();
        var rewritten = StreamRewriter.Rewrite(new TrickleStream(data, 1), StreamKind.Unknown, log);
        Assert.Equal(expected, log);
        Assert.Equal(data, rewritten);
    }

    [Fact]
    public void Verify_AllocatesNothingPerPage()
    {
        var small = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Pages = 1024 });
        var large = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Pages = 8192 });
        StreamVerifier.Verify(new MemoryStream(small));
        StreamVerifier.Verify(new TrickleStream(small, 1 << 16));

        foreach (var pipe in new[] { false, true })
        {
            Stream Open(byte[] d) => pipe ? new TrickleStream(d, 1 << 16) : new MemoryStream(d);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Assert.True(StreamVerifier.Verify(Open(small)).IsValid);
            var smallBytes = GC.GetAllocatedBytesForCurrentThread() - before;
            before = GC.GetAllocatedBytesForCurrentThread();
            Assert.True(StreamVerifier.Verify(Open(large)).IsValid);
            var largeBytes = GC.GetAllocatedBytesForCurrentThread() - before;

            // 7168 more pages: any per-page allocation would show as hundreds of KiB.
            Assert.True(largeBytes - smallBytes < 16 * 1024, $"pipe={pipe}: {smallBytes} vs {largeBytes} bytes allocated");
        }
    }

    private static List<string> Log(Stream stream)
    {
        var log = new List<string>();
        StreamRewriter.Rewrite(stream, StreamKind.Unknown, log);
        return log;
    }
}
