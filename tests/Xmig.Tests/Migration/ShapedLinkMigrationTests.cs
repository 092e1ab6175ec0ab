using System.Text;
using System.Text.Json;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

#pragma warning disable xUnit1031 // child processes are waited for with bounded blocking waits

namespace Xmig.Tests.Migration;

/// <summary>
/// Live migrations between two xmig processes in two network namespaces joined by a shaped link (100 Mbit/s, 5 ms
/// each way where the kernel has netem; see <see cref="ShapedLink"/>).
/// </summary>
[Trait("Category", XmigProcess.Category)]
public class ShapedLinkMigrationTests
{
    private const int Port = 7100;

    /// <summary>The rate of <see cref="ShapedLink.Create"/>'s default link (100mbit).</summary>
    private const double LinkBitsPerSecond = 100e6;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    /// <summary>Result of one migration over a link: both ends' <c>--json</c> documents.</summary>
    private sealed record Migration(JsonElement Sent, JsonElement Received, string SenderErr, string ReceiverErr);

    private static void Create(TempDirectory tmp, string memory)
    {
        var (code, _, err) = DomainTestSupport.Cli("domain", "create", tmp["src"], "--type", "hvm", "--memory", memory, "--vcpus", "1");
        Assert.True(code == 0, err);
    }

    /// <summary>Receiver in the destination namespace, sender in the source namespace, both with <c>--json</c>.</summary>
    private static Migration Migrate(ShapedLink link, TempDirectory tmp, params string[] senderArgs)
    {
        using var receiver = ShapedLink.Start(link.Destination, false, "migrate-receive", "--listen", $"{link.DestinationAddress}:{Port}", "--into", tmp["dst"], "--json");
        var receiverErr = new StringBuilder();
        var listening = new ManualResetEventSlim();
        receiver.ErrorDataReceived += (_, e) =>
        {
            lock (receiverErr)
            {
                receiverErr.AppendLine(e.Data);
            }

            if (e.Data is null || e.Data.Contains("listening on", StringComparison.Ordinal))
            {
                listening.Set();
            }
        };
        receiver.BeginErrorReadLine();
        var receiverOut = receiver.StandardOutput.ReadToEndAsync();
        try
        {
            Assert.True(listening.Wait(Bound), "the receiver did not say it listens");
            Assert.False(receiver.HasExited, "the receiver ended before listening: " + receiverErr);

            using var sender = ShapedLink.Start(link.Source, false, ["migrate", tmp["src"], $"{link.DestinationAddress}:{Port}", "--json", .. senderArgs]);
            var senderOut = sender.StandardOutput.ReadToEndAsync();
            var senderErr = sender.StandardError.ReadToEndAsync();
            if (!sender.WaitForExit(Bound))
            {
                sender.Kill(entireProcessTree: true);
                Assert.Fail("the sender did not finish over the shaped link");
            }

            Assert.True(receiver.WaitForExit(Bound), "the receiver did not finish over the shaped link");
            sender.WaitForExit();
            receiver.WaitForExit();
            Assert.True(sender.ExitCode == 0, $"sender exited {sender.ExitCode}: {senderErr.Result}");
            Assert.True(receiver.ExitCode == 0, $"receiver exited {receiver.ExitCode}: {receiverErr}");
            using var sent = JsonDocument.Parse(senderOut.Result);
            using var received = JsonDocument.Parse(receiverOut.Result);
            return new Migration(sent.RootElement.Clone(), received.RootElement.Clone(), senderErr.Result, receiverErr.ToString());
        }
        finally
        {
            if (!receiver.HasExited)
            {
                receiver.Kill(entireProcessTree: true);
            }
        }
    }

    private static void AssertArrivedWithTheSourceDigest(Migration m, TempDirectory tmp)
    {
        Assert.Equal("completed", m.Sent.GetProperty("status").GetString());
        Assert.Equal("completed", m.Received.GetProperty("status").GetString());
        var atPause = m.Sent.GetProperty("source").GetProperty("memory-sha256").GetString();
        Assert.False(string.IsNullOrEmpty(atPause));
        Assert.Equal(atPause, m.Received.GetProperty("destination").GetProperty("memory-sha256").GetString());
        var (code, digest, err) = DomainTestSupport.Cli("domain", "digest", tmp["dst"]);
        Assert.True(code == 0, err);
        Assert.Equal(atPause, digest.Split(' ')[0]);
    }

    private static readonly string[] XenPolicy = ["--policy", "xen"];

    private static double Downtime(Migration m) => m.Sent.GetProperty("downtime").GetDouble();

    [ShapedLinkFact]
    public void IdleHvm_OverAShapedLink_ArrivesWithTheSourceDigest()
    {
        using var link = ShapedLink.Create();
        using var tmp = new TempDirectory();
        Create(tmp, "32MiB");

        var m = Migrate(link, tmp, "--workload", "idle");

        AssertArrivedWithTheSourceDigest(m, tmp);
        // Every page crossed the link: the stream holds at least the guest's memory.
        Assert.True(m.Sent.GetProperty("transferred").GetInt64() >= 32L << 20, m.Sent.ToString());
        Assert.Equal(m.Sent.GetProperty("transferred").GetInt64(), m.Received.GetProperty("received").GetInt64() - 44);
    }

    [ShapedLinkFact]
    public void XenPolicy_WorkloadDirtyingFasterThanTheLink_IsForcedToStopAndCopyWithALargeDowntime()
    {
        using var link = ShapedLink.Create();

        // The reference: the same guest, idle, over the same link.
        double idleDowntime;
        using (var idle = new TempDirectory())
        {
            Create(idle, "32MiB");
            var m = Migrate(link, idle, "--workload", "idle");
            AssertArrivedWithTheSourceDigest(m, idle);
            idleDowntime = Downtime(m);
        }

        // An 8 MiB hot set rewritten at 64 MiB/s: five times what a 100 Mbit/s link (12.5 MB/s) carries, so every
        // pass finds the whole hot set dirty again, and Xen's policy gives up after its 5 passes.
        using var tmp = new TempDirectory();
        Create(tmp, "32MiB");
        var hot = Migrate(link, tmp, ["--workload", "hotset:8MiB:64", .. XenPolicy]);

        AssertArrivedWithTheSourceDigest(hot, tmp);
        var s = hot.Sent;
        // Xen's 5 live passes (SPP_MAX_ITERATIONS), then the paused one: dirty-sync-count counts all of them.
        Assert.Equal(Xmig.Save.XenPrecopyPolicy.SppMaxIterations + 1, s.GetProperty("dirty-sync-count").GetInt32());
        if (s.TryGetProperty("rounds", out var rounds) && rounds.GetArrayLength() > 0)
        {
            Assert.Equal(Xmig.Save.XenPrecopyPolicy.SppMaxIterations, rounds.EnumerateArray().Count(r => !r.GetProperty("paused").GetBoolean()));
            Assert.True(rounds[rounds.GetArrayLength() - 1].GetProperty("paused").GetBoolean());
        }

        var leftAtPause = s.GetProperty("final-dirty-pages").GetInt64();
        Assert.True(leftAtPause >= 1000, $"only {leftAtPause} pages were left for stop-and-copy: the migration converged ({s})");
        if (s.TryGetProperty("stop-reason", out var reason))
        {
            Assert.NotEqual("converged", reason.GetString());
        }

        // Those pages crossed the link with the guest paused: the downtime exceeds the idle guest's (whose downtime
        // is the receiver's commit), and is at least what the link takes to carry them (80 % of it: a lower bound
        // the link sets, which a busy machine can only raise).
        var downtime = Downtime(hot);
        Console.WriteLine($"shaped link ({link.Shaping}): idle downtime {idleDowntime} ms; hotset:8MiB:64 under xen: {s}");
        var carry = leftAtPause * 4096 * 8 / LinkBitsPerSecond * 1000;
        Assert.True(downtime > idleDowntime, $"downtime {downtime} ms under load, {idleDowntime} ms idle ({link.Shaping})");
        Assert.True(downtime >= 0.8 * carry, $"downtime {downtime} ms, but {leftAtPause} pages take {carry:0} ms over {link.Shaping}");
        Assert.True(downtime > 500, $"downtime {downtime} ms for {leftAtPause} pages over {link.Shaping}");
    }

    [ShapedLinkFact]
    public void DowntimePolicy_WithAutoConverge_ConvergesWhereXensPolicyCouldNot()
    {
        using var link = ShapedLink.Create();
        using var tmp = new TempDirectory();
        Create(tmp, "32MiB");

        // The workload of the test above, five times what the link carries: only a throttled guest lets the dirty set
        // shrink below what the link sends within the 300 ms limit.
        var m = Migrate(link, tmp, "--workload", "hotset:8MiB:64", "--policy", "downtime", "--auto-converge");

        AssertArrivedWithTheSourceDigest(m, tmp);
        var s = m.Sent;
        Console.WriteLine($"shaped link ({link.Shaping}): hotset:8MiB:64 under downtime + auto-converge: {s}");
        Assert.Equal("converged", s.GetProperty("stop-reason").GetString());
        Assert.True(s.GetProperty("cpu-throttle-percentage").GetInt32() >= 20, "the guest was never throttled");
        var rounds = s.GetProperty("rounds").EnumerateArray().ToList();
        Assert.Contains(rounds, r => r.GetProperty("cpu-throttle-percentage").GetInt32() > 0);

        // Converged: what was left at pause fitted the limit at the bandwidth the last pass measured.
        var last = rounds.Last(r => !r.GetProperty("paused").GetBoolean());
        Assert.True(last.GetProperty("expected-downtime").GetDouble() <= 300, last.ToString());
    }

    [ShapedLinkFact]
    public void MaxBandwidth_IsHeldWithinTenPercent_BelowTheLinksRate()
    {
        using var link = ShapedLink.Create();
        using var tmp = new TempDirectory();
        Create(tmp, "16MiB");

        var m = Migrate(link, tmp, "--workload", "idle", "--max-bandwidth", "40mbit");

        AssertArrivedWithTheSourceDigest(m, tmp);
        var first = m.Sent.GetProperty("rounds")[0];
        var mbps = first.GetProperty("transferred").GetInt64() * 8 / (first.GetProperty("duration").GetDouble() / 1000) / 1e6;
        Console.WriteLine($"shaped link ({link.Shaping}): --max-bandwidth 40mbit held at {mbps:0.0} Mbit/s over the first pass");
        Assert.InRange(mbps, 36, 44);
    }
}
