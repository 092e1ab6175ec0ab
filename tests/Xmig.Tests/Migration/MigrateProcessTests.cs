using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

#pragma warning disable xUnit1031 // child processes and fake peers are waited for with bounded blocking waits

namespace Xmig.Tests.Migration;

/// <summary>Live migrations between real xmig processes over loopback TCP (and one over pipes).</summary>
public partial class MigrateProcessTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    /// <summary>A running <c>xmig migrate-receive --listen 127.0.0.1:0</c> and the port it took.</summary>
    private sealed class Receiver : IDisposable
    {
        private readonly StringBuilder _err = new();
        private readonly TaskCompletionSource<int> _port = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Receiver(params string[] args)
        {
            Process = XmigProcess.Start(false, ["migrate-receive", "--listen", "127.0.0.1:0", "--json", .. args]);
            Stdout = Process.StandardOutput.ReadToEndAsync();
            Process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    _port.TrySetResult(-1);
                    return;
                }

                lock (_err)
                {
                    _err.AppendLine(e.Data);
                }

                var m = PortLine().Match(e.Data);
                if (m.Success)
                {
                    _port.TrySetResult(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
                }
            };
            Process.BeginErrorReadLine();
            Assert.True(_port.Task.Wait(Bound), "receiver did not say where it listens");
            Port = _port.Task.Result;
            Assert.True(Port > 0, "receiver ended before listening: " + Err);
        }

        public Process Process { get; }

        public Task<string> Stdout { get; }

        public int Port { get; }

        public string Err
        {
            get
            {
                lock (_err)
                {
                    return _err.ToString();
                }
            }
        }

        public (int Code, string Out) Finish()
        {
            if (!Process.WaitForExit(Bound))
            {
                Process.Kill(true);
                throw new TimeoutException("receiver did not finish");
            }

            Process.WaitForExit();
            return (Process.ExitCode, Stdout.Result);
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(true);
            }

            Process.Dispose();
        }
    }

    [GeneratedRegex(@"listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex PortLine();

    private static string Digest(string dir)
    {
        var (code, output, err) = DomainTestSupport.Cli("domain", "digest", dir);
        Assert.True(code == 0, err);
        return output.Split(' ')[0];
    }

    private static void Create(TempDirectory tmp, string guest, string memory = "16MiB")
    {
        var (code, _, err) = DomainTestSupport.Cli("domain", "create", tmp["src"], "--type", guest, "--memory", memory, "--vcpus", "2");
        Assert.True(code == 0, err);
    }

    /// <summary>The source is there, unrenamed, with the digest it had; the destination left nothing.</summary>
    private static void AssertSourceKeptAndDestinationEmpty(TempDirectory tmp, string before)
    {
        Assert.True(Directory.Exists(tmp["src"]), "the source directory is gone");
        Assert.False(Directory.Exists(tmp["src--migratedaway"]), "the source was renamed away");
        Assert.Equal(before, Digest(tmp["src"]));
        Assert.False(Directory.Exists(tmp["dst"]), "the destination left a domain behind");
    }

    [Theory]
    [InlineData("hvm", "xl", "idle")]
    [InlineData("hvm", "libxl", "idle")]
    [InlineData("hvm", "libxc", "idle")]
    [InlineData("hvm", "legacy-4.0", "idle")]
    [InlineData("hvm", "legacy-4.1", "idle")]
    [InlineData("pv", "xl", "idle")]
    [InlineData("pv", "libxc", "idle")]
    [InlineData("pv", "legacy-4.0", "idle")]
    [InlineData("pv", "legacy-4.1", "uniform:64")]
    [InlineData("hvm", "xl", "hotset:2MiB:64")]
    [InlineData("hvm", "legacy-4.0", "uniform:64")]
    public void Migrate_OverLoopbackTcp_DestinationDigestEqualsSourceAtPause(string guest, string kind, string workload)
    {
        using var tmp = new TempDirectory();
        Create(tmp, guest);
        using var receiver = new Receiver("--into", tmp["dst"]);
        var (code, output, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{receiver.Port}", "--stream", kind, "--workload", workload, "--json");
        Assert.True(code == 0, err);
        var (rcode, rout) = receiver.Finish();
        Assert.True(rcode == 0, receiver.Err);

        using var sent = JsonDocument.Parse(output);
        using var received = JsonDocument.Parse(rout);
        var s = sent.RootElement;
        var r = received.RootElement;
        Assert.Equal("completed", s.GetProperty("status").GetString());
        Assert.Equal("completed", r.GetProperty("status").GetString());
        var atPause = s.GetProperty("source").GetProperty("memory-sha256").GetString();
        Assert.Equal(atPause, r.GetProperty("destination").GetProperty("memory-sha256").GetString());
        Assert.Equal(atPause, Digest(tmp["dst"]));
        Assert.True(s.GetProperty("downtime").GetDouble() >= 0);
        Assert.True(s.GetProperty("transferred").GetInt64() > 0);
        Assert.Equal(s.GetProperty("transferred").GetInt64(), r.GetProperty("received").GetInt64() - XlChannelOctetsAfterStream);
        Assert.Equal("migrated-away", s.GetProperty("source").GetProperty("state").GetString());
        Assert.False(Directory.Exists(tmp["src"]), "the source was not renamed away");
        Assert.False(Directory.Exists(tmp["src--migratedaway"]), "the old domain was not destroyed");
        Assert.Equal(kind.StartsWith("legacy", StringComparison.Ordinal) ? "xl-legacy" : "xl", r.GetProperty("stream-kind").GetString());
    }

    /// <summary>What the receiver reads after the stream: message 4 (GO).</summary>
    private const long XlChannelOctetsAfterStream = 44;

    [Fact]
    public void Migrate_Legacy40HvmToCheckpointedYesReceiver_FailsInWordsAndTheSourceKeepsRunning()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var before = Digest(tmp["src"]);
        using var receiver = new Receiver("--into", tmp["dst"], "--checkpointed", "yes");
        var (code, output, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{receiver.Port}", "--stream", "legacy-4.0", "--json");
        var (rcode, rout) = receiver.Finish();

        Assert.NotEqual(0, rcode);
        using var received = JsonDocument.Parse(rout);
        var why = received.RootElement.GetProperty("error").GetString()!;
        Assert.Contains("never marked a last checkpoint", why);
        Assert.Contains("Remus failover", why);
        Assert.Contains("--checkpointed auto or no", why);

        Assert.NotEqual(0, code);
        using var sent = JsonDocument.Parse(output);
        Assert.Equal("failed", sent.RootElement.GetProperty("status").GetString());
        Assert.Equal("running", sent.RootElement.GetProperty("source").GetProperty("state").GetString());
        Assert.Contains("ready message", sent.RootElement.GetProperty("error").GetString());
        Assert.Single(err.Split('\n'), l => l.StartsWith("xmig: error:", StringComparison.Ordinal));
        AssertSourceKeptAndDestinationEmpty(tmp, before);
    }

    [Theory]
    [InlineData("SSH-2.0-OpenSSH_9.6\r\n")]
    [InlineData("domain received, ready to unpause\0")]
    [InlineData("xl migration receiver ready, send binary domain data!")]
    public void Migrate_ToAPeerNotSpeakingTheChannel_OneLineAndTheSourceIsUnchanged(string peerSays)
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var before = Digest(tmp["src"]);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var fake = Task.Run(() =>
        {
            using var peer = listener.Accept();
            peer.Send(Encoding.ASCII.GetBytes(peerSays));
            var sink = new byte[65536];
            peer.ReceiveTimeout = 30_000;
            try
            {
                while (peer.Receive(sink) > 0)
                {
                }
            }
            catch (SocketException)
            {
            }
        });

        var (code, _, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}");
        Assert.NotEqual(0, code);
        var errors = err.Split('\n').Where(l => l.StartsWith("xmig: error:", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        Assert.Contains("expected the banner", errors[0]);
        Assert.Contains("source running", errors[0]);
        Assert.True(fake.Wait(Bound));
        AssertSourceKeptAndDestinationEmpty(tmp, before);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(1 << 20)]
    [InlineData(8 << 20)]
    public void Migrate_ReceiverResetsMidStream_SourceKeepsRunningUnchanged(int afterOctets)
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm", "32MiB");
        var before = Digest(tmp["src"]);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var fake = Task.Run(() =>
        {
            using var peer = listener.Accept();
            peer.Send(Transport.XlMigrationMessagesText.Banner);
            var sink = new byte[65536];
            var total = 0;
            while (total < afterOctets)
            {
                var n = peer.Receive(sink, 0, Math.Min(sink.Length, afterOctets - total), SocketFlags.None);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }

            peer.LingerState = new LingerOption(true, 0); // close with RST
            peer.Close();
        });

        var (code, _, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}", "--workload", "uniform:32");
        Assert.True(fake.Wait(Bound));
        Assert.NotEqual(0, code);
        Assert.Single(err.Split('\n'), l => l.StartsWith("xmig: error:", StringComparison.Ordinal));
        Assert.Contains("source running", err);
        Assert.True(Directory.Exists(tmp["src"]));
        Assert.False(Directory.Exists(tmp["src--migratedaway"]));
        _ = before; // the workload ran on: the memory may differ, the directory is the same domain
        Assert.Equal(0, DomainTestSupport.Cli("domain", "digest", tmp["src"]).Code);
    }

    [Fact]
    public void Migrate_ReceiverKilledMidStream_SourceRunningAndDestinationEmpty()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm", "256MiB");
        var before = Digest(tmp["src"]);
        using var receiver = new Receiver("--into", tmp["dst"]);
        using var sender = XmigProcess.Start(false, "migrate", tmp["src"], $"127.0.0.1:{receiver.Port}");
        var err = sender.StandardError.ReadToEndAsync();
        Assert.True(DomainTestSupport.WaitUntil(() => receiver.Err.Contains("Ready to receive", StringComparison.Ordinal)));
        Thread.Sleep(300);
        receiver.Process.Kill(); // SIGKILL
        Assert.True(sender.WaitForExit(Bound));
        sender.WaitForExit();
        Assert.NotEqual(0, sender.ExitCode);
        Assert.Contains("source running", err.Result);
        AssertSourceKeptAndDestinationEmpty(tmp, before);
    }

    [Fact]
    public void Migrate_OverStandardInputAndOutput_AsUnderSsh()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "pv");
        var before = Digest(tmp["src"]);
        using var receiver = XmigProcess.Start(true, "migrate-receive", "--into", tmp["dst"]);
        using var sender = XmigProcess.Start(true, "migrate", tmp["src"], "-", "--stream", "libxl");
        var a = Task.Run(() => receiver.StandardOutput.BaseStream.CopyToAsync(sender.StandardInput.BaseStream).ContinueWith(_ => sender.StandardInput.Close()));
        var b = Task.Run(() => sender.StandardOutput.BaseStream.CopyToAsync(receiver.StandardInput.BaseStream).ContinueWith(_ => receiver.StandardInput.Close()));
        var serr = sender.StandardError.ReadToEndAsync();
        var rerr = receiver.StandardError.ReadToEndAsync();
        Assert.True(sender.WaitForExit(Bound) && receiver.WaitForExit(Bound));
        sender.WaitForExit();
        receiver.WaitForExit();
        Assert.True(sender.ExitCode == 0, serr.Result);
        Assert.True(receiver.ExitCode == 0, rerr.Result);
        Assert.Equal(before, Digest(tmp["dst"]));
        Assert.False(Directory.Exists(tmp["src"]));
        _ = (a, b);
    }

    [Fact]
    public void HostedDomain_StatusPauseUnpause_ThenMigratedByItsHost()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        using var host = XmigProcess.Start(false, "domain", "run", tmp["src"], "--workload", "uniform:16");
        var hostErr = host.StandardError.ReadToEndAsync();
        try
        {
            Assert.True(DomainTestSupport.WaitUntil(() => File.Exists(Path.Combine(tmp["src"], "control.sock"))));
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(tmp["src"], "control.sock")));
            }

            var (code, output, err) = DomainTestSupport.Cli("domain", "status", tmp["src"], "--json");
            Assert.True(code == 0, err);
            using (var status = JsonDocument.Parse(output))
            {
                Assert.Equal("running", status.RootElement.GetProperty("state").GetString());
            }

            Assert.Equal(0, DomainTestSupport.Cli("domain", "pause", tmp["src"]).Code);
            Assert.Contains("paused", DomainTestSupport.Cli("domain", "status", tmp["src"]).Out);
            Assert.Equal(0, DomainTestSupport.Cli("domain", "unpause", tmp["src"]).Code);
            Assert.Contains("running", DomainTestSupport.Cli("domain", "status", tmp["src"]).Out);

            using var receiver = new Receiver("--into", tmp["dst"]);
            (code, output, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{receiver.Port}", "--json");
            Assert.True(code == 0, err);
            Assert.True(receiver.Finish().Code == 0, receiver.Err);
            using var sent = JsonDocument.Parse(output);
            Assert.Equal("completed", sent.RootElement.GetProperty("status").GetString());
            Assert.Equal(sent.RootElement.GetProperty("source").GetProperty("memory-sha256").GetString(), Digest(tmp["dst"]));
            Assert.True(host.WaitForExit(Bound), "the host did not end after migrating away");
            Assert.False(Directory.Exists(tmp["src"]));
        }
        finally
        {
            if (!host.HasExited)
            {
                host.Kill(true);
            }
        }

        _ = hostErr;
    }

    [Fact]
    public void HostedDomain_Stop_PersistsAndEnds()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "pv");
        using var host = XmigProcess.Start(false, "domain", "run", tmp["src"], "--workload", "uniform:16");
        try
        {
            Assert.True(DomainTestSupport.WaitUntil(() => File.Exists(Path.Combine(tmp["src"], "control.sock"))));
            Assert.Equal(0, DomainTestSupport.Cli("domain", "stop", tmp["src"]).Code);
            Assert.True(host.WaitForExit(Bound));
            Assert.Contains("not running", DomainTestSupport.Cli("domain", "status", tmp["src"]).Out);
            Assert.Equal(0, DomainTestSupport.Cli("domain", "digest", tmp["src"]).Code);
        }
        finally
        {
            if (!host.HasExited)
            {
                host.Kill(true);
            }
        }
    }
}
