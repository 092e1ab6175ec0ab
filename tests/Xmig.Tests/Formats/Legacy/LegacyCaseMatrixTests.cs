using System.Net;
using System.Net.Sockets;
using System.Text;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Tests.Formats.Legacy;

/// <summary>legacy-stream.md §10.3, rows 1–7, with what follows the image: EOF, a device-model record, xl handshake text.</summary>
public class LegacyCaseMatrixTests
{
    private static readonly byte[] Handshake = Encoding.ASCII.GetBytes("domain is yours, you are cleared to unpause\0");

    private static byte[] DeviceModelTrailer()
    {
        var dm = new List<byte>();
        dm.AddRange("DeviceModelRecord0002"u8.ToArray());
        dm.AddRange(BitConverter.GetBytes(8));
        dm.AddRange("QEVM1234"u8.ToArray());
        return [.. dm];
    }

    private static byte[] QemuTrailer() => [.. "QemuDeviceModelRecord"u8.ToArray(), .. "QEVM-state"u8.ToArray()];

    private static (byte[] Bytes, int ImageLength) Plain(LegacyWriterGeneration generation, byte[] trailer, GuestType guest = GuestType.Pv)
    {
        var b = new LegacyImageBuilder { Generation = generation, Guest = guest, WriteDeviceModel = false };
        var image = b.Build();
        return ([.. image, .. trailer], image.Length);
    }

    private static (byte[] Bytes, int FirstCheckpointEnd) Remus(LegacyWriterGeneration generation, int checkpoints = 3)
    {
        var all = new LegacyImageBuilder { Generation = generation, Checkpoints = checkpoints }.Build();

        // A checkpointed writer omits −9; the first checkpoint ends where a one-checkpoint legacy-4.0 image ends.
        var firstEnd = new LegacyImageBuilder { Generation = LegacyWriterGeneration.Legacy40, Checkpoints = 1 }.Build().Length;
        return (all, firstEnd);
    }

    [Fact]
    public void CaseMatrix_Row1_OldSenderPlainStream_NoMode_CommitsAfterFirstTail()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy40, Handshake);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.No);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.FirstTail, result.End);
        Assert.Equal(image, position);
        Assert.Equal(LegacySenderGeneration.Legacy40, result.Generation);
    }

    [Fact]
    public void CaseMatrix_Row1_OldSenderPlainStream_AutoMode_StopsBeforeHandshakeTextWithoutConsumingIt()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy40, Handshake);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Auto);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.NotAChunk, result.End);
        Assert.Equal(image, position);
        Assert.Equal(0, result.ConsumedAfterCommit);
        Assert.Contains("xl migration protocol text", result.EndDetail);
    }

    [Fact]
    public void CaseMatrix_Row1_OldSenderHvmStream_AutoMode_LeavesTheDeviceModelRecordIntactForTheLayerAbove()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy40, DeviceModelTrailer(), GuestType.Hvm);
        using var ms = new MemoryStream(bytes);
        using var input = new InputBuffer(ms);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(8, GuestType.Hvm) { DeviceModel = LegacyDeviceModelHandling.Leave });
        var sink = new MemorySink();

        var result = LegacyCheckpointDecision.Run(reader, sink);

        Assert.Equal(LegacyRestoreEnd.NotAChunk, result.End);
        Assert.Equal(image, input.Position);
        Assert.Equal("DeviceModelRecord0002"u8.ToArray(), input.Read(21).ToArray());
        Assert.Contains("device-model record", result.EndDetail);
    }

    [Fact]
    public void CaseMatrix_Row1_OldSenderPlainStream_AutoMode_CommitsOnEndOfStream()
    {
        var (bytes, _) = Plain(LegacyWriterGeneration.Legacy40, []);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Auto);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.EndOfStream, result.End);
        Assert.Equal(bytes.Length, position);
    }

    [Fact]
    public void CaseMatrix_Row2_NewSenderPlainStream_NoMode_LastCheckpointIsANoOp()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy41, Handshake);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.No);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.FirstTail, result.End);
        Assert.Equal(image, position);
        Assert.Equal(LegacySenderGeneration.Legacy41, result.Generation);
    }

    [Fact]
    public void CaseMatrix_Row2_NewSenderPlainStream_AutoMode_CommitsOnLastCheckpointWithoutLookingFurther()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy41, Handshake);
        var (_, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Auto);
        Assert.Equal(LegacyRestoreEnd.LastCheckpoint, result.End);
        Assert.Equal(image, position);
    }

    [Fact]
    public void CaseMatrix_Row3_RemusNewSender_YesMode_CommitsEachCheckpointAndEndsOnEndOfStream()
    {
        var (bytes, _) = Remus(LegacyWriterGeneration.Legacy41);
        var (sink, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);
        Assert.Equal([1, 2, 3], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.EndOfStream, result.End);
        Assert.Equal(LegacySenderGeneration.Checkpointed, result.Generation);
    }

    [Fact]
    public void CaseMatrix_Row3_RemusNewSender_YesMode_EndsOnAPartialCheckpointWithTheLastCompleteOne()
    {
        var b = new LegacyImageBuilder { Checkpoints = 3 };
        var bytes = b.Build();
        var cut = bytes[..^100];
        var (sink, result, _) = LegacyTestStreams.Restore(cut, 8, GuestType.Pv, CheckpointedMode.Yes);
        Assert.Equal([1, 2], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.IncompleteCheckpoint, result.End);
        Assert.Equal(3, result.CheckpointsSeen);
        Assert.NotNull(result.DiscardedBecause);
        foreach (var (pfn, page) in b.Expected[1])
        {
            Assert.Equal(page, sink.Memory[pfn]);
        }
    }

    [Fact]
    public void CaseMatrix_Row3_RemusNewSender_AutoMode_ReadsEveryCheckpoint()
    {
        var (bytes, _) = Remus(LegacyWriterGeneration.Legacy41);
        var (sink, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Auto);
        Assert.Equal([1, 2, 3], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.EndOfStream, result.End);
    }

    [Fact]
    public void CaseMatrix_Row4_RemusOldSender_YesMode_TakesTheSamePathAsRow3()
    {
        var (bytes, _) = Remus(LegacyWriterGeneration.Legacy40);
        var (sink, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);
        Assert.Equal([1, 2, 3], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.EndOfStream, result.End);
    }

    [Fact]
    public void CaseMatrix_Row5_NewSenderToldCheckpointed_YesMode_CommitsAfterTheCheckpointCarryingLastCheckpoint()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy41, Handshake);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.LastCheckpoint, result.End);
        Assert.Equal(image, position);
    }

    [Fact]
    public void CaseMatrix_Row6_OldSenderToldCheckpointed_YesMode_WorksWhenEndOfStreamFollows()
    {
        var (bytes, _) = Plain(LegacyWriterGeneration.Legacy40, []);
        var (sink, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.EndOfStream, result.End);
    }

    [Fact]
    public void CaseMatrix_Row6_OldSenderToldCheckpointed_YesMode_ExplainsTheDeviceModelRecordInsteadOfMaxBatchSizeExceeded()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy40, QemuTrailer(), GuestType.Hvm);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Hvm, CheckpointedMode.Yes, LegacyDeviceModelHandling.Leave);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.NotAChunkConsumed, result.End);
        Assert.Equal(image + 4, position);
        Assert.Equal(4, result.ConsumedAfterCommit);
        Assert.Contains("the start of a device-model record \"Qemu\"", result.EndDetail);
        Assert.Contains("Max batch size exceeded (1970103633)", result.EndDetail);
        Assert.Contains("--checkpointed no", result.EndDetail);
    }

    [Fact]
    public void CaseMatrix_Row6_OldSenderToldCheckpointed_YesMode_ExplainsHandshakeText()
    {
        var (bytes, _) = Plain(LegacyWriterGeneration.Legacy40, Handshake);
        var (_, result, _) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Yes);
        Assert.Equal(LegacyRestoreEnd.NotAChunkConsumed, result.End);
        Assert.Contains("xl migration protocol text \"doma\"", result.EndDetail);
    }

    [Fact]
    public void CaseMatrix_Row6_OldSenderToldCheckpointed_YesMode_CommitsWhenTheSocketStaysSilent()
    {
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy40, []);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        client.Connect((IPEndPoint)listener.LocalEndpoint);
        using var server = listener.AcceptTcpClient();
        server.GetStream().Write(bytes);

        using var input = new InputBuffer(new Xmig.IO.HeartbeatStream(client.GetStream()));
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(8, GuestType.Pv));
        var sink = new MemorySink();
        var result = LegacyCheckpointDecision.Run(reader, sink, new LegacyCheckpointDecisionOptions
        {
            Mode = CheckpointedMode.Yes,
            Heartbeat = TimeSpan.FromMilliseconds(200),
        });

        Assert.Equal(LegacyRestoreEnd.Silence, result.End);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(image, input.Position);
    }

    [Fact]
    public void CaseMatrix_Row7_RemusSenderToldPlain_NoMode_CommitsTheFirstCheckpointAndLeavesTheRestUnread()
    {
        var (bytes, firstEnd) = Remus(LegacyWriterGeneration.Legacy41);
        var (sink, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.No);
        Assert.Equal([1], sink.Committed);
        Assert.Equal(LegacyRestoreEnd.FirstTail, result.End);
        Assert.Equal(firstEnd, position);
    }

    [Fact]
    public void Auto_V2ImageAfterTheTail_IsNotMistakenForVerifyModeChunk()
    {
        var v2 = new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, (byte)'X', (byte)'E', (byte)'N', (byte)'F' };
        var (bytes, image) = Plain(LegacyWriterGeneration.Legacy40, v2);
        var (_, result, position) = LegacyTestStreams.Restore(bytes, 8, GuestType.Pv, CheckpointedMode.Auto);
        Assert.Equal(LegacyRestoreEnd.NotAChunk, result.End);
        Assert.Equal(image, position);
        Assert.Contains("Migration v2 image", result.EndDetail);
    }
}
