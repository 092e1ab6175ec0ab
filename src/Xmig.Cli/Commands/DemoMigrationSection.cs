using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xmig.Domains;
using Xmig.Migration;
using Xmig.Save;
using Xmig.Transport;

namespace Xmig.Cli.Commands;

/// <summary>
/// The live half of <c>xmig demo</c>: a running HVM domain under a hot-set workload live-migrated from this process to
/// a second xmig process (<c>xmig migrate-receive</c>) over loopback, with its rounds and downtime; then the seed's bug
/// replayed live: a sender from before Xen 4.1 (legacy-4.0, no LAST_CHECKPOINT) to a receiver in <c>auto</c> and in
/// <c>yes</c>.
/// </summary>
internal static partial class DemoMigrationSection
{
    private const string Workload = "hotset:8MiB:64";
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    /// <summary>Runs the section; returns the number of failed checks.</summary>
    public static int Run(CliContext ctx, string dir)
    {
        var o = ctx.Out;
        var source = Path.Combine(dir, "live-source");
        CreateDomain(source, 64);
        o.WriteLine($"== 6. Live migration: a running HVM domain (64 MiB) under workload {Workload}, from this process to a");
        o.WriteLine("      second xmig process ('xmig migrate-receive') over 127.0.0.1, on xl's migration channel");
        o.WriteLine();
        o.WriteLine("  The guest keeps writing while its memory is sent; each round resends what it dirtied, until the");
        o.WriteLine("  rest fits the downtime limit (300 ms, as QEMU). Then it is paused, the rest sent, and the receiver");
        o.WriteLine("  says \"ready to unpause\": the downtime is the time in between.");
        o.WriteLine();
        var failures = 0;
        var live = Migrate(ctx, source, Path.Combine(dir, "live-destination"), SaveStreamKind.Xl, "auto", showRounds: true);
        var arrived = live.Sent.Completed && live.Received?.Status == "completed" && live.Sent.SourceDigest == live.Received.Destination.MemorySha256;
        failures += arrived ? 0 : 1;
        o.WriteLine();
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {(arrived ? "arrived" : "FAILED")}: {live.Sent.Iterations} rounds, {live.Sent.Transferred / 1048576.0:0.0} MiB in {live.Sent.TotalTimeMs:0} ms, downtime {live.Sent.DowntimeMs:0.0} ms (stopped: {live.Sent.StopReason})"));
        o.WriteLine($"  memory digest at the source when paused: {Short(live.Sent.SourceDigest)}, at the destination: {Short(live.Received?.Destination.MemorySha256)}");
        if (live.Error is { } error)
        {
            o.WriteLine("  " + error);
        }

        o.WriteLine();
        o.WriteLine("== 7. The seed's bug, live: an HVM domain sent by a Xen before 4.1 (legacy-4.0: it never writes");
        o.WriteLine("      LAST_CHECKPOINT), to receivers told nothing (auto) and told \"checkpointed\" (yes)");
        o.WriteLine();
        var seed = Path.Combine(dir, "seed-source");
        CreateDomain(seed, 32);
        var auto = Migrate(ctx, seed, Path.Combine(dir, "seed-auto"), SaveStreamKind.Legacy40, "auto", showRounds: false);
        var autoOk = auto.Sent.Completed && auto.Sent.SourceDigest == auto.Received?.Destination.MemorySha256;
        failures += autoOk ? 0 : 1;
        o.WriteLine($"  auto: {(autoOk ? "arrived, digest " + Short(auto.Received?.Destination.MemorySha256) + " equals the source's" : "FAILED: " + (auto.Sent.Error ?? auto.Error))}");
        o.WriteLine($"        (receiver: {auto.Received?.Checkpointed})");

        // The auto run moved the domain away; bring a fresh one for the second receiver.
        CreateDomain(seed, 32);
        var yes = Migrate(ctx, seed, Path.Combine(dir, "seed-yes"), SaveStreamKind.Legacy40, "yes", showRounds: false);
        var refused = !yes.Sent.Completed && yes.Sent.Source == SourceState.Running && Directory.Exists(seed) && !Directory.Exists(Path.Combine(dir, "seed-yes"));
        failures += refused ? 0 : 1;
        o.WriteLine($"  yes:  {(refused ? "refused, and the source keeps running; the receiver said:" : "UNEXPECTED: " + (yes.Sent.Error ?? "it completed"))}");
        if (yes.Received?.Error is { } why)
        {
            o.WriteLine("        " + why);
        }

        o.WriteLine();
        o.WriteLine("  Xen's receiver in 'yes' read the device-model record after the pages as one more page batch");
        o.WriteLine("  (\"Max batch size exceeded (1970103633)\": the text \"Qemu\" read as a count), or took the sender's");
        o.WriteLine("  silence for a failover and started a second copy. xmig in auto reads such a stream as one image.");
        return failures;
    }

    private static void CreateDomain(string directory, ulong mib)
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        Directory.CreateDirectory(directory);
        using var created = SimulatedDomain.Create(directory, new DomainSpec(GuestType.Hvm, mib << 20, 2, 42));
        created.Save();
    }

    private sealed record Outcome(MigrationSendResult Sent, MigrationReceiveReport? Received, string? Error);

    /// <summary>Migrates <paramref name="source"/> to a child <c>xmig migrate-receive</c>; returns both ends' reports.</summary>
    private static Outcome Migrate(CliContext ctx, string source, string destination, SaveStreamKind kind, string mode, bool showRounds)
    {
        using var receiver = StartReceiver(destination, mode);
        var port = ReadPort(receiver);
        if (port <= 0)
        {
            receiver.Kill(true);
            return new Outcome(new MigrationSendResult { Error = "the receiver did not start", Source = SourceState.Running }, null, "the receiver did not start");
        }

        if (!WorkloadSpec.TryParse(Workload, out var spec, out var problem))
        {
            throw new InvalidOperationException(problem);
        }

        MigrationSendResult sent;
        using (var domain = SimulatedDomain.Open(source, writable: true))
        {
            domain.StartWorkload(spec, 42);
            try
            {
                var options = new MigrationSettings().ToSendOptions(kind, digest: true, out problem)!;
                var sender = new MigrationSender(domain, options);
                if (showRounds)
                {
                    ctx.Out.WriteLine($"  {"round",-10} {"pages",7} {"MiB",7} {"ms",8} {"Mbit/s",7} {"dirtied",8} {"expected downtime",18}");
                    sender.Round = r => ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {(r.Paused ? r.Iteration + " paused" : r.Iteration.ToString(CultureInfo.InvariantCulture)),-10} {r.Pages,7} {r.Bytes / 1048576.0,7:0.0} {r.Duration.TotalMilliseconds,8:0.0} {r.BytesPerSecond * 8 / 1e6,7:0} {(r.Paused ? "-" : r.DirtyPages.ToString(CultureInfo.InvariantCulture)),8} {(r.Paused ? "-" : r.ExpectedDowntime is { } e ? e.TotalMilliseconds.ToString("0.0 ms", CultureInfo.InvariantCulture) : "?"),18}"));
                }

                using var socket = ChannelEndpoint.Connect("127.0.0.1", port, TimeSpan.FromSeconds(30));
                using var network = new NetworkStream(socket, ownsSocket: false);
                using var channel = new XlMigrationChannel(network, network, XlChannelRole.Sender);
                sent = sender.Run(channel);
            }
            finally
            {
                domain.StopWorkload();
            }
        }

        if (sent.Source == SourceState.MigratedAway && Directory.Exists(sent.SourceDirectory))
        {
            Directory.Delete(sent.SourceDirectory, recursive: true);
        }

        var stdout = receiver.StandardOutput.ReadToEndAsync();
        if (!receiver.WaitForExit(Bound))
        {
            receiver.Kill(true);
            return new Outcome(sent, null, "the receiver did not finish");
        }

        MigrationReceiveReport? received = null;
        try
        {
            received = JsonSerializer.Deserialize(stdout.Result, MigrationJson.Default.MigrationReceiveReport);
        }
        catch (JsonException)
        {
        }

        return new Outcome(sent, received, received is null ? "the receiver printed no report" : null);
    }

    private static Process StartReceiver(string destination, string mode)
    {
        // This program again: the native executable or the tool's apphost as it was started, else `dotnet Xmig.Cli.dll`
        // (under `dotnet Xmig.Cli.dll` itself, or a test host).
        var self = Environment.ProcessPath;
        var apphost = self is not null && Path.GetFileNameWithoutExtension(self) is "xmig" or "Xmig.Cli";
        var start = new ProcessStartInfo(apphost ? self! : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (!apphost)
        {
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Xmig.Cli.dll"));
        }

        foreach (var a in (ReadOnlySpan<string>)["migrate-receive", "--listen", "127.0.0.1:0", "--into", destination, "--checkpointed", mode, "--json"])
        {
            start.ArgumentList.Add(a);
        }

        return Process.Start(start)!;
    }

    /// <summary>The port from the receiver's "listening on 127.0.0.1:PORT" line, or -1.</summary>
    private static int ReadPort(Process receiver)
    {
        var port = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                port.TrySetResult(-1);
                return;
            }

            var m = PortLine().Match(e.Data);
            if (m.Success)
            {
                port.TrySetResult(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            }
        };
        receiver.BeginErrorReadLine();
        return port.Task.Wait(Bound) ? port.Task.Result : -1;
    }

    private static string Short(string? digest) => digest is { Length: >= 16 } ? digest[..16] : "-";

    [GeneratedRegex(@"listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex PortLine();
}
