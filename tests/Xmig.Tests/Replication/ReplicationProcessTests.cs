using System.Text.Json;
using Xmig.Domains;
using Xmig.Replication;
using Xmig.Tests.Support;

#pragma warning disable xUnit1031 // child processes are waited for with bounded blocking waits

namespace Xmig.Tests.Replication;

/// <summary>
/// Issue 11 over real processes and real TCP on 127.0.0.1: <c>xmig replicate</c> → <c>xmig migrate-receive --replica</c>,
/// v2 and legacy (plain and compressed), PV and HVM, under a hot-set workload. A controlled end (switchover, detach)
/// leaves exactly one copy; the digest the secondary ends with is the one the primary logged for that checkpoint.
/// </summary>
[Trait("Category", XmigProcess.Category)]
public sealed class ReplicationProcessTests
{
    public static TheoryData<string, GuestType, bool> Streams => new()
    {
        { "xl", GuestType.Hvm, false },
        { "libxl", GuestType.Pv, false },
        { "legacy-4.1", GuestType.Hvm, false },
        { "legacy-4.1", GuestType.Pv, true },
        { "legacy-4.1", GuestType.Hvm, true },
    };

    [Theory]
    [MemberData(nameof(Streams))]
    public void StopAfter_Switchover_SecondaryRunsTheLastCheckpointAndThePrimaryIsGone(string stream, GuestType type, bool compress)
    {
        using var pair = new ReplicationPair(type);
        var secondary = pair.StartSecondary();
        string[] extra = compress ? ["--compress"] : [];
        var primary = pair.StartPrimary(extra: ["--stream", stream, "--stop-after", "6", "--on-stop", "switchover", "--json", .. extra]);
        Assert.True(primary.Finish(ReplicationPair.Bound) == 0, "replicate: " + primary.Err + "\nsecondary: " + pair.Secondary?.Err);
        using (var report = JsonDocument.Parse(primary.Stdout.Result))
        {
            Assert.Equal("switchover", report.RootElement.GetProperty("status").GetString());
            Assert.Equal(6, report.RootElement.GetProperty("checkpoints").GetInt32());
            Assert.Equal(6, report.RootElement.GetProperty("acknowledged").GetInt32());
            Assert.Equal("migrated-away", report.RootElement.GetProperty("source").GetString());
        }

        var sent = pair.SentDigests();
        var line = secondary.WaitForLine(ReplicationPair.TakeOverLine(), ReplicationPair.Bound);
        Assert.True(line is not null, "no takeover line: " + secondary.Err);
        Assert.Equal("switchover", line.Groups[1].Value);
        Assert.Equal("6", line.Groups[2].Value);
        Assert.Equal("2", line.Groups[3].Value);
        Assert.Equal(sent[6], line.Groups[4].Value);
        Assert.NotNull(secondary.WaitForLine(ReplicationPair.HostRunning(), ReplicationPair.Bound));

        // Exactly one copy: the primary's directory is gone, the secondary's runs until told to stop.
        Assert.False(Directory.Exists(pair.PrimaryDir));
        Assert.False(Directory.Exists(pair.PrimaryDir + "--migratedaway"));
        Assert.Equal(0, ReplicationPair.Terminate(secondary));
        Assert.Equal(sent[6], ReplicationPair.Digest(pair.SecondaryDir));
        Assert.Equal(2u, ReplicationIdentity.Load(pair.SecondaryDir)!.Epoch);
        Assert.True(ReplicationPair.NoStaging(pair.SecondaryDir));
    }

    [Fact]
    public void StopAfter_Detach_PrimaryKeepsItsDomainAndTheSecondaryKeepsNothing()
    {
        using var pair = new ReplicationPair(GuestType.Hvm);
        var secondary = pair.StartSecondary();
        var primary = pair.StartPrimary(extra: ["--stop-after", "4", "--on-stop", "detach", "--json"]);
        Assert.True(primary.Finish(ReplicationPair.Bound) == 0, "replicate: " + primary.Err + "\nsecondary: " + pair.Secondary?.Err);
        using (var report = JsonDocument.Parse(primary.Stdout.Result))
        {
            Assert.Equal("detached", report.RootElement.GetProperty("status").GetString());
            Assert.Equal("running", report.RootElement.GetProperty("source").GetString());
        }

        Assert.True(secondary.Finish(ReplicationPair.Bound) == 0, "secondary: " + secondary.Err);
        Assert.Contains("the primary detached; copy discarded", secondary.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(pair.SecondaryDir));
        Assert.True(ReplicationPair.NoStaging(pair.SecondaryDir));

        // The primary's domain is where it was, whole (its guest ran on after the detach, so its image moved on).
        Assert.False(Directory.Exists(pair.PrimaryDir + "--migratedaway"));
        using var domain = SimulatedDomain.Open(pair.PrimaryDir);
        Assert.True(domain.PopulatedPages > 0);
        Assert.Single(ReplicationPair.Events(pair.PrimaryLog, "detached"));
    }

    [Fact]
    public void Sigterm_OnTheReplicatingPrimary_EndsWithASwitchoverAtTheNextCheckpoint()
    {
        using var pair = new ReplicationPair(GuestType.Pv);
        var secondary = pair.StartSecondary();
        var primary = pair.StartPrimary(extra: ["--on-stop", "switchover"]);
        Assert.True(pair.WaitForEvents(pair.PrimaryLog, "acked", 3, ReplicationPair.Bound), "no acknowledgements: " + primary.Err);
        ReplicationPair.Signal(primary.Process, ReplicationPair.Sigterm);
        Assert.True(primary.Finish(ReplicationPair.Bound) == 0, "replicate: " + primary.Err + "\nsecondary: " + pair.Secondary?.Err);
        var last = ReplicationPair.Events(pair.PrimaryLog, "sent").Last();
        Assert.True(last.GetProperty("last").GetBoolean());
        var line = secondary.WaitForLine(ReplicationPair.TakeOverLine(), ReplicationPair.Bound);
        Assert.True(line is not null, secondary.Err);
        Assert.Equal("switchover", line.Groups[1].Value);
        Assert.Equal(last.GetProperty("digest").GetString(), line.Groups[4].Value);
        Assert.Equal(0, ReplicationPair.Terminate(secondary));
    }

    [Fact]
    public void KillTheSecondary_PrimaryResumesAtOnceAndItsDomainIsIntact()
    {
        using var pair = new ReplicationPair(GuestType.Hvm);
        var secondary = pair.StartSecondary();
        var primary = pair.StartPrimary(extra: ["--heartbeat", "500", "--json"]);
        Assert.True(pair.WaitForEvents(pair.PrimaryLog, "acked", 3, ReplicationPair.Bound), "no acknowledgements: " + primary.Err);
        var killed = DateTime.UtcNow;
        secondary.Process.Kill();
        Assert.True(primary.Finish(ReplicationPair.Bound) == 2, "replicate: " + primary.Err + "\nsecondary: " + pair.Secondary?.Err);
        Assert.Contains("backup failed, resuming at primary", primary.Err, StringComparison.Ordinal);
        using (var report = JsonDocument.Parse(primary.Stdout.Result))
        {
            Assert.Equal("backup-failed", report.RootElement.GetProperty("status").GetString());
            Assert.Equal("running", report.RootElement.GetProperty("source").GetString());
        }

        // Resumed well within the heartbeat: a killed peer's connection ends at once (the figure is in the bench).
        var failed = ReplicationPair.Events(pair.PrimaryLog, "backup-failed").Single().GetProperty("time").GetDateTime();
        Assert.True(failed - killed < TimeSpan.FromMilliseconds(500 + 1000), $"backup failed {(failed - killed).TotalMilliseconds} ms after the kill");

        // Its domain is in place, never renamed, and opens whole.
        Assert.False(Directory.Exists(pair.PrimaryDir + "--migratedaway"));
        using var domain = SimulatedDomain.Open(pair.PrimaryDir);
        Assert.True(domain.PopulatedPages > 0);
    }

    [Fact]
    public void Reconnect_AfterTheSecondaryIsLost_StartsAgainWithAFullFirstPassToTheNewOne()
    {
        using var pair = new ReplicationPair(GuestType.Hvm);
        var first = pair.StartSecondary();
        var primary = pair.StartPrimary(extra: ["--reconnect", "--on-stop", "switchover"]);
        Assert.True(pair.WaitForEvents(pair.PrimaryLog, "acked", 2, ReplicationPair.Bound), "no acknowledgements: " + primary.Err);
        first.Process.Kill();
        Assert.True(first.Finish(ReplicationPair.Bound) is not null);
        Assert.True(pair.WaitForEvents(pair.PrimaryLog, "reconnect", 1, ReplicationPair.Bound), "no reconnect: " + primary.Err);
        Assert.False(Directory.Exists(pair.SecondaryDir)); // killed before any takeover: only its staging directory is left
        var second = pair.StartSecondary();
        Assert.True(pair.WaitForEvents(pair.PrimaryLog, "acked", ReplicationPair.Events(pair.PrimaryLog, "acked").Count + 2, ReplicationPair.Bound), "no acknowledgements from the new secondary: " + primary.Err);
        ReplicationPair.Signal(primary.Process, ReplicationPair.Sigterm);
        Assert.True(primary.Finish(ReplicationPair.Bound) == 0, "replicate: " + primary.Err + "\nsecondary: " + pair.Secondary?.Err);
        Assert.Contains("backup failed, resuming at primary", primary.Err, StringComparison.Ordinal);

        // The second session began again at checkpoint 1 with a full pass, and its last checkpoint is the new secondary's.
        var sent = ReplicationPair.Events(pair.PrimaryLog, "sent");
        Assert.True(sent.Count(e => e.GetProperty("checkpoint").GetInt32() == 1) == 2, "checkpoint 1 was not sent twice");
        var line = second.WaitForLine(ReplicationPair.TakeOverLine(), ReplicationPair.Bound);
        Assert.True(line is not null, second.Err);
        Assert.Equal(sent.Last().GetProperty("digest").GetString(), line.Groups[4].Value);
        Assert.Equal(0, ReplicationPair.Terminate(second));
    }

    [Fact]
    public void Colo_AfterEachCommit_BothGuestsAreEqual()
    {
        using var pair = new ReplicationPair(GuestType.Hvm);
        var secondary = pair.StartSecondary(300, "--colo", "--workload", "hotset:1MiB:16");
        var primary = pair.StartPrimary(intervalMs: 30, extra: ["--colo", "--stop-after", "8", "--on-stop", "switchover"]);
        Assert.True(primary.Finish(ReplicationPair.Bound) == 0, "replicate: " + primary.Err + "\nsecondary: " + pair.Secondary?.Err);
        var line = secondary.WaitForLine(ReplicationPair.TakeOverLine(), ReplicationPair.Bound);
        Assert.True(line is not null, secondary.Err);
        Assert.Equal(0, ReplicationPair.Terminate(secondary));

        var sent = pair.SentDigests();
        var committed = ReplicationPair.Events(pair.SecondaryLog, "committed")
            .ToDictionary(e => e.GetProperty("checkpoint").GetInt32(), e => e.GetProperty("digest").GetString());
        Assert.Equal(8, committed.Count);
        foreach (var (n, digest) in committed)
        {
            Assert.True(sent[n] == digest, $"checkpoint {n}: primary {sent[n]}, secondary {digest}");
        }

        // The secondary's guest ran between checkpoints: it dirtied pages, which the primary sent again.
        Assert.Contains(ReplicationPair.Events(pair.SecondaryLog, "suspended"), e => e.GetProperty("dirty_pages").GetInt32() > 0);
        Assert.Equal(sent[8], line.Groups[4].Value);
    }
}
