using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Samples;

namespace Xmig.Tests.Formats;

public class SampleStreamTests
{
    public static TheoryData<StreamKind, GuestType, int, bool> Shapes()
    {
        var data = new TheoryData<StreamKind, GuestType, int, bool>();
        foreach (var kind in new[] { StreamKind.Xl, StreamKind.Libxl, StreamKind.Libxc })
        {
            foreach (var guest in new[] { GuestType.Pv, GuestType.Hvm })
            {
                data.Add(kind, guest, 0, false);
                data.Add(kind, guest, 3, false);
                data.Add(kind, guest, 2, true);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Sample_RewritesByteIdentically(StreamKind kind, GuestType guest, int checkpoints, bool colo)
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = kind, Guest = guest, Checkpoints = checkpoints, Colo = colo, Pages = 1500 });
        Assert.Equal(kind, StreamDetector.Detect(data.AsSpan(0, 32)));
        Assert.Equal(data, StreamRewriter.Rewrite(new MemoryStream(data)));
    }

    [Fact]
    public void CheckpointedLibxlSample_WalksAllCheckpoints_AndEndsAtCheckpoint()
    {
        var data = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Checkpoints = 3, Colo = true });
        using var input = new InputBuffer(new MemoryStream(data));
        var walker = new V2StreamReader(input);
        var checkpointEnds = 0;
        var states = 0;
        while (walker.Read())
        {
            if (walker.Item == V2Item.LibxlRecord)
            {
                checkpointEnds += walker.Libxl!.Type == Xmig.Formats.Libxl.LibxlRecordType.CheckpointEnd ? 1 : 0;
                states += walker.Libxl!.Type == Xmig.Formats.Libxl.LibxlRecordType.CheckpointState ? 1 : 0;
            }
        }

        Assert.Equal(3, walker.Checkpoints);
        Assert.Equal(3, checkpointEnds);
        Assert.Equal(3, states);
        Assert.True(walker.EndedAtCheckpoint);
    }
}
