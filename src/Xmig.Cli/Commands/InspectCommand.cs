using System.CommandLine;
using Xmig.Formats;
using Xmig.Inspect;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig inspect [FILE|-] [-i/--in FILE|FD] [-f/--format auto|xl|libxl|libxc] [--json] [-v]</c>: headers, every
/// record (index, offset, type, length, decoded fields), then a summary.
/// </summary>
internal static class InspectCommand
{
    public static Command Create(CliContext ctx)
    {
        var file = new Argument<string?>("file") { Arity = ArgumentArity.ZeroOrOne, Description = "The stream to inspect; '-' or absent: stdin." };
        var input = new Option<string?>("--in", "-i") { Description = "Input file or file descriptor number." };
        var format = new Option<string>("--format", "-f") { Description = "Outermost format (auto detects xl, libxl and libxc).", DefaultValueFactory = _ => "auto" };
        format.AcceptOnlyFromAmong(StreamInput.FormatNames);
        var json = new Option<bool>("--json") { Description = "Print one JSON document instead of text." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Per-record detail (page runs, HVM params, xenstore pairs, CPU policies)." };
        var command = new Command("inspect", "Show the headers and records of a Migration v2 stream and a summary. Exit codes: 0 valid, 1 invalid, 2 usage or I/O error.")
        {
            file, input, format, json, verbose,
        };
        var legacy = new LegacyCommandSupport();
        legacy.AddTo(command);
        command.SetAction(parse => (int)Run(
            ctx,
            parse.GetValue(input) ?? parse.GetValue(file),
            parse.GetValue(input) is not null,
            StreamInput.ParseFormat(parse.GetValue(format)),
            parse.GetValue(json),
            parse.GetValue(verbose),
            legacy.Read(parse)));
        return command;
    }

    internal static ExitCode Run(CliContext ctx, string? path, bool decimalIsFd, StreamFormat format, bool json, bool verbose, LegacyInspectOptions? legacy = null)
    {
        try
        {
            legacy ??= new LegacyInspectOptions();
            using var opened = StreamInput.Open(path, decimalIsFd);
            var stream = LegacyCommandSupport.Rewindable(opened, out var head);
            if (LegacyCommandSupport.IsLegacyInput(format, head, legacy, out var why))
            {
                return LegacyCommandSupport.Inspect(ctx, stream, legacy, json);
            }

            var result = StreamInspector.Inspect(stream, format, ctx.Out, new InspectOptions { Json = json, Verbose = verbose });
            if (result.IsLegacy)
            {
                ctx.Error.WriteLine("xmig: error: " + LegacyCommandSupport.NotRecognised(path, why));
                return ExitCode.Invalid;
            }

            if (result.Error is { } e)
            {
                ctx.Error.WriteLine("xmig: error: " + e.Message);
                return ExitCode.Invalid;
            }

            return ExitCode.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ctx.Error.WriteLine($"xmig: error: {StreamInput.Describe(path)}: {e.Message}");
            if (verbose)
            {
                ctx.Error.WriteLine(e);
            }

            return ExitCode.UsageOrIo;
        }
    }
}
