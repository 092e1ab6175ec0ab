using System.Xml;
using System.Xml.Linq;
using Xmig.Cli.Reporting;
using Xmig.Migration;
using Xmig.Tests.Domains;

namespace Xmig.Tests.Cli;

/// <summary>The page of <c>xmig migrate --report</c>: well-formed, self-contained, with the charts and the figures.</summary>
public class MigrationReportPageTests
{
    private const string SourceDigest = "5f0c7e2a9d41b3c8e6f7a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1";

    /// <summary>A migration of six rounds (the last paused) under the downtime policy, as the engine will report it.</summary>
    internal static MigrationSendReport Fabricated()
    {
        var rounds = new List<MigrationRound>();
        long[] pages = [262144, 40960, 16384, 8192, 4096, 1500];
        double[] mbps = [9400, 9100, 8800, 8900, 9050, 9300];
        for (var i = 0; i < pages.Length; i++)
        {
            var octets = pages[i] * 4104;
            var duration = octets * 8 / (mbps[i] * 1e3);
            var dirty = i + 1 < pages.Length ? pages[i + 1] : 0;
            rounds.Add(new MigrationRound
            {
                Iteration = i + 1,
                Paused = i == pages.Length - 1,
                Pages = pages[i],
                Transferred = octets,
                Duration = Math.Round(duration, 3),
                Mbps = mbps[i],
                DirtyPages = dirty,
                DirtyPagesRate = duration > 0 ? Math.Round(dirty / (duration / 1000), 1) : 0,
                ExpectedDowntime = Math.Round(dirty * 4104 * 8 / (mbps[i] * 1e3), 3),
                CpuThrottlePercentage = i * 10,
            });
        }

        return new MigrationSendReport
        {
            Status = "completed",
            Stream = "xl",
            Workload = "hotset:64MiB:256",
            Policy = "downtime",
            DowntimeLimit = 300,
            MaxBandwidth = 125_000_000,
            TotalTime = 1234.567,
            SetupTime = 12.5,
            Downtime = 187.25,
            ExpectedDowntime = 5.239,
            Transferred = rounds.Sum(r => r.Transferred),
            Remaining = 1500 * 4096,
            Mbps = 9123.4,
            DirtySyncCount = 6,
            PagesSent = pages.Sum(),
            FinalDirtyPages = 1500,
            DirtyPagesRate = 42424.2,
            CpuThrottlePercentage = 50,
            StopReason = "converged",
            Rounds = rounds,
            DestinationStatus = 0,
            Source = new MigrationEnd { State = "migrated-away", Directory = "/var/lib/xmig/guest", MemorySha256 = SourceDigest, Pages = 262144 },
        };
    }

    internal static XDocument Parse(string html)
    {
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null };
        using var reader = XmlReader.Create(new StringReader(html), settings);
        return XDocument.Load(reader);
    }

    private static readonly XNamespace SvgNs = "http://www.w3.org/2000/svg";

    [Fact]
    public void Render_FabricatedRounds_IsWellFormedWithTwoInlineSvgCharts()
    {
        var doc = Parse(MigrationReportPage.Render(Fabricated()));

        Assert.Equal("html", doc.Root!.Name.LocalName);
        var charts = doc.Descendants().Where(e => e.Name.LocalName == "svg").ToList();
        Assert.Equal(2, charts.Count);
        foreach (var svg in charts)
        {
            // Drawn, not empty: paths for the bars and lines, and text for the titles and ticks.
            Assert.True(svg.Descendants().Count(e => e.Name.LocalName == "path") > 10, "an SVG chart has almost nothing drawn");
            Assert.Contains(svg.Descendants(), e => e.Name.LocalName == "text");
        }

        var chartText = string.Concat(charts.SelectMany(c => c.Descendants().Where(e => e.Name.LocalName == "text")).Select(t => t.Value));
        Assert.Contains("round", chartText);
        Assert.Contains("Mbit/s", chartText);
    }

    [Fact]
    public void Render_FabricatedRounds_ShowsTheFiguresAndATableRowPerRound()
    {
        var report = Fabricated();
        var doc = Parse(MigrationReportPage.Render(report));

        var figures = doc.Descendants("table").Single(t => (string?)t.Attribute("class") == "figures")
            .Descendants("tr").ToDictionary(r => r.Element("th")!.Value, r => r.Element("td")!.Value);
        Assert.Equal("completed", figures["status"]);
        Assert.Equal("downtime", figures["policy"]);
        Assert.Equal("converged", figures["stop reason"]);
        Assert.Equal("1234.567 ms", figures["total time"]);
        Assert.Equal("12.5 ms", figures["setup time"]);
        Assert.Equal("187.25 ms", figures["downtime"]);
        Assert.Equal("300 ms", figures["downtime limit"]);
        Assert.StartsWith($"{report.Transferred} octets", figures["transferred"]);
        Assert.Equal("9123.4 Mbit/s", figures["mbps"]);
        Assert.Equal("50 %", figures["cpu throttle"]);
        Assert.Equal("6", figures["dirty-sync-count (passes)"]);
        Assert.Equal(SourceDigest, figures["source memory sha256"]);

        var rows = doc.Descendants("table").Single(t => (string?)t.Attribute("class") == "rounds").Element("tbody")!.Elements("tr").ToList();
        Assert.Equal(report.Rounds.Count, rows.Count);
        Assert.Equal("paused", (string?)rows[^1].Attribute("class"));
        Assert.All(rows[..^1], r => Assert.Null(r.Attribute("class")));
        Assert.Equal("262144", rows[0].Elements("td").ElementAt(2).Value);
        Assert.Equal("40", rows[4].Elements("td").ElementAt(9).Value);
    }

    [Fact]
    public void Render_LoadsNothingFromElsewhere()
    {
        var doc = Parse(MigrationReportPage.Render(Fabricated()));

        Assert.DoesNotContain(doc.Descendants(), e => e.Name.LocalName is "script" or "link" or "img" or "iframe" or "object" or "embed" or "image" or "use");
        foreach (var attribute in doc.Descendants().Attributes().Where(a => !a.IsNamespaceDeclaration))
        {
            Assert.False(attribute.Name.LocalName is "src" or "href", $"<{attribute.Parent!.Name.LocalName} {attribute.Name}=\"{attribute.Value}\">");
            Assert.DoesNotContain("://", attribute.Value);
            Assert.True(!attribute.Value.Contains("url(", StringComparison.Ordinal) || attribute.Value.Contains("url(#", StringComparison.Ordinal), attribute.Value);
        }

        var style = string.Concat(doc.Descendants().Where(e => e.Name.LocalName == "style").Select(s => s.Value));
        Assert.DoesNotContain("@import", style);
        Assert.DoesNotContain("url(", style);
        Assert.DoesNotContain("@font-face", style);
    }

    [Fact]
    public void Render_FailedMigrationWithoutRounds_SaysSoAndEscapesTheError()
    {
        var report = new MigrationSendReport
        {
            Status = "failed",
            Error = "receiver said <nonsense> & hung up",
            FailedAt = "banner",
            Source = new MigrationEnd { State = "running", Directory = "/tmp/a" },
        };

        var doc = Parse(MigrationReportPage.Render(report));

        Assert.DoesNotContain(doc.Descendants(), e => e.Name.LocalName == "svg");
        Assert.Contains(doc.Descendants("p"), p => p.Value.Contains("no rounds", StringComparison.Ordinal));
        Assert.Contains(doc.Descendants("p"), p => p.Value == "failed at banner: receiver said <nonsense> & hung up (source running)");
    }

    [Fact]
    public void Write_ReplacesTheFileAndLeavesNoTemporary()
    {
        using var tmp = new TempDirectory();
        var path = tmp["report.html"];
        File.WriteAllText(path, "old");

        Assert.True(MigrationReportPage.TryWrite(path, Fabricated(), out var problem), problem);

        Assert.StartsWith("<!DOCTYPE html>", File.ReadAllText(path));
        Assert.Equal(["report.html"], Directory.GetFiles(tmp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void TryWrite_IntoAMissingDirectory_SaysWhyInOneLine()
    {
        using var tmp = new TempDirectory();

        Assert.False(MigrationReportPage.TryWrite(tmp["no/such/report.html"], Fabricated(), out var problem));
        Assert.NotEmpty(problem);
        Assert.DoesNotContain('\n', problem);
    }
}
