using System.Globalization;
using System.Net;
using System.Text;
using Xmig.Migration;

namespace Xmig.Cli.Reporting;

/// <summary>
/// <c>xmig migrate --report FILE.html</c>: one self-contained page of a migration — its figures (status, policy,
/// times, downtime, octets, bandwidth, throttle, digests), the rounds as inline SVG charts and as a table. The page
/// loads nothing: no script, no stylesheet, no font, no image from elsewhere. It is also well-formed XML, so it can
/// be checked by a parser.
/// </summary>
internal static class MigrationReportPage
{
    /// <summary>
    /// Writes the page, or says in <paramref name="problem"/> why it could not: the migration it describes has
    /// happened either way, so a page that cannot be written (or drawn: SkiaSharp's native library missing) is one
    /// line, never a trace.
    /// </summary>
    public static bool TryWrite(string path, MigrationSendReport report, out string problem)
    {
        try
        {
            Write(path, report);
            problem = "";
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or TypeInitializationException)
        {
            problem = e is TypeInitializationException { InnerException: { } inner } ? inner.Message : e.Message;
            return false;
        }
    }

    /// <summary>Writes the page to <paramref name="path"/> (replacing it), through a temporary file beside it.</summary>
    public static void Write(string path, MigrationSendReport report)
    {
        var html = Render(report);
        var full = Path.GetFullPath(path);
        var temp = full + ".tmp";
        File.WriteAllText(temp, html, new UTF8Encoding(false));
        File.Move(temp, full, overwrite: true);
    }

    public static string Render(MigrationSendReport report)
    {
        var page = new StringBuilder(64 * 1024);
        page.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>");
        Text(page, $"xmig migration: {report.Status}");
        page.Append("</title>\n<style>\n").Append(Style).Append("</style>\n</head>\n<body>\n<h1>");
        Text(page, "xmig migration report");
        page.Append("</h1>\n<p class=\"status ").Append(report.Status == "completed" ? "ok" : "failed").Append("\">");
        Text(page, Summary(report));
        page.Append("</p>\n");

        page.Append("<h2>Figures</h2>\n<table class=\"figures\">\n<tbody>\n");
        foreach (var (name, value) in Figures(report))
        {
            page.Append("<tr><th>");
            Text(page, name);
            page.Append(name.EndsWith("sha256", StringComparison.Ordinal) ? "</th><td class=\"digest\">" : "</th><td>");
            Text(page, value);
            page.Append("</td></tr>\n");
        }

        page.Append("</tbody>\n</table>\n");

        page.Append("<h2>Rounds</h2>\n");
        if (report.Rounds.Count == 0)
        {
            page.Append("<p class=\"none\">This migration recorded no rounds.</p>\n");
        }
        else
        {
            page.Append("<figure>\n").Append(MigrationCharts.OctetsAndDirtyPages(report.Rounds)).Append("\n</figure>\n");
            page.Append("<figure>\n").Append(MigrationCharts.BandwidthAndExpectedDowntime(report.Rounds, report.DowntimeLimit, report.Downtime)).Append("\n</figure>\n");
            RoundsTable(page, report.Rounds);
        }

        page.Append("</body>\n</html>\n");
        return page.ToString();
    }

    private const string Style = """
        body { font-family: "DejaVu Sans", "Liberation Sans", sans-serif; margin: 24px; color: #222; background: #fff; }
        h1 { font-size: 22px; margin: 0 0 8px 0; }
        h2 { font-size: 17px; margin: 24px 0 8px 0; }
        p.status { font-size: 15px; padding: 8px 12px; border-radius: 4px; }
        p.ok { background: #e6f4ea; border: 1px solid #2e8b57; }
        p.failed { background: #fdecea; border: 1px solid #d0452f; }
        table { border-collapse: collapse; font-size: 13px; }
        th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
        table.rounds td { text-align: right; }
        table.rounds tr.paused { background: #fdecea; }
        td.digest { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; }
        figure { margin: 12px 0; }

        """;

    private static string Summary(MigrationSendReport r) =>
        r.Status == "completed"
            ? Inv($"completed: {Octets(r.Transferred)} in {r.TotalTime:0.#} ms, downtime {Ms(r.Downtime)}, {r.DirtySyncCount} passes, {r.Mbps:0.#} Mbit/s, policy {Or(r.Policy)}")
            : Inv($"failed{(r.FailedAt is { } at ? " at " + at : "")}: {r.Error} (source {r.Source.State})");

    private static IEnumerable<(string Name, string Value)> Figures(MigrationSendReport r)
    {
        yield return ("status", r.Status);
        if (r.Error is { } error)
        {
            yield return ("error", r.FailedAt is { } at ? $"{error} (at {at})" : error);
        }

        yield return ("policy", Or(r.Policy));
        yield return ("stop reason", r.StopReason ?? "—");
        yield return ("stream", Or(r.Stream));
        yield return ("workload", Or(r.Workload));
        yield return ("total time", Inv($"{r.TotalTime:0.###} ms"));
        yield return ("setup time", Inv($"{r.SetupTime:0.###} ms"));
        yield return ("downtime", Ms(r.Downtime));
        yield return ("downtime limit", Ms(r.DowntimeLimit));
        yield return ("expected downtime", Ms(r.ExpectedDowntime));
        yield return ("transferred", Octets(r.Transferred));
        yield return ("remaining at pause", Octets(r.Remaining));
        yield return ("mbps", Inv($"{r.Mbps:0.###} Mbit/s"));
        yield return ("max bandwidth", r.MaxBandwidth is { } bw ? Inv($"{bw} octets/s ({bw * 8 / 1e6:0.#} Mbit/s)") : "unlimited");
        yield return ("dirty-sync-count (passes)", r.DirtySyncCount.ToString(CultureInfo.InvariantCulture));
        yield return ("pages sent", r.PagesSent.ToString(CultureInfo.InvariantCulture));
        yield return ("dirty pages at pause", r.FinalDirtyPages.ToString(CultureInfo.InvariantCulture));
        yield return ("dirty pages rate", Inv($"{r.DirtyPagesRate:0.#} pages/s"));
        yield return ("cpu throttle", Inv($"{r.CpuThrottlePercentage} %"));
        yield return ("source", Inv($"{r.Source.State}, {r.Source.Directory}, {r.Source.Pages} pages"));
        yield return ("source memory sha256", r.Source.MemorySha256 ?? "— (not computed)");
        if (r.DestinationStatus is { } d)
        {
            yield return ("destination unpause status", d.ToString(CultureInfo.InvariantCulture));
        }
    }

    private static void RoundsTable(StringBuilder page, IReadOnlyList<MigrationRound> rounds)
    {
        page.Append("<table class=\"rounds\">\n<thead><tr>");
        foreach (var h in (ReadOnlySpan<string>)["round", "paused", "pages", "transferred", "duration (ms)", "Mbit/s", "dirty pages", "dirty pages/s", "expected downtime (ms)", "throttle (%)"])
        {
            page.Append("<th>");
            Text(page, h);
            page.Append("</th>");
        }

        page.Append("</tr></thead>\n<tbody>\n");
        foreach (var r in rounds)
        {
            page.Append(r.Paused ? "<tr class=\"paused\">" : "<tr>");
            Cell(page, r.Iteration.ToString(CultureInfo.InvariantCulture));
            Cell(page, r.Paused ? "yes" : "no");
            Cell(page, r.Pages.ToString(CultureInfo.InvariantCulture));
            Cell(page, Octets(r.Transferred));
            Cell(page, Inv($"{r.Duration:0.###}"));
            Cell(page, Inv($"{r.Mbps:0.#}"));
            Cell(page, r.DirtyPages.ToString(CultureInfo.InvariantCulture));
            Cell(page, Inv($"{r.DirtyPagesRate:0.#}"));
            Cell(page, Inv($"{r.ExpectedDowntime:0.###}"));
            Cell(page, r.CpuThrottlePercentage.ToString(CultureInfo.InvariantCulture));
            page.Append("</tr>\n");
        }

        page.Append("</tbody>\n</table>\n");
    }

    private static void Cell(StringBuilder page, string value)
    {
        page.Append("<td>");
        Text(page, value);
        page.Append("</td>");
    }

    /// <summary>Text content, escaped for HTML and XML alike (the page stays well-formed).</summary>
    private static void Text(StringBuilder page, string value) => page.Append(WebUtility.HtmlEncode(value));

    private static string Octets(long n) => n >= 1048576
        ? Inv($"{n} octets ({n / 1048576.0:0.##} MiB)")
        : Inv($"{n} octets");

    private static string Ms(double? ms) => ms is { } v ? Inv($"{v:0.###} ms") : "—";

    private static string Or(string s) => s.Length > 0 ? s : "—";

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
