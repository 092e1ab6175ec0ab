using Xmig.Domains;
using Xmig.Formats;

namespace Xmig.Cli.Commands;

/// <summary>Error handling shared by the verbs that drive the domain, save and restore engines.</summary>
internal static class EngineCommand
{
    /// <summary>Runs a command body, turning anticipated failures into one <c>xmig: error:</c> line and an exit code.</summary>
    public static int Run(CliContext ctx, bool verbose, Func<ExitCode> body)
    {
        try
        {
            return (int)body();
        }
        catch (StreamFormatException e)
        {
            return Fail(ctx, verbose, ExitCode.Invalid, e.Message, e);
        }
        catch (InvalidDomainException e)
        {
            return Fail(ctx, verbose, ExitCode.Invalid, e.Message, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return Fail(ctx, verbose, ExitCode.UsageOrIo, e.Message, e);
        }
    }

    /// <summary>Prints a usage error and returns its exit code.</summary>
    public static ExitCode Usage(CliContext ctx, string message)
    {
        ctx.Error.WriteLine($"xmig: error: {message}");
        return ExitCode.UsageOrIo;
    }

    private static int Fail(CliContext ctx, bool verbose, ExitCode code, string message, Exception e)
    {
        ctx.Error.WriteLine($"xmig: error: {message}");
        if (verbose)
        {
            ctx.Error.WriteLine(e);
        }

        return (int)code;
    }
}
