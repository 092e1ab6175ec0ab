using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Compare;
using Xmig.Restore;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig diff A B [--json]</c>: compares two streams, two domain directories, or one of each, page by page and
/// state record by state record. Exit codes as <c>cmp</c> and <c>diff</c>: 0 equal, 1 different, 2 trouble.
/// </summary>
internal static class DiffCommand
{
    public static Command Create(CliContext ctx)
    {
        var a = new Argument<string>("A") { Description = "A stream of any kind xmig reads ('-' for stdin), or a domain directory." };
        var b = new Argument<string>("B") { Description = "The same, to compare with A." };
        var first = new Option<int>("--first") { Description = "How many differing pfns to name.", DefaultValueFactory = _ => 10, HelpName = "N" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (equal, pages_differing, only_in_a, only_in_b, first_pfns, state)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("diff", "Compare the memory and state of two streams or domain directories. Exit codes: 0 equal, 1 different, 2 error.")
        {
            a, b, first, json, verbose,
        };
        command.SetAction(parse =>
        {
            try
            {
                return (int)Run(ctx, parse.GetValue(a)!, parse.GetValue(b)!, parse.GetValue(first), parse.GetValue(json));
            }
            catch (Exception e) when (ExitCodes.Of(e) is not null)
            {
                // As cmp and diff: every failure, a bad stream included, is trouble (2), never "different" (1).
                ctx.Error.WriteLine($"xmig: error: {e.Message}");
                if (parse.GetValue(verbose))
                {
                    ctx.Error.WriteLine(e);
                }

                return (int)ExitCode.UsageOrIo;
            }
        });
        return command;
    }

    private static ExitCode Run(CliContext ctx, string pathA, string pathB, int first, bool json)
    {
        if (first < 0)
        {
            return EngineCommand.Usage(ctx, $"--first {first} is negative");
        }

        if (pathA == "-" && pathB == "-")
        {
            return EngineCommand.Usage(ctx, "A and B cannot both be standard input");
        }

        using var cleanup = new InterruptCleanup();
        using var sourceA = Open(pathA, cleanup, ctx.Error);
        using var sourceB = Open(pathB, cleanup, ctx.Error);
        var result = DomainDiff.Compare(sourceA.Domain, sourceB.Domain, first);
        if (json)
        {
            var report = new DiffReport
            {
                Equal = result.Equal,
                A = pathA,
                B = pathB,
                PagesCompared = result.PagesCompared,
                PagesDiffering = result.PagesDiffering,
                TypesDiffering = result.TypesDiffering,
                OnlyInA = result.OnlyInA,
                OnlyInB = result.OnlyInB,
                FirstPfns = [.. result.FirstPfns],
                State = [.. result.State.Select(s => new DiffStateReport { Record = s.Record, Detail = s.Detail })],
            };
            ctx.Out.WriteLine(JsonSerializer.Serialize(report, DiffCommandJson.Default.DiffReport));
        }
        else if (result.Equal)
        {
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{pathA} and {pathB} are equal: {result.PagesCompared} pages and every state record"));
        }
        else
        {
            ctx.Out.WriteLine($"{pathA} and {pathB} differ");
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"pages: {result.PagesCompared} in both, {result.PagesDiffering} differ in content, {result.TypesDiffering} in type, {result.OnlyInA} only in A, {result.OnlyInB} only in B"));
            if (result.FirstPfns.Count > 0)
            {
                ctx.Out.WriteLine("first differing pfns: " + string.Join(' ', result.FirstPfns.Select(p => string.Create(CultureInfo.InvariantCulture, $"0x{p:X}"))));
            }

            foreach (var s in result.State)
            {
                ctx.Out.WriteLine($"state: {s.Record}: {s.Detail}");
            }
        }

        return result.Equal ? ExitCode.Ok : ExitCode.Invalid;
    }

    private static DomainSource Open(string path, InterruptCleanup cleanup, TextWriter error)
    {
        if (path != "-" && Directory.Exists(path))
        {
            return DomainSource.FromDirectory(path);
        }

        if (path != "-" && !File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such stream file or domain directory");
        }

        using var stream = StreamInput.Open(path, decimalIsFd: false);
        InterruptCleanup.SweepStale(Path.GetTempPath(), null, error);
        return DomainSource.FromStream(stream, StreamInput.Describe(path), Path.GetTempPath(), staged: cleanup.Add);
    }
}

internal sealed class DiffReport
{
    public bool Equal { get; set; }

    public string A { get; set; } = "";

    public string B { get; set; } = "";

    public ulong PagesCompared { get; set; }

    public ulong PagesDiffering { get; set; }

    public ulong TypesDiffering { get; set; }

    public ulong OnlyInA { get; set; }

    public ulong OnlyInB { get; set; }

    public List<ulong> FirstPfns { get; set; } = [];

    public List<DiffStateReport> State { get; set; } = [];
}

internal sealed class DiffStateReport
{
    public string Record { get; set; } = "";

    public string Detail { get; set; } = "";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(DiffReport))]
internal sealed partial class DiffCommandJson : JsonSerializerContext;
