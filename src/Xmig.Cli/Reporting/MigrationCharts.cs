using ScottPlot;
using Xmig.Migration;

namespace Xmig.Cli.Reporting;

/// <summary>
/// The rounds of a migration as SVG charts, drawn with ScottPlot (through SkiaSharp's SVG canvas). Each chart is
/// one <c>&lt;svg&gt;</c> element, ready to be placed inline in a page: nothing in it refers to a file or a URL.
/// Lines are solid and told apart by colour: Skia's SVG canvas has no path effects (dashes), and says so on stderr.
/// </summary>
internal static class MigrationCharts
{
    public const int Width = 900;
    public const int Height = 340;

    /// <summary>The page's font (Debian's fonts-dejavu-core); text in the SVG names it, and the browser draws it.</summary>
    private const string FontName = "DejaVu Sans";

    private static readonly Color PreCopy = Color.FromHex("#3572b0");
    private static readonly Color StopAndCopy = Color.FromHex("#d0452f");
    private static readonly Color Dirty = Color.FromHex("#e69f00");
    private static readonly Color Limit = Color.FromHex("#2e8b57");

    /// <summary>Octets each pass sent (bars, the paused pass in red) and the pages dirtied during it (line, right axis).</summary>
    public static string OctetsAndDirtyPages(IReadOnlyList<MigrationRound> rounds)
    {
        var plot = NewPlot("Octets sent and pages dirtied per round");
        var bars = rounds.Select(r => new Bar
        {
            Position = r.Iteration,
            Value = r.Transferred / 1048576.0,
            FillColor = r.Paused ? StopAndCopy : PreCopy,
            LineWidth = 0,
        }).ToList();
        plot.Add.Bars(bars);
        plot.Axes.Left.Label.Text = "MiB sent";

        var dirty = plot.Add.Scatter(Iterations(rounds), rounds.Select(r => (double)r.DirtyPages).ToArray());
        dirty.Color = Dirty;
        dirty.LineWidth = 2;
        dirty.MarkerSize = 7;
        dirty.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "dirty pages";

        plot.Legend.IsVisible = true;
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "pre-copy pass (MiB)", FillColor = PreCopy });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "stop-and-copy (MiB)", FillColor = StopAndCopy });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "pages dirtied", LineColor = Dirty, LineWidth = 2 });
        FromZero(plot, plot.Axes.Left, rounds.Max(r => r.Transferred / 1048576.0));
        FromZero(plot, plot.Axes.Right, rounds.Max(r => (double)r.DirtyPages));
        return Svg(plot, rounds);
    }

    /// <summary>
    /// Stream bandwidth per pass (left axis) and the downtime each pass predicted (right axis), with the downtime
    /// limit and the measured downtime as horizontal lines.
    /// </summary>
    public static string BandwidthAndExpectedDowntime(IReadOnlyList<MigrationRound> rounds, double? downtimeLimit, double? downtime)
    {
        var plot = NewPlot("Bandwidth and expected downtime per round");
        var mbps = plot.Add.Scatter(Iterations(rounds), rounds.Select(r => r.Mbps).ToArray());
        mbps.Color = PreCopy;
        mbps.LineWidth = 2;
        mbps.MarkerSize = 7;
        mbps.LegendText = "bandwidth (Mbit/s)";
        plot.Axes.Left.Label.Text = "Mbit/s";

        var expected = plot.Add.Scatter(Iterations(rounds), rounds.Select(r => r.ExpectedDowntime).ToArray());
        expected.Color = Dirty;
        expected.LineWidth = 2;
        expected.MarkerSize = 7;
        expected.LegendText = "expected downtime (ms)";
        expected.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "ms";

        if (downtimeLimit is { } limit)
        {
            var line = plot.Add.HorizontalLine(limit, 2, Limit);
            line.Axes.YAxis = plot.Axes.Right;
            line.LegendText = $"downtime limit {limit:0.#} ms";
        }

        if (downtime is { } measured)
        {
            var line = plot.Add.HorizontalLine(measured, 2, StopAndCopy);
            line.Axes.YAxis = plot.Axes.Right;
            line.LegendText = $"measured downtime {measured:0.#} ms";
        }

        plot.Legend.IsVisible = true;
        FromZero(plot, plot.Axes.Left, rounds.Max(r => r.Mbps));
        FromZero(plot, plot.Axes.Right, Math.Max(rounds.Max(r => r.ExpectedDowntime), Math.Max(downtimeLimit ?? 0, downtime ?? 0)));
        return Svg(plot, rounds);
    }

    /// <summary>An axis from 0 to a little above its largest value (room for the legend), 1 when all are 0.</summary>
    private static void FromZero(Plot plot, ScottPlot.IYAxis axis, double max) =>
        plot.Axes.SetLimitsY(0, max > 0 ? max * 1.25 : 1, axis);

    private static Plot NewPlot(string title)
    {
        var plot = new Plot();
        plot.Font.Set(FontName);
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = "round";
        return plot;
    }

    private static double[] Iterations(IReadOnlyList<MigrationRound> rounds) => rounds.Select(r => (double)r.Iteration).ToArray();

    private static string Svg(Plot plot, IReadOnlyList<MigrationRound> rounds)
    {
        // Integer ticks: one per round.
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var r in rounds)
        {
            ticks.AddMajor(r.Iteration, r.Paused ? $"{r.Iteration} (paused)" : r.Iteration.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        plot.Axes.Bottom.TickGenerator = ticks;
        if (rounds.Count > 0)
        {
            plot.Axes.SetLimitsX(rounds.Min(r => r.Iteration) - 0.6, rounds.Max(r => r.Iteration) + 0.6);
        }

        var svg = plot.GetSvgXml(Width, Height);
        var start = svg.IndexOf("<svg", StringComparison.Ordinal);
        return start > 0 ? svg[start..] : svg;
    }
}
