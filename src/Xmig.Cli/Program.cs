using System.CommandLine;
using System.CommandLine.Help;
using Xmig.Cli.Commands;

namespace Xmig.Cli;

internal static class Program
{
    internal static int Main(string[] args)
    {
        var stdout = StandardOutput.Open();
        try
        {
            var code = Run(args, stdout, Console.Error, console: true);
            stdout.Flush();
            return code;
        }
        catch (StandardOutputException e)
        {
            // A write outside any verb's own handling (help, usage, a last flush): still one line and exit 2.
            Console.Error.WriteLine("xmig: error: " + e.Message);
            return (int)ExitCode.UsageOrIo;
        }
    }

    /// <summary>Runs the command line in-process (tests call this with their own writers).</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr, bool console = false)
    {
        var root = BuildRoot(stdout, stderr, console);
        if (CompletionCommand.TrySuggest(root, args, stdout) is { } suggested)
        {
            return suggested;
        }

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && !args.Contains("--help") && !args.Contains("-h"))
        {
            // Usage errors: one line, exit code 2 (System.CommandLine's default would be 1, which means invalid input).
            // An unrecognised word says more than the "required command" error it causes.
            var first = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0];
            var message = string.Join(' ', first.Message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries));
            stderr.WriteLine("xmig: error: " + message);
            return (int)ExitCode.UsageOrIo;
        }

        // System.CommandLine's own handler would print a failed write to stdout (help on /dev/full) as an unhandled
        // exception with its trace: that one is an I/O error like any other.
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            return parse.Invoke(config);
        }
        catch (StandardOutputException e)
        {
            stderr.WriteLine("xmig: error: " + e.Message);
            return (int)ExitCode.UsageOrIo;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug: what System.CommandLine's handler printed, with the trace that is needed to fix it.
            stderr.WriteLine("Unhandled exception: " + e);
            return 1;
        }
    }

    internal static Command BuildRoot(TextWriter stdout, TextWriter stderr, bool console = false)
    {
        // A named command rather than RootCommand, whose name would be the assembly's (Xmig.Cli): help then reads
        // "Usage: xmig ...", as installed by ToolCommandName.
        var root = new Command(
            "xmig",
            "xmig: inspect, verify, convert, save and restore Xen domain save files and migration streams.\n" +
            "Exit codes: 0 ok (valid), 1 invalid input, 2 usage or I/O error.")
        {
            new HelpOption(),
            new VersionOption(),
        };
        var ctx = new CliContext(stdout, stderr) { IsProcessConsole = console };
        foreach (var command in CommandCatalog.All(ctx))
        {
            root.Subcommands.Add(command);
        }

        return root;
    }
}
