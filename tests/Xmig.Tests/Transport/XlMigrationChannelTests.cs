using System.IO.Pipes;
using System.Net;
using System.Net.Sockets;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;
using Xmig.Transport;

namespace Xmig.Tests.Transport;

public class XlMigrationChannelTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static XlMigrationChannel SenderReading(byte[] fromReceiver) =>
        new(new MemoryStream(fromReceiver), new MemoryStream(), XlChannelRole.Sender);

    [Fact]
    public void Messages_AreXlsOctets_BannerWithoutNulTheOthersWithIt()
    {
        Assert.Equal("xl migration receiver ready, send binary domain data.\n"u8.ToArray(), XlMigrationMessages.Banner.ToArray());
        Assert.Equal((byte)0, XlMigrationMessages.ReceiverReady[^1]);
        Assert.Equal((byte)0, XlMigrationMessages.PermissionToGo[^1]);
        Assert.Equal((byte)0, XlMigrationMessages.Report[^1]);
        Assert.NotEqual((byte)0, XlMigrationMessages.Banner[^1]);
    }

    [Fact]
    public void ExpectBanner_Garbage_OneLineNamingTheMessageWhatArrivedAndTheOffset()
    {
        using var channel = SenderReading("HTTP/1.1 400 Bad Request\r\n\r\n"u8.ToArray());
        var e = Assert.Throws<XlChannelException>(() => channel.ExpectBanner(Wait));
        Assert.Contains("expected the banner", e.Message);
        Assert.Contains("HTTP/1.1 400", e.Message);
        Assert.Contains("at offset 0", e.Message);
        Assert.Contains("differs at offset 0", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ExpectReady_GoMessageOutOfOrder_NamesTheReadyMessageAndWhereItDiffers()
    {
        var bytes = XlMigrationMessages.Banner.ToArray().Concat(XlMigrationMessages.PermissionToGo.ToArray()).ToArray();
        using var channel = SenderReading(bytes);
        channel.ExpectBanner(Wait);
        var e = Assert.Throws<XlChannelException>(() => channel.ExpectReady(Wait));
        Assert.Contains("ready message", e.Message);
        Assert.Contains($"at offset {XlMigrationMessages.Banner.Length}", e.Message);
        Assert.Contains("domain is yours", e.Message);
        Assert.False(e.PeerGone);
    }

    [Fact]
    public void ExpectBanner_PeerClosesPartWay_SaysClosedAndHowMuchArrived()
    {
        using var channel = SenderReading("xl migration rec"u8.ToArray());
        var e = Assert.Throws<XlChannelException>(() => channel.ExpectBanner(Wait));
        Assert.True(e.PeerGone);
        Assert.Contains("closed the channel at offset 16", e.Message);
        Assert.Contains("16 octets of it arrived", e.Message);
    }

    [Fact]
    public void ReadReport_NonZeroStatus_IsFollowedByThePermissionToResume()
    {
        var receiverSide = new MemoryStream();
        using (var receiver = new XlMigrationChannel(new MemoryStream(), receiverSide, XlChannelRole.Receiver))
        {
            receiver.SendReport(3);
        }

        using var sender = SenderReading(receiverSide.ToArray());
        Assert.Equal(3, sender.ReadReport(Wait));
        sender.ExpectPermissionToResume(Wait);
    }

    [Fact]
    public void Expect_SilentPipe_TimesOutThenTheLateOctetsAreStillRead()
    {
        using var server = new AnonymousPipeServerStream(PipeDirection.Out);
        using var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        using var channel = new XlMigrationChannel(client, new MemoryStream(), XlChannelRole.Sender);
        var e = Assert.Throws<XlChannelException>(() => channel.ExpectBanner(TimeSpan.FromMilliseconds(100)));
        Assert.True(e.TimedOut);
        Assert.Contains("nothing arrived within", e.Message);

        // The read that timed out is still pending: what arrives now is not lost.
        server.Write(XlMigrationMessages.Banner);
        server.Flush();
        using var fresh = new XlMigrationChannel(channel.Input, new MemoryStream(), XlChannelRole.Sender);
        fresh.ExpectBanner(Wait);
    }

    [Fact]
    public async Task Handshake_OverLoopbackTcp_BothEndsCompleteXlsSequence()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var payload = new byte[300_000];
        new Random(7).NextBytes(payload);

        var receiver = Task.Run(() =>
        {
            using var socket = listener.Accept();
            using var stream = new NetworkStream(socket);
            using var channel = new XlMigrationChannel(stream, stream, XlChannelRole.Receiver);
            channel.SendBanner();
            var got = new byte[payload.Length];
            channel.Input.ReadExactly(got);
            channel.SendReady();
            channel.ExpectPermissionToGo(Wait);
            channel.SendReport(0);
            return got;
        });

        using var socket = ChannelEndpoint.Connect("127.0.0.1", port, Wait);
        using var stream = new NetworkStream(socket);
        using var channel = new XlMigrationChannel(stream, stream, XlChannelRole.Sender);
        channel.ExpectBanner(Wait);
        channel.Output.Write(payload);
        channel.ExpectReady(Wait);
        channel.SendPermissionToGo();
        Assert.Equal(0, channel.ReadReport(Wait));
        Assert.Equal(payload, await receiver.WaitAsync(Wait));
    }
}
