using System.CommandLine;

namespace Xmig.Cli.Commands;

/// <summary>Every verb of the <c>xmig</c> command, one file per verb.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All(CliContext ctx)
    {
        yield return DemoCommand.Create(ctx);
        yield return InspectCommand.Create(ctx);
        yield return VerifyCommand.Create(ctx);
        yield return DomainCommand.Create(ctx);
        yield return ConvertCommand.Create(ctx);
        yield return SaveCommand.Create(ctx);
        yield return RestoreCommand.Create(ctx);
        yield return MigrateCommand.Create(ctx);
        yield return MigrateReceiveCommand.Create(ctx);
        yield return ReplicateCommand.Create(ctx);
        yield return ReportCommand.Create(ctx);
        yield return ExtractCommand.Create(ctx);
        yield return DiffCommand.Create(ctx);
        yield return CompletionCommand.Create(ctx);
    }
}
