using System.Globalization;
using Microsoft.Win32.SafeHandles;
using Xmig.Formats;
using Xmig.IO;

namespace Xmig.Cli.Commands;

/// <summary>Opening the input of <c>inspect</c>/<c>verify</c>: a file, <c>-</c> (stdin) or, as Xen's tools accept, a file descriptor number.</summary>
internal static class StreamInput
{
    public static readonly string[] FormatNames = ["auto", "xl", "libxl", "libxc", "legacy"];

    /// <summary>
    /// Opens <paramref name="path"/>: null or <c>-</c> is stdin; with <paramref name="decimalIsFd"/> (Xen's
    /// <c>-i/--in</c>) a decimal string is a file descriptor.
    /// </summary>
    public static Stream Open(string? path, bool decimalIsFd)
    {
        if (string.IsNullOrEmpty(path) || path == "-")
        {
            // A FileStream over fd 0 (not the console stream) so that a pipe can be grown to 1 MiB.
            return PipeTuning.OpenStandardInput();
        }

        if (decimalIsFd && int.TryParse(path, NumberStyles.None, CultureInfo.InvariantCulture, out var fd))
        {
            if (fd == 0)
            {
                return PipeTuning.OpenStandardInput();
            }

            var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: false), FileAccess.Read, 1);
            PipeTuning.TryGrow(stream);
            return stream;
        }

        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
    }

    public static StreamFormat ParseFormat(string? name) => name switch
    {
        "xl" => StreamFormat.Xl,
        "libxl" => StreamFormat.Libxl,
        "libxc" => StreamFormat.Libxc,
        "legacy" => StreamFormat.Legacy,
        _ => StreamFormat.Auto,
    };

    /// <summary>The one line shown for a legacy input until the legacy reader plugs in.</summary>
    public static string LegacyMessage(string? path) =>
        $"{Describe(path)} is a legacy (pre-v2) stream: legacy support comes with --format legacy";

    /// <summary>
    /// True when no input was named and standard input is this process's terminal: the user forgot the file, and
    /// reading the keyboard would wait silently, so the verb prints its usage instead.
    /// </summary>
    public static bool NoInputOnTerminal(CliContext ctx, string? path) =>
        string.IsNullOrEmpty(path) && ctx.IsProcessConsole && !Console.IsInputRedirected;

    public static string Describe(string? path) => string.IsNullOrEmpty(path) || path == "-" ? "stdin" : path;

    /// <summary>
    /// The exit code of an inspected or verified v2 stream that is not valid (one line on <paramref name="error"/>), or
    /// null when it is valid. <paramref name="why"/> says why the input was not taken for a legacy stream.
    /// </summary>
    public static ExitCode? Failure(Verify.VerifyResult result, string? path, string? why, TextWriter error)
    {
        if (result.IsLegacy)
        {
            error.WriteLine("xmig: error: " + LegacyCommandSupport.NotRecognised(path, why));
            return ExitCode.Invalid;
        }

        if (result.Error is { } e)
        {
            error.WriteLine("xmig: error: " + e.Message);
            return ExitCode.Invalid;
        }

        return null;
    }

    /// <summary>An I/O failure on the input: one line (the exception too with <paramref name="verbose"/>), exit 2.</summary>
    public static ExitCode IoFailure(Exception e, string? path, bool verbose, TextWriter error)
    {
        error.WriteLine(e is StandardOutputException ? $"xmig: error: {e.Message}" : $"xmig: error: {Describe(path)}: {e.Message}");
        if (verbose)
        {
            error.WriteLine(e);
        }

        return ExitCodes.Of(e) ?? ExitCode.UsageOrIo;
    }
}
