using System.CommandLine;
using System.Text.Json;
using Xmig.Cli.Reporting;
using Xmig.Migration;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig report MIGRATION.json PAGE.html</c>: the page of <c>migrate --report</c>, drawn from a document that
/// <c>migrate --json</c> printed earlier (or elsewhere: <c>ssh host xmig migrate ... --json | xmig report - page.html</c>).
/// </summary>
internal static class ReportCommand
{
    /// <summary>A <c>migrate --json</c> document larger than this is not one.</summary>
    private const long MaxDocument = 64L << 20;

    public static Command Create(CliContext ctx)
    {
        var input = new Argument<string>("MIGRATION.json") { Description = "A document printed by 'xmig migrate --json', or - for standard input." };
        var output = new Argument<string>("PAGE.html") { Description = "The page to write: self-contained, the rounds as SVG charts, the figures as tables." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("report", "Write the HTML page of a migration (as 'migrate --report') from its 'migrate --json' document.")
        {
            input, output, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var from = parse.GetValue(input)!;
            var to = parse.GetValue(output)!;
            byte[] text;
            using (var stream = from == "-" ? Console.OpenStandardInput() : File.OpenRead(from))
            using (var bounded = new MemoryStream())
            {
                var buffer = new byte[81920];
                int n;
                while ((n = stream.Read(buffer)) > 0)
                {
                    if (bounded.Length + n > MaxDocument)
                    {
                        return EngineCommand.Usage(ctx, $"{from}: longer than {MaxDocument} octets: not a 'migrate --json' document");
                    }

                    bounded.Write(buffer, 0, n);
                }

                text = bounded.ToArray();
            }

            MigrationSendReport? report;
            try
            {
                report = JsonSerializer.Deserialize(text, MigrationJson.Default.MigrationSendReport);
            }
            catch (JsonException e)
            {
                return EngineCommand.Usage(ctx, $"{from}: not a 'migrate --json' document: {e.Message}");
            }

            if (report is null || report.Status.Length == 0)
            {
                return EngineCommand.Usage(ctx, $"{from}: not a 'migrate --json' document (no status)");
            }

            if (!MigrationReportPage.TryWrite(to, report, out var problem))
            {
                return EngineCommand.Usage(ctx, $"{to}: {problem}");
            }

            ctx.Out.WriteLine($"wrote {to}: {report.Rounds.Count} rounds, status {report.Status}");
            return ExitCode.Ok;
        }));
        return command;
    }
}
