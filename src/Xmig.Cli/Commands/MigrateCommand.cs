using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Hosting;
using Xmig.Migration;
using Xmig.Save;
using Xmig.Transport;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig migrate DIR HOST:PORT|- [--stream KIND] [--workload W] [--json]</c>: live-migrates a domain over xl's
/// migration channel to <c>xmig migrate-receive</c> (or <c>xl migrate-receive</c>), as <c>xl migrate</c> does.
/// A domain hosted by <c>xmig domain run</c> is migrated by its host (asked over the control socket); any other is
/// run here, under <c>--workload</c>, for the migration.
/// </summary>
internal static class MigrateCommand
{
    public static Command Create(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory (hosted by 'xmig domain run', or not running)." };
        var target = new Argument<string>("TARGET") { Description = "HOST:PORT of 'xmig migrate-receive --listen', or - for the channel on standard input/output (under ssh)." };
        var stream = new Option<string>("--stream", "-s") { Description = "Stream kind: xl (default), libxl, libxc, legacy-4.0, legacy-4.1.", DefaultValueFactory = _ => "xl" };
        stream.AcceptOnlyFromAmong("xl", "libxl", "libxc", "legacy-4.0", "legacy-4.1");
        var workload = new Option<string>("--workload") { Description = "A domain that is not hosted runs this workload during the migration: idle, uniform:RATE, hotset:SIZE:RATE.", DefaultValueFactory = _ => "idle" };
        var seed = new Option<ulong>("--seed") { Description = "Workload seed.", DefaultValueFactory = _ => 1 };
        var keep = new Option<bool>("--keep-source") { Description = "After success keep the source as DIR--migratedaway instead of destroying it." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (QEMU query-migrate names: status, total-time, setup-time, downtime, transferred, mbps, ...)." };
        var report = new Option<string?>("--report") { Description = "Also write FILE.html: one self-contained page with the rounds as charts, the downtime, the policy and the figures.", HelpName = "FILE.html" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("migrate", "Live-migrate a domain over xl's migration channel (as 'xl migrate').")
        {
            dir, target, stream, workload, seed, keep, json, report, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var path = parse.GetValue(dir)!;
            var to = parse.GetValue(target)!;
            var kindName = parse.GetValue(stream)!;
            var stdio = to == "-";
            if (stdio && parse.GetValue(json))
            {
                return EngineCommand.Usage(ctx, "--json needs HOST:PORT (standard output carries the channel)");
            }

            if (parse.GetValue(report) is { } page && !Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(page))))
            {
                return EngineCommand.Usage(ctx, $"--report {page}: its directory does not exist");
            }

            if (!WorkloadSpec.TryParse(parse.GetValue(workload), out var spec, out var problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            string host = "";
            var port = 0;
            if (!stdio && !ChannelEndpoint.TryParse(to, out host, out port, out problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            if (!DomainHost.TryParseStream(kindName, out var kind))
            {
                return EngineCommand.Usage(ctx, $"--stream {kindName} is not a stream kind");
            }

            // A hosted domain: its host owns it and runs the migration.
            if (DomainControl.TryConnect(path, out var probe))
            {
                probe.Dispose();
                if (stdio)
                {
                    return EngineCommand.Usage(ctx, $"{path} is hosted by 'xmig domain run': migrate it to HOST:PORT (its host connects there)");
                }

                var answer = DomainControl.Request(path, $"migrate {to} {kindName} digest", line => ctx.Error.WriteLine(line));
                if (answer is not { } a)
                {
                    return EngineCommand.Usage(ctx, $"{path}: the domain host stopped answering");
                }

                MigrationSendReport? hosted = null;
                try
                {
                    hosted = JsonSerializer.Deserialize(a.Text, MigrationJson.Default.MigrationSendReport);
                }
                catch (JsonException)
                {
                }

                if (hosted is null)
                {
                    ctx.Error.WriteLine($"xmig: error: {a.Text}");
                    return ExitCode.UsageOrIo;
                }

                return Finish(ctx, hosted, parse.GetValue(json), parse.GetValue(report));
            }

            using var domain = SimulatedDomain.Open(path, writable: true);
            domain.StartWorkload(spec, parse.GetValue(seed));
            MigrationSendResult result;
            try
            {
                var options = new MigrationSendOptions { Save = new SaveOptions { Kind = kind }, Digest = parse.GetValue(json) };
                var sender = new MigrationSender(domain, options, line => ctx.Error.WriteLine(line));
                if (stdio)
                {
                    using var channel = new XlMigrationChannel(Xmig.IO.PipeTuning.OpenStandardInput(), Xmig.IO.PipeTuning.OpenStandardOutput(), XlChannelRole.Sender);
                    result = sender.Run(channel);
                }
                else
                {
                    System.Net.Sockets.Socket socket;
                    try
                    {
                        socket = ChannelEndpoint.Connect(host, port, TimeSpan.FromSeconds(30));
                    }
                    catch (IOException e)
                    {
                        result = new MigrationSendResult { Error = e.Message, FailedAt = "connect", Source = SourceState.Running, SourceDirectory = domain.Directory };
                        return Finish(ctx, MigrationSendReport.From(result, kindName, spec.ToString()), parse.GetValue(json), parse.GetValue(report));
                    }

                    using (socket)
                    using (var network = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false))
                    using (var channel = new XlMigrationChannel(network, network, XlChannelRole.Sender))
                    {
                        result = sender.Run(channel);
                    }
                }
            }
            finally
            {
                domain.StopWorkload();
            }

            if (result.Source == SourceState.MigratedAway && !parse.GetValue(keep))
            {
                // xl destroys the old domain once the target reports it runs.
                domain.Dispose();
                Directory.Delete(result.SourceDirectory, recursive: true);
            }

            return Finish(ctx, MigrationSendReport.From(result, kindName, spec.ToString()), parse.GetValue(json), parse.GetValue(report));
        }));
        return command;
    }

    private static ExitCode Finish(CliContext ctx, MigrationSendReport report, bool json, string? reportPage)
    {
        if (json)
        {
            ctx.Out.WriteLine(report.ToJson());
        }
        else if (report.Status == "completed")
        {
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"migrated ({report.Stream}): {report.Transferred} octets in {report.TotalTime:0.#} ms, downtime {report.Downtime:0.#} ms, {report.DirtySyncCount} passes, {report.Mbps:0.#} Mbit/s"));
        }

        // The page describes a failed migration too; a page that cannot be written is one line after the migration's.
        var problem = "";
        var written = reportPage is null || Reporting.MigrationReportPage.TryWrite(reportPage, report, out problem);
        if (report.Status != "completed")
        {
            ctx.Error.WriteLine($"xmig: error: {report.Error} (source {report.Source.State})");
            return ExitCode.UsageOrIo;
        }

        if (!written)
        {
            ctx.Error.WriteLine($"xmig: error: --report {reportPage}: {problem}");
            return ExitCode.UsageOrIo;
        }

        return ExitCode.Ok;
    }
}
