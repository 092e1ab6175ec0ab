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

    /// <summary>
    /// As <see cref="Run(CliContext, bool, Func{ExitCode})"/>, with SIGINT and SIGTERM handled (<see cref="Interruption"/>):
    /// the body gets the token the first signal cancels, and a body that stops because of it (or fails because its
    /// channel was aborted) ends with one <c>xmig: error: interrupted by SIG...</c> line and exit code 2.
    /// <paramref name="giveUp"/> lets the interruption exit by itself when the body stays blocked past the grace.
    /// </summary>
    public static int Run(CliContext ctx, bool verbose, bool giveUp, Func<Interruption, ExitCode> body)
    {
        using var interruption = Interruption.Register(ctx, giveUp);
        try
        {
            return (int)body(interruption);
        }
        catch (Exception e) when (interruption.Received is not null && (e is OperationCanceledException || ExitCodes.Of(e) is not null))
        {
            interruption.End();
            ctx.Error.WriteLine(interruption.Line("stopped; nothing was left behind"));
            if (verbose)
            {
                ctx.Error.WriteLine(e);
            }

            return (int)ExitCode.UsageOrIo;
        }
        catch (Exception e) when (ExitCodes.Of(e) is { } code)
        {
            return Fail(ctx, verbose, code, e.Message, e);
        }
    }

    /// <summary>
    /// Removes the staging directories that killed runs left beside <paramref name="target"/> (only a SIGKILL leaves
    /// one), with one line each on stderr.
    /// </summary>
    public static void RemoveStaleStaging(CliContext ctx, string target)
    {
        foreach (var stale in Domains.DomainDirectory.RemoveStale(target))
        {
            ctx.Error.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"xmig: removed a stale staging directory {stale.Path} left by a killed run (pid {stale.Pid})"));
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
