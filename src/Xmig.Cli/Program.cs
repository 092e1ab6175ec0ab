using System.CommandLine;
using Xmig.Cli.Commands;

namespace Xmig.Cli;

internal static class Program
{
    internal static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line in-process (tests call this with their own writers).</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = BuildRoot(stdout, stderr);
        var parse = root.Parse(args);
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return parse.Invoke(config);
    }

    internal static RootCommand BuildRoot(TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand(
            "xmig: inspect, verify, convert, save and restore Xen domain save files and migration streams.\n" +
            "Exit codes: 0 ok (valid), 1 invalid input, 2 usage or I/O error.");
        var ctx = new CliContext(stdout, stderr);
        foreach (var command in CommandCatalog.All(ctx))
        {
            root.Subcommands.Add(command);
        }

        return root;
    }
}
