using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Hosting;
using Xmig.Replication;
using Xmig.Save;
using Xmig.Transport;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig replicate DIR HOST:PORT</c>: the primary of checkpoint replication (Remus; COLO with <c>--colo</c>), as
/// <c>xl remus</c>, to <c>xmig migrate-receive --replica</c>. The first pass is a live migration; then a checkpoint
/// every <c>--interval</c>. SIGINT or SIGTERM ends it as <c>--on-stop</c> says (a second signal abandons it: the guest
/// runs on here).
/// </summary>
internal static class ReplicateCommand
{
    public static Command Create(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory (not running; it runs here under --workload)." };
        var target = new Argument<string>("TARGET") { Description = "HOST:PORT of 'xmig migrate-receive --replica --listen'." };
        var stream = new Option<string>("--stream", "-s") { Description = "Stream kind: xl (default, as xl remus), libxl, legacy-4.1.", DefaultValueFactory = _ => "xl" };
        stream.AcceptOnlyFromAmong("xl", "libxl", "legacy-4.1");
        var compress = new Option<bool>("--compress") { Description = "Legacy streams: compress checkpoints after the first (format B, legacy-stream.md §5.6)." };
        var interval = new Option<int>("--interval", "-i") { Description = "Milliseconds the guest runs between checkpoints (default 200, as xl remus).", DefaultValueFactory = _ => 200 };
        var noWait = new Option<bool>("--no-wait") { Description = "Resume the guest after each checkpoint at once, not after the secondary's acknowledgement." };
        var heartbeat = new Option<int>("--heartbeat") { Description = "Milliseconds an acknowledgement (or a blocked write) may take before the secondary is taken for lost.", DefaultValueFactory = _ => 1000 };
        var stopAfter = new Option<int>("--stop-after") { Description = "End after checkpoint N, the last one marked (then --on-stop)." };
        var onStop = new Option<string>("--on-stop") { Description = "What a controlled end does: detach (default: the primary keeps the domain, the secondary discards its copy) or switchover (the secondary runs it, the primary stops its own).", DefaultValueFactory = _ => "detach" };
        onStop.AcceptOnlyFromAmong("detach", "switchover");
        var colo = new Option<bool>("--colo") { Description = "COLO: the secondary's guest runs between checkpoints; its dirty pages are merged into the next checkpoint." };
        var reconnect = new Option<bool>("--reconnect") { Description = "When the secondary is lost, wait for a new one at TARGET and start again with a full first pass." };
        var reconnectTimeout = new Option<double>("--reconnect-timeout") { Description = "With --reconnect: seconds to wait for a new secondary (default 300).", DefaultValueFactory = _ => 300 };
        var logFile = new Option<string?>("--log") { Description = "Write a JSON-lines log: a line per checkpoint sent (number, epoch, digest, octets, pause) and per acknowledgement.", HelpName = "FILE" };
        var workload = new Option<string>("--workload") { Description = "The guest's workload while it is replicated: idle, uniform:RATE, hotset:SIZE:RATE.", DefaultValueFactory = _ => "idle" };
        var seed = new Option<ulong>("--seed") { Description = "Workload seed.", DefaultValueFactory = _ => 1 };
        var keep = new Option<bool>("--keep-source") { Description = "After a switchover keep the source as DIR--migratedaway instead of destroying it." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document at the end." };
        var stall = new Option<double>("--stall-timeout") { Description = "Seconds a blocked write during the first pass, or a wait of the final handshake, may last.", DefaultValueFactory = _ => 60 };
        var maxBandwidth = new Option<string?>("--max-bandwidth") { Description = "Hold the stream to RATE (12MiB/s, 64M, 100mbit).", HelpName = "RATE" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("replicate", "Replicate a running domain to a standby (Remus, as 'xl remus'; COLO with --colo), checkpoint after checkpoint, acknowledged by the secondary.")
        {
            dir, target, stream, compress, interval, noWait, heartbeat, stopAfter, onStop, colo, reconnect, reconnectTimeout, logFile, workload, seed, keep, json, stall, maxBandwidth, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var path = parse.GetValue(dir)!;
            var kindName = parse.GetValue(stream)!;
            if (!ChannelEndpoint.TryParse(parse.GetValue(target)!, out var host, out var port, out var problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            if (!WorkloadSpec.TryParse(parse.GetValue(workload), out var spec, out problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            if (!DomainHost.TryParseStream(kindName, out var kind))
            {
                return EngineCommand.Usage(ctx, $"--stream {kindName} is not a stream kind");
            }

            if (parse.GetValue(compress) && kind != SaveStreamKind.Legacy41)
            {
                return EngineCommand.Usage(ctx, $"--compress is legacy's format B; --stream {kindName} does not have it");
            }

            if (parse.GetValue(colo) && kind == SaveStreamKind.Legacy41)
            {
                return EngineCommand.Usage(ctx, "--colo needs a v2 stream (its back channel is v2's, v2-stream.md §6.6); --stream legacy-4.1 has none");
            }

            if (parse.GetValue(colo) && parse.GetValue(noWait))
            {
                return EngineCommand.Usage(ctx, "--no-wait contradicts --colo (COLO resumes the primary only on the secondary's SVM_READY)");
            }

            if (parse.GetValue(interval) is < 0 or > 3_600_000)
            {
                return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--interval: '{parse.GetValue(interval)}' is not a number of milliseconds from 0 to 3600000"));
            }

            if (parse.GetValue(heartbeat) is < 1 or > 3_600_000)
            {
                return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--heartbeat: '{parse.GetValue(heartbeat)}' is not a number of milliseconds from 1 to 3600000"));
            }

            if (parse.GetValue(stopAfter) < 0)
            {
                return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--stop-after: '{parse.GetValue(stopAfter)}' is not a non-negative integer"));
            }

            if (parse.GetValue(stall) is var stallSeconds && !(stallSeconds > 0 && stallSeconds <= int.MaxValue / 1000))
            {
                return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture, $"--stall-timeout: '{stallSeconds}' is not a positive number of seconds"));
            }

            long? bandwidth = null;
            if (parse.GetValue(maxBandwidth) is { } rate)
            {
                if (!ByteSize.TryParseRate(rate, out var bps))
                {
                    return EngineCommand.Usage(ctx, $"--max-bandwidth: '{rate}' is not a rate (12MiB/s, 64M, 100mbit)");
                }

                bandwidth = bps;
            }

            if (DomainControl.TryConnect(path, out var probe))
            {
                probe.Dispose();
                return EngineCommand.Usage(ctx, $"{path} is hosted by 'xmig domain run': stop it first ('xmig domain stop {path}'), then replicate it with --workload");
            }

            var options = new ReplicationOptions
            {
                Kind = kind,
                Compress = parse.GetValue(compress),
                Interval = TimeSpan.FromMilliseconds(parse.GetValue(interval)),
                NoWait = parse.GetValue(noWait),
                Heartbeat = TimeSpan.FromMilliseconds(parse.GetValue(heartbeat)),
                StopAfter = parse.GetValue(stopAfter),
                OnStop = parse.GetValue(onStop) == "switchover" ? StopAction.Switchover : StopAction.Detach,
                Colo = parse.GetValue(colo),
                Reconnect = parse.GetValue(reconnect),
                StallTimeout = TimeSpan.FromSeconds(stallSeconds),
                First = new Migration.MigrationSendOptions { MaxBandwidth = bandwidth, Save = new SaveOptions { Policy = new DowntimePrecopyPolicy() } },
            };

            using var log = parse.GetValue(logFile) is { } logPath ? ReplicationLog.Open(logPath) : ReplicationLog.None;
            using var domain = SimulatedDomain.Open(path, writable: true);
            domain.StartWorkload(spec, parse.GetValue(seed));
            var primary = new ReplicationPrimary(domain, options, log, ctx.Error.WriteLine);
            using var abandon = new CancellationTokenSource();
            var signals = 0;
            void OnSignal(PosixSignalContext signal)
            {
                signal.Cancel = true;
                if (Interlocked.Increment(ref signals) == 1)
                {
                    ctx.Error.WriteLine($"replication primary: {signal.Signal}: ending with a last checkpoint ({parse.GetValue(onStop)}); a second signal abandons the replication");
                    primary.RequestStop();
                }
                else
                {
                    abandon.Cancel();
                }
            }

            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            var waitNew = TimeSpan.FromSeconds(parse.GetValue(reconnectTimeout));
            ReplicationResult result;
            try
            {
                result = primary.Run((session, token) => Connect(host, port, session, waitNew, primary, token), abandon.Token);
            }
            finally
            {
                domain.StopWorkload();
            }

            if (result.Source == Migration.SourceState.MigratedAway && !parse.GetValue(keep))
            {
                domain.Dispose();
                Directory.Delete(result.SourceDirectory, recursive: true);
            }
            else if (result.Source == Migration.SourceState.Running)
            {
                domain.Save();
            }

            var ok = result.Status is "switchover" or "detached";
            var code = ok ? ExitCode.Ok : ExitCode.UsageOrIo;
            if (parse.GetValue(json))
            {
                ctx.Out.WriteLine(ToJson(result, (int)code));
                ctx.Out.Flush();
            }
            else if (ok)
            {
                ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"replication {result.Status} after {result.Checkpoints} checkpoints ({result.Acknowledged} acknowledged), epoch {result.Epoch}, {result.Bytes} octets in {result.TotalTimeMs:0} ms"));
                ctx.Out.Flush();
            }

            if (!ok)
            {
                ctx.Error.WriteLine($"xmig: error: {result.Error}");
            }

            return code;
        }));
        return command;
    }

    /// <summary>The channel to the secondary; after the first session, retried until one appears (or the wait ends).</summary>
    private static XlMigrationChannel? Connect(string host, int port, int session, TimeSpan wait, ReplicationPrimary primary, CancellationToken token)
    {
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            try
            {
                var socket = ChannelEndpoint.Connect(host, port, TimeSpan.FromSeconds(session == 1 ? 30 : 1));
                socket.NoDelay = true;
                var network = new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                return new XlMigrationChannel(network, network, XlChannelRole.Sender, network);
            }
            catch (IOException) when (session > 1 && DateTime.UtcNow < deadline && !token.IsCancellationRequested && !primary.StopRequested)
            {
                Thread.Sleep(200);
            }
            catch (IOException) when (session > 1)
            {
                return null;
            }
        }
    }

    private static string ToJson(ReplicationResult result, int exitCode)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteBoolean("ok", result.Status is "switchover" or "detached");
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

            json.WriteString("source", result.Source switch
            {
                Migration.SourceState.Running => "running",
                Migration.SourceState.MigratedAway => "migrated-away",
                _ => "undefined",
            });
            json.WriteNumber("epoch", result.Epoch);
            json.WriteNumber("sessions", result.Sessions);
            json.WriteNumber("checkpoints", result.Checkpoints);
            json.WriteNumber("acknowledged", result.Acknowledged);
            json.WriteString("digest", result.Digest);
            json.WriteNumber("transferred", result.Bytes);
            json.WriteNumber("total-time", Math.Round(result.TotalTimeMs, 3));
            json.WriteStartArray("pauses-ms");
            foreach (var pause in result.PausesMs)
            {
                json.WriteNumberValue(Math.Round(pause, 3));
            }

            json.WriteEndArray();
            json.WriteStartArray("checkpoint-bytes");
            foreach (var size in result.CheckpointBytes)
            {
                json.WriteNumberValue(size);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
