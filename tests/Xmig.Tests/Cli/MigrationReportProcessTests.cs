using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

#pragma warning disable xUnit1031 // child processes are waited for with bounded blocking waits

namespace Xmig.Tests.Cli;

/// <summary>
/// <c>migrate --report</c> and <c>report</c> run as child processes, so that CI's native-AOT rerun draws the charts
/// with ScottPlot and SkiaSharp's native library from the published directory.
/// </summary>
[Trait("Category", XmigProcess.Category)]
public partial class MigrationReportProcessTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    [GeneratedRegex(@"listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex PortLine();

    private static Dictionary<string, string> Figures(XDocument page) =>
        page.Descendants("table").Single(t => (string?)t.Attribute("class") == "figures")
            .Descendants("tr").ToDictionary(r => r.Element("th")!.Value, r => r.Element("td")!.Value);

    [Fact]
    public void Report_FromASavedJsonDocument_DrawsTheChartsAndTheFigures()
    {
        using var tmp = new TempDirectory();
        var report = MigrationReportPageTests.Fabricated();
        File.WriteAllText(tmp["migration.json"], report.ToJson());

        var (code, output, err) = DomainTestSupport.CliProcess("report", tmp["migration.json"], tmp["page.html"]);

        Assert.True(code == 0, err);
        Assert.Contains("6 rounds", output);
        Assert.True(err.Length == 0, "drawing the charts wrote to stderr: " + err); // e.g. Skia's SVG canvas on dashes
        var page = MigrationReportPageTests.Parse(File.ReadAllText(tmp["page.html"]));
        var charts = page.Descendants().Where(e => e.Name.LocalName == "svg").ToList();
        Assert.Equal(2, charts.Count);
        Assert.All(charts, c => Assert.True(c.Descendants().Count(e => e.Name.LocalName == "path") > 10, "a chart has almost nothing drawn"));
        Assert.Equal("downtime", Figures(page)["policy"]);
        Assert.Equal("187.25 ms", Figures(page)["downtime"]);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("{\"rounds\": []}")]
    public void Report_FromSomethingElse_OneLineAndNoPage(string content)
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp["migration.json"], content);

        var (code, _, err) = DomainTestSupport.CliProcess("report", tmp["migration.json"], tmp["page.html"]);

        Assert.Equal(2, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("xmig: error:", line);
        Assert.Contains("not a 'migrate --json' document", line);
        Assert.False(File.Exists(tmp["page.html"]));
    }

    [Fact]
    public void Migrate_WithReport_WritesThePageOfThatMigration()
    {
        using var tmp = new TempDirectory();
        var (code, _, err) = DomainTestSupport.Cli("domain", "create", tmp["src"], "--type", "hvm", "--memory", "16MiB", "--vcpus", "1");
        Assert.True(code == 0, err);

        using var receiver = XmigProcess.Start(false, "migrate-receive", "--listen", "127.0.0.1:0", "--into", tmp["dst"], "--json");
        var port = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var receiverErr = new StringBuilder();
        receiver.ErrorDataReceived += (_, e) =>
        {
            lock (receiverErr)
            {
                receiverErr.AppendLine(e.Data);
            }

            if (e.Data is null)
            {
                port.TrySetResult(-1);
            }
            else if (PortLine().Match(e.Data) is { Success: true } m)
            {
                port.TrySetResult(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            }
        };
        receiver.BeginErrorReadLine();
        var receiverOut = receiver.StandardOutput.ReadToEndAsync();
        try
        {
            Assert.True(port.Task.Wait(Bound) && port.Task.Result > 0, "the receiver did not listen: " + receiverErr);

            string output;
            (code, output, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{port.Task.Result}", "--json", "--report", tmp["page.html"]);

            Assert.True(code == 0, err);
            Assert.True(receiver.WaitForExit(Bound), "the receiver did not finish");
            using var sent = JsonDocument.Parse(output);
            var figures = Figures(MigrationReportPageTests.Parse(File.ReadAllText(tmp["page.html"])));
            Assert.Equal("completed", figures["status"]);
            Assert.StartsWith($"{sent.RootElement.GetProperty("transferred").GetInt64()} octets", figures["transferred"]);
            Assert.Equal(sent.RootElement.GetProperty("source").GetProperty("memory-sha256").GetString(), figures["source memory sha256"]);
            Assert.Equal(sent.RootElement.GetProperty("dirty-sync-count").GetInt32().ToString(CultureInfo.InvariantCulture), figures["dirty-sync-count (passes)"]);
            _ = receiverOut;
        }
        finally
        {
            if (!receiver.HasExited)
            {
                receiver.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public void Migrate_WithReportIntoAMissingDirectory_RefusedBeforeMigrating()
    {
        using var tmp = new TempDirectory();
        var (code, _, err) = DomainTestSupport.Cli("domain", "create", tmp["src"], "--type", "hvm", "--memory", "16MiB", "--vcpus", "1");
        Assert.True(code == 0, err);

        (code, _, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], "127.0.0.1:1", "--report", tmp["no/such/page.html"]);

        Assert.Equal(2, code);
        Assert.Contains("its directory does not exist", Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.True(Directory.Exists(tmp["src"]), "the source moved");
    }
}
