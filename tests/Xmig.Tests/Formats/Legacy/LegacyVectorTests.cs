using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Formats.Xl;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Tests.Formats.Legacy;

public class LegacyVectorTests
{
    public static TheoryData<string> Vectors => LegacyVectors.Names();

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Restore_Vector_ReproducesManifestMemoryDigestAndPageCount(string name)
    {
        var v = LegacyVectors.Get(name);
        var bytes = File.ReadAllBytes(v.Path);
        var offset = 0;
        if (v.Xl)
        {
            using var ms = new MemoryStream(bytes);
            using var input = new InputBuffer(ms);
            offset = XlHeader.Size + XlHeaderOptional(input);
        }

        var (sink, result, position) = LegacyTestStreams.Restore(bytes[offset..], v.Width / 8, v.GuestType);

        Assert.Equal(v.MemorySha256, sink.MemoryDigest());
        Assert.Equal(v.Pages, sink.Memory.Count);
        Assert.Equal(v.Checkpoints, result.CheckpointsCommitted);
        Assert.Equal(v.Checkpoints, result.CheckpointsSeen);
        Assert.Equal(bytes.Length - offset, position);
        Assert.Empty(sink.Discarded);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Restore_Vector_ReportsSenderGeneration(string name)
    {
        var v = LegacyVectors.Get(name);
        var bytes = File.ReadAllBytes(v.Path);
        var offset = v.Xl ? LegacyXlHeaderLength(bytes) : 0;
        var (_, result, _) = LegacyTestStreams.Restore(bytes[offset..], v.Width / 8, v.GuestType);

        var expected = v.Sender == "41"
            ? (v.Checkpoints > 1 ? LegacySenderGeneration.Checkpointed : LegacySenderGeneration.Legacy41)
            : LegacySenderGeneration.Legacy40;
        Assert.Equal(expected, result.Generation);
        Assert.Equal(v.Checkpoints == 1 ? (v.Sender == "41" ? LegacyRestoreEnd.LastCheckpoint : LegacyRestoreEnd.EndOfStream) : LegacyRestoreEnd.EndOfStream, result.End);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Detect_Vector_FindsWidthAndGuestType(string name)
    {
        var v = LegacyVectors.Get(name);
        var bytes = File.ReadAllBytes(v.Path);
        var offset = v.Xl ? LegacyXlHeaderLength(bytes) : 0;

        var d = LegacyDetection.Detect(bytes.AsSpan(offset, LegacyDetection.ProbeLength), offset, null, null);

        Assert.Equal(v.Width / 8, d.Width);
        Assert.Equal(v.GuestType, d.Guest);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Restore_VectorReadInTinyBufferSlices_GivesTheSameDigest(string name)
    {
        var v = LegacyVectors.Get(name);
        var bytes = File.ReadAllBytes(v.Path);
        var offset = v.Xl ? LegacyXlHeaderLength(bytes) : 0;
        using var ms = new TrickleStream(bytes[offset..], 7);
        using var input = new InputBuffer(ms, 4096);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(v.Width / 8, v.GuestType));
        var sink = new MemorySink();

        LegacyCheckpointDecision.Run(reader, sink);

        Assert.Equal(v.MemorySha256, sink.MemoryDigest());
    }

    [Fact]
    public void Restore_Remus3Streams_CommitThreeCheckpoints()
    {
        foreach (var name in new[] { "legacy-pv-w64-remus3", "legacy-hvm-w64-remus3" })
        {
            var v = LegacyVectors.Get(name);
            var (sink, result, _) = LegacyTestStreams.Restore(File.ReadAllBytes(v.Path), 8, v.GuestType, CheckpointedMode.Yes);
            Assert.Equal([1, 2, 3], sink.Committed);
            Assert.Equal(3, result.CheckpointsCommitted);
            Assert.Equal(v.MemorySha256, sink.MemoryDigest());
        }
    }

    internal static int LegacyXlHeaderLength(byte[] bytes)
    {
        using var ms = new MemoryStream(bytes);
        using var input = new InputBuffer(ms);
        return XlHeader.Size + XlHeaderOptional(input);
    }

    private static int XlHeaderOptional(InputBuffer input)
    {
        XlHeader.ReadLegacy(input, out var optionalData);
        return optionalData.Length;
    }
}

/// <summary>A stream that returns at most <c>chunk</c> octets per read (a slow pipe).</summary>
internal sealed class TrickleStream(byte[] data, int chunk) : Stream
{
    private int _pos;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = Math.Min(Math.Min(count, chunk), data.Length - _pos);
        Array.Copy(data, _pos, buffer, offset, n);
        _pos += n;
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
