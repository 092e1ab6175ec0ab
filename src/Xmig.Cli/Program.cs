using System.CommandLine;
using System.CommandLine.Help;
using Xmig.Cli.Commands;

namespace Xmig.Cli;

internal static class Program
{
    internal static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line in-process (tests call this with their own writers).</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = BuildRoot(stdout, stderr);
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

        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return parse.Invoke(config);
    }

    internal static Command BuildRoot(TextWriter stdout, TextWriter stderr)
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
        var ctx = new CliContext(stdout, stderr);
        foreach (var command in CommandCatalog.All(ctx))
        {
            root.Subcommands.Add(command);
        }

        return root;
    }
}
