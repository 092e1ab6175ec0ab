using System.Globalization;
using Spectre.Console;
using Xmig.Migration;
using Xmig.Save;

namespace Xmig.Cli.Progress;

/// <summary>
/// How a migration's rounds are shown: on a terminal, a live Spectre table on stderr that grows a row per round (the
/// handshake's log lines follow it once the stream is sent); elsewhere, one line per round
/// (<see cref="MigrationRoundLine"/>) as the round ends, so a log or a pipe reads the same figures.
/// </summary>
internal sealed class MigrationLiveView
{
    private readonly CliContext _ctx;
    private readonly List<string> _held = [];
    private readonly Table _table;
    private LiveDisplayContext? _display;

    private MigrationLiveView(CliContext ctx, string title)
    {
        _ctx = ctx;
        _table = new Table { Border = TableBorder.Rounded, Title = new TableTitle(Markup.Escape(title)) };
        foreach (var column in (ReadOnlySpan<string>)["round", "pages", "MiB", "ms", "Mbit/s", "dirtied", "dirty/s", "expected ms", "throttle"])
        {
            _table.AddColumn(new TableColumn(column).RightAligned());
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/>, giving it where to report rounds and log lines. <paramref name="quiet"/> shows
    /// neither rounds nor the live table.
    /// </summary>
    public static T Run<T>(CliContext ctx, string title, bool quiet, Func<Action<SaveRound>, Action<string>, T> work)
    {
        if (quiet)
        {
            return work(_ => { }, _ => { });
        }

        if (!ctx.ErrorIsTerminal)
        {
            return work(round => ctx.Error.WriteLine(MigrationRoundLine.Format(round)), ctx.Error.WriteLine);
        }

        var view = new MigrationLiveView(ctx, title);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Live(view._table).AutoClear(false).Start(display =>
        {
            view._display = display;
            result = work(view.Add, view.Hold);
        });
        view.Release();
        return result;
    }

    private void Add(SaveRound r)
    {
        var expected = r.Paused ? "-" : r.ExpectedDowntime is { } e ? Invariant($"{e.TotalMilliseconds:0.0}") : "?";
        _table.AddRow(
            r.Paused ? Invariant($"{r.Iteration} (paused)") : Invariant($"{r.Iteration}"),
            Invariant($"{r.Pages}"),
            Invariant($"{r.Bytes / 1048576.0:0.0}"),
            Invariant($"{r.Duration.TotalMilliseconds:0.0}"),
            Invariant($"{r.BytesPerSecond * 8 / 1e6:0}"),
            r.Paused ? "-" : Invariant($"{r.DirtyPages}"),
            r.Paused ? "-" : Invariant($"{r.DirtyPagesPerSecond:0}"),
            expected,
            r.ThrottlePercent > 0 ? Invariant($"{r.ThrottlePercent}%") : "-");
        _display?.Refresh();
    }

    /// <summary>Log lines wait until the table is drawn for the last time, so that they do not tear it.</summary>
    private void Hold(string line)
    {
        lock (_held)
        {
            _held.Add(line);
        }
    }

    private void Release()
    {
        lock (_held)
        {
            foreach (var line in _held)
            {
                _ctx.Error.WriteLine(line);
            }

            _held.Clear();
        }
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
