using System.CommandLine;
using System.Globalization;
using Xmig.Domains;
using Xmig.Hosting;
using Xmig.Migration;
using Xmig.Restore;
using Xmig.Transport;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig migrate-receive [--listen ADDR:PORT] --into DIR [--run] [--checkpointed auto|no|yes]</c>: receives one
/// migration over xl's channel (as <c>xl migrate-receive</c>), from a TCP connection on exactly ADDR:PORT or on
/// standard input/output. The stream kind is detected. Without <c>--run</c> the domain is persisted paused; with it
/// this process hosts it as <c>xmig domain run</c> does.
/// </summary>
internal static class MigrateReceiveCommand
{
    public static Command Create(CliContext ctx)
    {
        var listen = new Option<string?>("--listen", "-l") { Description = "ADDR:PORT to listen on (only that address; port 0 picks one, printed on stderr). Without it: standard input/output." };
        var into = new Option<string>("--into") { Description = "Directory to create for the received domain (must not exist, or be empty).", Required = true };
        var run = new Option<bool>("--run") { Description = "Host the received domain (as 'xmig domain run') instead of persisting it paused." };
        var workload = new Option<string>("--workload") { Description = "With --run: the guest's workload.", DefaultValueFactory = _ => "idle" };
        var checkpointed = new Option<string>("--checkpointed") { Description = "auto (default), no (Xen's fix), yes (Xen's checkpointed receiver).", DefaultValueFactory = _ => "auto" };
        checkpointed.AcceptOnlyFromAmong("auto", "no", "yes");
        var maxMemory = new Option<string>("--max-memory") { Description = "Bound on guest-physical space.", DefaultValueFactory = _ => "32GiB" };
        var timeout = new Option<int>("--accept-timeout") { Description = "Seconds to wait for the sender to connect.", DefaultValueFactory = _ => 300 };
        var noDigest = new Option<bool>("--no-digest") { Description = "Do not digest the received memory (a pass over all of it after \"ready\"): for timing, as QEMU reports none." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (status, stream kind, sender generation, the destination's memory_sha256)." };
        var stall = new Option<double>("--stall-timeout") { Description = "Seconds the sender may send nothing (mid-stream, or before GO) before the migration is abandoned (nothing is kept).", DefaultValueFactory = _ => 60 };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var replica = new Option<bool>("--replica", "-r") { Description = "Be the secondary of 'xmig replicate' (as 'xl migrate-receive -r'): acknowledge each checkpoint, take over from the last complete one when the primary is gone, and host the domain." };
        var colo = new Option<bool>("--colo") { Description = "With --replica: COLO; the secondary's guest runs between checkpoints under --workload." };
        var heartbeat = new Option<int>("--heartbeat") { Description = "With --replica: milliseconds of silence after a complete checkpoint that make the secondary take over (default 1000, Xen's).", DefaultValueFactory = _ => 1000 };
        var logFile = new Option<string?>("--log") { Description = "With --replica: a JSON-lines log of the checkpoints committed and the takeover.", HelpName = "FILE" };
        var command = new Command("migrate-receive", "Receive one live migration over xl's migration channel (as 'xl migrate-receive'), or with --replica be the secondary of a replication. SIGINT or SIGTERM before GO abandons it and keeps nothing.")
        {
            listen, into, run, workload, checkpointed, maxMemory, timeout, stall, json, noDigest, verbose, replica, colo, heartbeat, logFile,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), giveUp: false, interruption =>
        {
            var target = parse.GetValue(into)!;
            if (parse.GetValue(stall) is var stallSeconds && !(stallSeconds > 0 && stallSeconds <= int.MaxValue / 1000))
            {
                return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--stall-timeout: '{stallSeconds}' is not a positive number of seconds"));
            }

            var address = parse.GetValue(listen);
            if (address is null && parse.GetValue(json))
            {
                return EngineCommand.Usage(ctx, "--json needs --listen (standard output carries the channel)");
            }

            if (!WorkloadSpec.TryParse(parse.GetValue(workload), out var spec, out var problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            if (!ByteSize.TryParse(parse.GetValue(maxMemory), out var bound))
            {
                return EngineCommand.Usage(ctx, $"--max-memory \"{parse.GetValue(maxMemory)}\" is not a size");
            }

            var options = new MigrationReceiveOptions
            {
                Checkpointed = parse.GetValue(checkpointed) switch
                {
                    "no" => CheckpointedMode.No,
                    "yes" => CheckpointedMode.Yes,
                    _ => CheckpointedMode.Auto,
                },
                MaxGuestPhysicalBytes = bound,
                StallTimeout = TimeSpan.FromSeconds(stallSeconds),
                Digest = !parse.GetValue(noDigest),
            };

            // What a receiver killed with SIGKILL left beside the target (nothing else leaves one).
            EngineCommand.RemoveStaleStaging(ctx, target);
            if (parse.GetValue(replica))
            {
                if (address is null)
                {
                    return EngineCommand.Usage(ctx, "--replica needs --listen (the back channel shares the connection)");
                }

                if (parse.GetValue(heartbeat) is < 1 or > 3_600_000)
                {
                    return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--heartbeat: '{parse.GetValue(heartbeat)}' is not a number of milliseconds from 1 to 3600000"));
                }

                return ReplicaReceive(ctx, parse, address, target, spec, bound, stallSeconds, parse.GetValue(timeout), parse.GetValue(colo), parse.GetValue(heartbeat), parse.GetValue(logFile), parse.GetValue(json), interruption);
            }

            if (parse.GetValue(colo) || parse.GetValue(logFile) is not null)
            {
                return EngineCommand.Usage(ctx, $"{(parse.GetValue(colo) ? "--colo" : "--log")} is a replication option: give --replica too");
            }
            var receiver = new MigrationReceiver(options, line => ctx.Error.WriteLine(line));
            DomainHost? hosted = null;
            Action<SimulatedDomain>? start = parse.GetValue(run)
                ? domain =>
                {
                    hosted = new DomainHost(domain, spec, 1, line => ctx.Error.WriteLine(line));
                    hosted.Start();
                }
            : null;

            MigrationReceiveResult result;
            if (address is null)
            {
                using var channel = new XlMigrationChannel(Xmig.IO.PipeTuning.OpenStandardInput(), Xmig.IO.PipeTuning.OpenStandardOutput(), XlChannelRole.Receiver);
                result = receiver.Run(channel, target, start, interruption.Token);
            }
            else
            {
                if (!ChannelEndpoint.TryParse(address, out var host, out var port, out problem))
                {
                    return EngineCommand.Usage(ctx, problem);
                }

                // Refuse a directory in the way before anyone connects.
                DomainDirectory.Discard(DomainDirectory.CreateWorkingDirectory(target));
                using var socket = ChannelEndpoint.AcceptOne(host, port,
                    bound => ctx.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"migration target: listening on {bound}")),
                    TimeSpan.FromSeconds(parse.GetValue(timeout)), interruption.Token);
                using var network = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
                using var channel = new XlMigrationChannel(network, network, XlChannelRole.Receiver);
                result = receiver.Run(channel, target, start, interruption.Token);
            }

            // From here a hosted domain takes SIGINT/SIGTERM as 'domain run' does (stop and persist).
            interruption.Dispose();

            if (parse.GetValue(json))
            {
                ctx.Out.WriteLine(MigrationReceiveReport.From(result).ToJson());
                ctx.Out.Flush();
            }
            else if (result.Completed)
            {
                ctx.Error.WriteLine($"migration target: received {result.StreamKind} stream from {result.SenderGeneration} into {result.Directory}: {result.Digest}");
            }

            if (!result.Completed)
            {
                ctx.Error.WriteLine(interruption.Received is not null && !Directory.Exists(target)
                    ? interruption.Line(result.Error ?? "the migration was cancelled")
                    : $"xmig: error: {result.Error}");
                return ExitCode.UsageOrIo;
            }

            if (hosted is { } h)
            {
                using (h)
                {
                    return DomainRunCommand.RunUntilExit(ctx, h);
                }
            }

            return ExitCode.Ok;
        }));
        return command;
    }

    /// <summary>The secondary: one replication, then (after a takeover) the domain hosted until told to stop.</summary>
    private static ExitCode ReplicaReceive(CliContext ctx, ParseResult parse, string address, string target, WorkloadSpec spec, ulong bound, double stallSeconds, int acceptTimeout, bool colo, int heartbeatMs, string? logPath, bool json, Interruption interruption)
    {
        if (!ChannelEndpoint.TryParse(address, out var host, out var port, out var problem))
        {
            return EngineCommand.Usage(ctx, problem);
        }

        using var log = logPath is null ? Replication.ReplicationLog.None : Replication.ReplicationLog.Open(logPath);
        var receiver = new Replication.ReplicaReceiver(new Replication.ReplicaOptions
        {
            MaxGuestPhysicalBytes = bound,
            StallTimeout = TimeSpan.FromSeconds(stallSeconds),
            Heartbeat = TimeSpan.FromMilliseconds(heartbeatMs),
            Colo = colo,
            Workload = spec,
        }, log, ctx.Error.WriteLine);
        DomainHost? hosted = null;
        void Start(SimulatedDomain domain)
        {
            hosted = new DomainHost(domain, spec, 1, line => ctx.Error.WriteLine(line));
            hosted.Start();
        }

        Replication.ReplicaResult result;
        using (var socket = ChannelEndpoint.AcceptOne(host, port,
            endpoint => ctx.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"replication secondary: listening on {endpoint}")),
            TimeSpan.FromSeconds(acceptTimeout), interruption.Token))
        {
            socket.NoDelay = true;
            using var network = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
            using var channel = new XlMigrationChannel(network, network, XlChannelRole.Receiver);
            result = receiver.Run(channel, target, Start, interruption.Token);
        }

        interruption.Dispose();
        var ok = result.Status is "failover" or "switchover" or "detached";
        var code = ok ? ExitCode.Ok : ExitCode.UsageOrIo;
        if (json)
        {
            ctx.Out.WriteLine(ReplicaJson(result, (int)code));
            ctx.Out.Flush();
        }

        if (!ok)
        {
            ctx.Error.WriteLine(interruption.Received is not null ? interruption.Line(result.Error ?? "stopped") : $"xmig: error: {result.Error}");
            return code;
        }

        if (hosted is { } h)
        {
            using (h)
            {
                return DomainRunCommand.RunUntilExit(ctx, h);
            }
        }

        return code;
    }

    private static string ReplicaJson(Replication.ReplicaResult result, int exitCode)
    {
        using var buffer = new MemoryStream();
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteBoolean("ok", exitCode == 0);
            json.WriteNumber("exit_code", exitCode);
            json.WriteString("status", result.Status);
            if (result.Error is { } error)
            {
                json.WriteStartObject("error");
                json.WriteString("message", error);
                json.WriteNull("record");
                json.WriteNull("index");
                json.WriteNull("offset");
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("error");
            }

            json.WriteNumber("checkpoint", result.Checkpoint);
            json.WriteString("digest", result.Digest);
            json.WriteNumber("epoch", result.Epoch);
            json.WriteString("directory", result.Directory);
            json.WriteString("stream", result.StreamKind);
            json.WriteString("end", result.End);
            json.WriteString("finish_reason", result.FinishReason);
            json.WriteNumber("acknowledged", result.Acknowledged);
            json.WriteNumber("received", result.Received);
            json.WriteNumber("total-time", Math.Round(result.TotalTimeMs, 3));
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
