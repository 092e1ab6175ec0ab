using System.CommandLine;
using Xmig.Formats;
using Xmig.Inspect;
using Xmig.Verify;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig verify [FILE|-] [-i/--in FILE|FD] [-f/--format auto|xl|libxl|libxc] [--json] [-v/--verbose] [-q]</c>:
/// every check of Xen's verify-stream-v2 plus the restore-side validations (v2 spec §7, §8).
/// </summary>
internal static class VerifyCommand
{
    public static Command Create(CliContext ctx)
    {
        var source = new StreamSourceOptions("verify");
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON document." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show every record and the summary; stack traces on internal errors." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing, not even errors; only the exit code tells." };
        var command = new Command("verify", "Check a save file or migration stream (xl, libxl, libxc or legacy). Exit codes: 0 valid, 1 invalid (one line on stderr), 2 usage or I/O error.");
        source.AddTo(command);
        command.Options.Add(json);
        command.Options.Add(verbose);
        command.Options.Add(quiet);
        var legacy = new LegacyCommandSupport();
        legacy.AddTo(command);
        command.SetAction(parse => source.Conflict(parse) is { } conflict ? (int)EngineCommand.Usage(ctx, conflict) : (int)Run(
            ctx,
            source.Path(parse),
            source.DecimalIsFd(parse),
            source.Format(parse),
            parse.GetValue(json),
            parse.GetValue(verbose),
            parse.GetValue(quiet),
            legacy.Read(parse)));
        return command;
    }

    internal static ExitCode Run(CliContext ctx, string? path, bool decimalIsFd, StreamFormat format, bool json, bool verbose, bool quiet, LegacyInspectOptions? legacy = null)
    {
        var error = quiet ? TextWriter.Null : ctx.Error;
        var output = quiet ? TextWriter.Null : ctx.Out;
        if (StreamInput.NoInputOnTerminal(ctx, path))
        {
            return EngineCommand.Usage(ctx, "verify: no input: give FILE (or -i FILE|FD), or pipe a stream in; usage: xmig verify [FILE|-] [-i FILE|FD] [-f auto|xl|libxl|libxc|legacy] [--json] [-q] [-v]");
        }

        try
        {
            legacy ??= new LegacyInspectOptions();
            using var opened = StreamInput.Open(path, decimalIsFd);
            var stream = LegacyCommandSupport.Rewindable(opened, out var head);
            if (LegacyCommandSupport.IsLegacyInput(format, head, legacy, out var why))
            {
                return LegacyCommandSupport.Verify(ctx, stream, path, legacy, json, verbose, quiet);
            }

            var result = verbose && !json
                ? StreamInspector.Inspect(stream, format, output, new InspectOptions())
                : StreamVerifier.Verify(stream, format);
            if (json)
            {
                output.WriteLine(StreamInspector.ToJson(result));
            }

            if (StreamInput.Failure(result, path, why, error) is { } failed)
            {
                return failed;
            }

            if (!json && !verbose)
            {
                var s = result.Summary;
                output.WriteLine($"{StreamInput.Describe(path)}: valid {StreamReport.KindName(s.Kind)} stream, {s.TotalRecords} records, {s.TotalBytes} bytes");
                foreach (var w in result.Warnings)
                {
                    error.WriteLine("xmig: warning: " + w);
                }
            }

            return ExitCode.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return StreamInput.IoFailure(e, path, verbose, error);
        }
    }
}
