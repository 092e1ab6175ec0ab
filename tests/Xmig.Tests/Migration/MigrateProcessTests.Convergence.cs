using System.Diagnostics;
using System.Text.Json;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Migration;

/// <summary>Convergence policies, their bounds and the per-round report, on real migrations over loopback.</summary>
public partial class MigrateProcessTests
{
    private static (JsonElement Sent, JsonElement Received, string Err) MigrateJson(TempDirectory tmp, bool expectSuccess, params string[] args)
    {
        using var receiver = new Receiver("--into", tmp["dst"]);
        var (code, output, err) = DomainTestSupport.CliProcess(["migrate", tmp["src"], $"127.0.0.1:{receiver.Port}", "--json", .. args]);
        var (rcode, rout) = receiver.Finish();
        Assert.True(expectSuccess == (code == 0), $"migrate exited {code}: {err}");
        Assert.True(expectSuccess == (rcode == 0), $"receiver exited {rcode}: {receiver.Err}");
        return (JsonDocument.Parse(output).RootElement.Clone(), JsonDocument.Parse(rout).RootElement.Clone(), err);
    }

    [Fact]
    public void Migrate_Json_CarriesEveryRoundAndQemusFigures()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var (s, r, err) = MigrateJson(tmp, true, "--workload", "hotset:2MiB:64");
        Assert.Equal("downtime", s.GetProperty("policy").GetString());
        Assert.Equal(300, s.GetProperty("downtime-limit").GetDouble());
        var rounds = s.GetProperty("rounds").EnumerateArray().ToList();
        Assert.NotEmpty(rounds);
        Assert.True(rounds[^1].GetProperty("paused").GetBoolean(), "the last round is the paused one");
        Assert.All(rounds[..^1], x => Assert.False(x.GetProperty("paused").GetBoolean()));
        Assert.Equal(s.GetProperty("dirty-sync-count").GetInt32(), rounds.Count);
        Assert.Equal(s.GetProperty("pages-sent").GetInt64(), rounds.Sum(x => x.GetProperty("pages").GetInt64()));
        Assert.Equal(s.GetProperty("final-dirty-pages").GetInt64() * 4104, s.GetProperty("remaining").GetInt64());
        Assert.False(string.IsNullOrEmpty(s.GetProperty("stop-reason").GetString()));
        Assert.True(s.TryGetProperty("expected-downtime", out _));
        Assert.True(s.TryGetProperty("dirty-pages-rate", out _));
        Assert.Contains("migration: round 1: ", err, StringComparison.Ordinal);
        Assert.Contains("(paused)", err, StringComparison.Ordinal);
        Assert.Equal(s.GetProperty("source").GetProperty("memory-sha256").GetString(), r.GetProperty("destination").GetProperty("memory-sha256").GetString());
    }

    [Fact]
    public void Migrate_MaxIterations_StopsPrecopyThere_AndSaysWhy()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var (s, r, _) = MigrateJson(tmp, true, "--policy", "xen", "--max-iterations", "1", "--workload", "uniform:64");
        Assert.Equal("max-iterations", s.GetProperty("stop-reason").GetString());
        Assert.Equal(2, s.GetProperty("dirty-sync-count").GetInt32());
        Assert.Equal(s.GetProperty("source").GetProperty("memory-sha256").GetString(), r.GetProperty("destination").GetProperty("memory-sha256").GetString());
    }

    [Fact]
    public void Migrate_TimeoutAbort_OnASlowLink_FailsInOneLine_AndTheSourceKeepsRunning()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var before = Digest(tmp["src"]);

        // 16 MiB at 2 MiB/s takes 8 s; the timeout is 1 s.
        var (s, _, err) = MigrateJson(tmp, false, "--max-bandwidth", "2MiB/s", "--timeout", "1");
        Assert.Equal("failed", s.GetProperty("status").GetString());
        Assert.Contains("--timeout", s.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("running", s.GetProperty("source").GetProperty("state").GetString());
        Assert.Single(err.Split('\n'), l => l.StartsWith("xmig: error:", StringComparison.Ordinal));
        AssertSourceKeptAndDestinationEmpty(tmp, before);
    }

    [Fact]
    public void Migrate_TimeoutSwitchover_CutsPrecopy_AndTheDomainArrivesWhole()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var (s, r, _) = MigrateJson(tmp, true, "--max-bandwidth", "16MiB/s", "--timeout", "0.3", "--on-timeout", "switchover", "--workload", "uniform:32");
        Assert.Equal("timeout", s.GetProperty("stop-reason").GetString());
        Assert.Equal(s.GetProperty("source").GetProperty("memory-sha256").GetString(), r.GetProperty("destination").GetProperty("memory-sha256").GetString());
        Assert.Equal(s.GetProperty("source").GetProperty("memory-sha256").GetString(), Digest(tmp["dst"]));
    }

    [Fact]
    public void Migrate_MaxBandwidth_NoRoundRunsAheadOfIt()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm", "32MiB");
        var (s, _, _) = MigrateJson(tmp, true, "--max-bandwidth", "64mbit");
        Assert.Equal(8_000_000, s.GetProperty("max-bandwidth").GetInt64());
        var first = s.GetProperty("rounds")[0];
        Assert.True(first.GetProperty("duration").GetDouble() > 1000, "32 MiB cannot pass 64 Mbit/s in under a second");
        Assert.InRange(first.GetProperty("mbps").GetDouble(), 1, 64 * 1.1);
    }

    [Theory]
    [InlineData("--downtime-limit", "--policy", "--policy", "xen", "--downtime-limit", "100")]
    [InlineData("--on-timeout", "--timeout", "--on-timeout", "switchover")]
    [InlineData("--cpu-throttle-initial", "--auto-converge", "--cpu-throttle-initial", "30")]
    [InlineData("--max-bandwidth", "fast", "--max-bandwidth", "fast")]
    [InlineData("--timeout", "'-1'", "--timeout", "-1")]
    public void Migrate_ContradictoryOrMalformedConvergenceOptions_AreRefusedInOneLine(string names, string also, params string[] args)
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        var (code, _, err) = DomainTestSupport.Cli(["migrate", tmp["src"], "127.0.0.1:9", .. args]);
        Assert.Equal(2, code);
        Assert.Contains(names, err, StringComparison.Ordinal);
        Assert.Contains(also, err, StringComparison.Ordinal);
        Assert.True(Directory.Exists(tmp["src"]));
    }

    [PseudoTerminalFact]
    public void Migrate_OnATerminal_DrawsALiveTableOfTheRounds_AndQuietDrawsNothing()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "hvm");
        string OnTerminal(params string[] extra)
        {
            if (Directory.Exists(tmp["dst"]))
            {
                Directory.Delete(tmp["dst"], true);
            }

            if (Directory.Exists(tmp["src--migratedaway"]))
            {
                Directory.Move(tmp["src--migratedaway"], tmp["src"]);
            }

            using var receiver = new Receiver("--into", tmp["dst"]);
            var start = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in (string[])["-qfec", "stty cols 160 rows 50; " + XmigProcess.ShellCommand(["migrate", tmp["src"], $"127.0.0.1:{receiver.Port}", "--keep-source", "--workload", "hotset:2MiB:64", .. extra]), "/dev/null"])
            {
                start.ArgumentList.Add(a);
            }

            using var script = Process.Start(start)!;
            var output = script.StandardOutput.ReadToEndAsync();
            Assert.True(script.WaitForExit(Bound), "migrate under a pseudo-terminal did not finish");
            Assert.True(script.ExitCode == 0, output.Result + script.StandardError.ReadToEnd());
            Assert.Equal(0, receiver.Finish().Code);
            return output.Result;
        }

        var drawn = OnTerminal();
        Assert.Contains("\u001b[", drawn, StringComparison.Ordinal); // terminal control sequences: drawn, not printed
        Assert.Contains("(paused)", drawn, StringComparison.Ordinal);
        Assert.Contains("expected ms", drawn, StringComparison.Ordinal);
        Assert.DoesNotContain("migration: round 1: ", drawn, StringComparison.Ordinal);
        Assert.Contains("migrated (xl", drawn, StringComparison.Ordinal);

        var quiet = OnTerminal("--quiet");
        Assert.DoesNotContain("expected ms", quiet, StringComparison.Ordinal);
        Assert.DoesNotContain("migration: round", quiet, StringComparison.Ordinal);
        Assert.Contains("migrated (xl", quiet, StringComparison.Ordinal);
    }
}
