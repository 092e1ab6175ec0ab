namespace Xmig.Cli;

/// <summary>Where a command writes: results to <see cref="Out"/>, diagnostics to <see cref="Error"/>.</summary>
internal sealed class CliContext(TextWriter stdout, TextWriter stderr)
{
    public TextWriter Out { get; } = stdout;

    public TextWriter Error { get; } = stderr;

    /// <summary>True when <see cref="Out"/> and <see cref="Error"/> are the process's own standard output and error (not a test's writers).</summary>
    public bool IsProcessConsole { get; init; }

    /// <summary>True when diagnostics go to the process's own stderr and that is a terminal: live progress is drawn only then.</summary>
    public bool ErrorIsTerminal => ReferenceEquals(Error, Console.Error) && !Console.IsErrorRedirected;
}
