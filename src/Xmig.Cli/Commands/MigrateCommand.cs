using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Xmig.Cli.Progress;
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
        var stall = new Option<double>("--stall-timeout") { Description = "Seconds a blocked write to the receiver, or a wait for its banner or \"ready\", may last before the migration is abandoned (the source runs on).", DefaultValueFactory = _ => 60 };
        var report = new Option<string?>("--report") { Description = "Also write FILE.html: one self-contained page with the rounds as charts, the downtime, the policy and the figures.", HelpName = "FILE.html" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var noDigest = new Option<bool>("--no-digest") { Description = "With --json: do not digest the source at pause (a pass over all of its memory before GO)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No per-round lines or live table on stderr." };
        var policy = new Option<string>("--policy") { Description = "When pre-copy stops: downtime (default: once the dirty set fits --downtime-limit at the measured bandwidth, as QEMU), xen (at most 5 passes, below 50 dirty pages), xen-legacy (29 passes, 3x memory, 50 pages).", DefaultValueFactory = _ => "downtime" };
        policy.AcceptOnlyFromAmong([.. PrecopyPolicies.Names]);
        var downtimeLimit = new Option<double?>("--downtime-limit") { Description = "The downtime policy's target in ms (default 300, as QEMU's downtime-limit).", HelpName = "MS" };
        var maxIterations = new Option<int?>("--max-iterations") { Description = "Stop pre-copy after N passes, the first full pass included (any policy).", HelpName = "N" };
        var timeout = new Option<double?>("--timeout") { Description = "Bound on the migration, in seconds; see --on-timeout.", HelpName = "S" };
        var onTimeout = new Option<string?>("--on-timeout") { Description = "abort (default: the source keeps running) or switchover (cut pre-copy, pause, send the rest)." };
        onTimeout.AcceptOnlyFromAmong("abort", "switchover");
        var maxBandwidth = new Option<string?>("--max-bandwidth") { Description = "Hold the stream to RATE: 12MiB/s, 64M (octets per second, as QEMU) or 100mbit (bits, as tc).", HelpName = "RATE" };
        var autoConverge = new Option<bool>("--auto-converge") { Description = "Throttle the guest while it dirties memory faster than the stream carries it (QEMU's auto-converge)." };
        var throttleInitial = new Option<int?>("--cpu-throttle-initial") { Description = "With --auto-converge: the first throttle step in percent (default 20).", HelpName = "PCT" };
        var throttleIncrement = new Option<int?>("--cpu-throttle-increment") { Description = "With --auto-converge: each later step in percent (default 10).", HelpName = "PCT" };
        var command = new Command("migrate", "Live-migrate a domain over xl's migration channel (as 'xl migrate'). SIGINT or SIGTERM before the receiver is cleared to unpause abandons it: the source runs on, unchanged.")
        {
            dir, target, stream, workload, seed, keep, stall, json, noDigest, report, verbose, quiet,
            policy, downtimeLimit, maxIterations, timeout, onTimeout, maxBandwidth, autoConverge, throttleInitial, throttleIncrement,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), giveUp: false, interruption =>
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

            if (parse.GetValue(stall) is var stallSeconds && !(stallSeconds > 0 && stallSeconds <= int.MaxValue / 1000))
            {
                return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--stall-timeout: '{stallSeconds}' is not a positive number of seconds"));
            }

            var settings = Settings(parse, policy, downtimeLimit, maxIterations, timeout, onTimeout, maxBandwidth, autoConverge, throttleInitial, throttleIncrement, out problem);
            if (settings is null)
            {
                return EngineCommand.Usage(ctx, problem);
            }

            // A hosted domain: its host owns it and runs the migration.
            if (DomainControl.TryConnect(path, out var probe))
            {
                probe.Dispose();
                if (stdio)
                {
                    return EngineCommand.Usage(ctx, $"{path} is hosted by 'xmig domain run': migrate it to HOST:PORT (its host connects there)");
                }

                var answer = DomainControl.Request(path, string.Create(CultureInfo.InvariantCulture, $"migrate {to} {kindName} {(parse.GetValue(noDigest) ? "nodigest" : "digest")} stall={stallSeconds} settings {settings.ToJson()}"),
                    line =>
                    {
                        if (!parse.GetValue(quiet) || !line.StartsWith("migration: round ", StringComparison.Ordinal))
                        {
                            ctx.Error.WriteLine(line);
                        }
                    },
                    interruption.Token);
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

                return Finish(ctx, hosted, parse.GetValue(json), interruption, parse.GetValue(report));
            }

            using var domain = SimulatedDomain.Open(path, writable: true);
            domain.StartWorkload(spec, parse.GetValue(seed));
            MigrationSendResult result;
            try
            {
                var options = settings.ToSendOptions(kind, parse.GetValue(json) && !parse.GetValue(noDigest), out problem)! with { StallTimeout = TimeSpan.FromSeconds(stallSeconds) };
                Action<string> log = ctx.Error.WriteLine;
                var sender = new MigrationSender(domain, options, line => log(line));
                var title = $"migrating {path} to {to} (policy {settings.Policy})";
                MigrationSendResult Send(XlMigrationChannel channel) => MigrationLiveView.Run(ctx, title, parse.GetValue(quiet), (round, lines) =>
                {
                    sender.Round = round;
                    log = lines;
                    return sender.Run(channel, interruption.Token);
                });
                if (stdio)
                {
                    using var channel = new XlMigrationChannel(Xmig.IO.PipeTuning.OpenStandardInput(), Xmig.IO.PipeTuning.OpenStandardOutput(), XlChannelRole.Sender);
                    result = Send(channel);
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
                        return Finish(ctx, MigrationSendReport.From(result, kindName, spec.ToString()), parse.GetValue(json), interruption, parse.GetValue(report));
                    }

                    using (socket)
                    using (var network = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false))
                    using (var channel = new XlMigrationChannel(network, network, XlChannelRole.Sender))
                    {
                        result = Send(channel);
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

            return Finish(ctx, MigrationSendReport.From(result, kindName, spec.ToString()), parse.GetValue(json), interruption, parse.GetValue(report));
        }));
        return command;
    }

    /// <summary>The convergence options as one <see cref="MigrationSettings"/>; null, with the reason, for a combination that says nothing or contradicts itself.</summary>
    private static MigrationSettings? Settings(
        ParseResult parse,
        Option<string> policy,
        Option<double?> downtimeLimit,
        Option<int?> maxIterations,
        Option<double?> timeout,
        Option<string?> onTimeout,
        Option<string?> maxBandwidth,
        Option<bool> autoConverge,
        Option<int?> throttleInitial,
        Option<int?> throttleIncrement,
        out string problem)
    {
        problem = "";
        var name = parse.GetValue(policy)!;
        var limit = parse.GetValue(downtimeLimit);
        if (limit is { } l && name != "downtime")
        {
            problem = $"--downtime-limit is the downtime policy's target; --policy {name} does not use it";
            return null;
        }

        if (limit is <= 0 or > 3_600_000)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"--downtime-limit: '{limit}' is not a number of milliseconds above 0");
            return null;
        }

        if (parse.GetValue(maxIterations) is < 1)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"--max-iterations: '{parse.GetValue(maxIterations)}' is not a positive integer");
            return null;
        }

        var seconds = parse.GetValue(timeout);
        if (seconds is <= 0 or > 86_400 * 365)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"--timeout: '{seconds}' is not a positive number of seconds");
            return null;
        }

        var action = parse.GetValue(onTimeout);
        if (action is not null && seconds is null)
        {
            problem = "--on-timeout says what --timeout does; give --timeout S too";
            return null;
        }

        long? bandwidth = null;
        if (parse.GetValue(maxBandwidth) is { } rate)
        {
            if (!ByteSize.TryParseRate(rate, out var bps))
            {
                problem = $"--max-bandwidth: '{rate}' is not a rate (12MiB/s, 64M, 100mbit)";
                return null;
            }

            bandwidth = bps;
        }

        var converge = parse.GetValue(autoConverge);
        var initial = parse.GetValue(throttleInitial);
        var increment = parse.GetValue(throttleIncrement);
        if (!converge && (initial is not null || increment is not null))
        {
            problem = $"{(initial is not null ? "--cpu-throttle-initial" : "--cpu-throttle-increment")} takes effect only with --auto-converge";
            return null;
        }

        if (initial is < 1 or > 99 || increment is < 1 or > 99)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"{(initial is < 1 or > 99 ? "--cpu-throttle-initial" : "--cpu-throttle-increment")}: '{(initial is < 1 or > 99 ? initial : increment)}' is not a percentage from 1 to 99");
            return null;
        }

        return new MigrationSettings
        {
            Policy = name,
            DowntimeLimitMs = limit ?? DowntimePrecopyPolicy.DefaultLimit.TotalMilliseconds,
            MaxIterations = parse.GetValue(maxIterations),
            TimeoutSeconds = seconds,
            OnTimeout = action ?? "abort",
            MaxBandwidth = bandwidth,
            AutoConverge = converge,
            ThrottleInitial = initial ?? 20,
            ThrottleIncrement = increment ?? 10,
        };
    }

    private static ExitCode Finish(CliContext ctx, MigrationSendReport report, bool json, Interruption interruption, string? reportPage)
    {
        interruption.End();
        if (json)
        {
            ctx.Out.WriteLine(report.ToJson());
        }
        else if (report.Status == "completed")
        {
            var throttle = report.CpuThrottlePercentage > 0 ? string.Create(CultureInfo.InvariantCulture, $", throttled up to {report.CpuThrottlePercentage}%") : "";
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"migrated ({report.Stream}, policy {report.Policy}, stopped: {report.StopReason ?? "-"}): {report.Transferred} octets in {report.TotalTime:0.#} ms, downtime {report.Downtime:0.#} ms, {report.DirtySyncCount} passes, {report.Mbps:0.#} Mbit/s{throttle}"));
        }

        // The page describes a failed migration too; a page that cannot be written is one line after the migration's.
        var problem = "";
        var written = reportPage is null || Reporting.MigrationReportPage.TryWrite(reportPage, report, out problem);
        if (report.Status != "completed")
        {
            ctx.Error.WriteLine(interruption.Received is not null && report.Source.State == "running"
                ? interruption.Line($"{report.Error} (source {report.Source.State})")
                : $"xmig: error: {report.Error} (source {report.Source.State})");
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
