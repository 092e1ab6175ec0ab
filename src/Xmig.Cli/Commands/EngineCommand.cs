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
        catch (Exception e) when (ExitCodes.Of(e) is { } code)
        {
            return Fail(ctx, verbose, code, e.Message, e);
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
