using System.CommandLine;

namespace Xmig.Cli.Commands;

/// <summary><c>xmig demo</c>: the main job on an embedded default.</summary>
internal static class DemoCommand
{
    public static Command Create(CliContext ctx)
    {
        var command = new Command("demo", "Write sample streams of each kind and show inspect and verify on them.");
        command.SetAction(_ =>
        {
            ctx.Out.WriteLine("xmig demo");
            return (int)ExitCode.Ok;
        });
        return command;
    }
}
