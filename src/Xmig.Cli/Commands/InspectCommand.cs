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
        var source = new StreamSourceOptions("inspect");
        var json = new Option<bool>("--json") { Description = "Print one JSON document instead of text." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Per-record detail (page runs, HVM params, xenstore pairs, CPU policies)." };
        var command = new Command("inspect", "Show the headers and records (or legacy chunks) of a save file or migration stream, then a summary. Exit codes: 0 valid, 1 invalid, 2 usage or I/O error.");
        source.AddTo(command);
        command.Options.Add(json);
        command.Options.Add(verbose);
        var legacy = new LegacyCommandSupport();
        legacy.AddTo(command);
        command.SetAction(parse => source.Conflict(parse) is { } conflict ? (int)EngineCommand.Usage(ctx, conflict) : (int)Run(
            ctx,
            source.Path(parse),
            source.DecimalIsFd(parse),
            source.Format(parse),
            parse.GetValue(json),
            parse.GetValue(verbose),
            legacy.Read(parse)));
        return command;
    }

    internal static ExitCode Run(CliContext ctx, string? path, bool decimalIsFd, StreamFormat format, bool json, bool verbose, LegacyInspectOptions? legacy = null)
    {
        if (StreamInput.NoInputOnTerminal(ctx, path))
        {
            return EngineCommand.Usage(ctx, "inspect: no input: give FILE (or -i FILE|FD), or pipe a stream in; usage: xmig inspect [FILE|-] [-i FILE|FD] [-f auto|xl|libxl|libxc|legacy] [--json] [-v]");
        }

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
            return StreamInput.Failure(result, path, why, ctx.Error) ?? ExitCode.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return StreamInput.IoFailure(e, path, verbose, ctx.Error);
        }
    }
}
