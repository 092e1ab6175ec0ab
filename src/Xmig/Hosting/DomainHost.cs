using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Domains;
using Xmig.Migration;
using Xmig.Save;
using Xmig.Transport;

namespace Xmig.Hosting;

/// <summary>What a hosted domain is doing (<c>xmig domain status</c>).</summary>
internal enum HostState
{
    Running,
    Paused,
    Migrating,
    MigratedAway,
    Stopped,
}

/// <summary>The status document of a hosted domain.</summary>
internal sealed class HostStatus
{
    public string State { get; set; } = "";

    public string Directory { get; set; } = "";

    public string Type { get; set; } = "";

    public int Pid { get; set; }

    public double UptimeSeconds { get; set; }

    public long PagesWritten { get; set; }

    public string Workload { get; set; } = "";

    public bool LogDirty { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(HostStatus))]
internal sealed partial class HostJson : JsonSerializerContext;

/// <summary>
/// The simulated hypervisor for one domain (<c>xmig domain run</c>): the guest runs and its workload writes its
/// memory until it is told otherwise on the control socket (<see cref="DomainControl"/>). The host owns the domain,
/// so a migration of a hosted domain is run here, asked for by <c>xmig migrate</c> over the socket.
/// </summary>
internal sealed class DomainHost : IDisposable
{
    private readonly SimulatedDomain _domain;
    private readonly WorkloadSpec _workload;
    private readonly ulong _seed;
    private readonly Action<string>? _log;
    private readonly Stopwatch _uptime = new();
    private readonly ManualResetEventSlim _exited = new(false);
    private readonly Lock _gate = new();
    private Socket? _listener;
    private Thread? _accept;
    private HostState _state;
    private CancellationTokenSource? _migration;
    private bool _stopAfterMigration;

    public DomainHost(SimulatedDomain domain, WorkloadSpec workload, ulong seed, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(domain);
        _domain = domain;
        _workload = workload;
        _seed = seed;
        _log = log;
    }

    public HostState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Starts the guest (unpaused, its workload running) and the control socket.</summary>
    public void Start()
    {
        _listener = DomainControl.Listen(_domain.Directory);
        if (_domain.IsPaused)
        {
            _domain.Unpause();
        }

        _domain.StartWorkload(_workload, _seed);
        _state = HostState.Running;
        _uptime.Start();
        _accept = new Thread(AcceptLoop) { IsBackground = true, Name = "xmig domain control" };
        _accept.Start();
        _log?.Invoke($"domain host: {_domain.Directory} running ({_workload}), control socket {DomainControl.SocketPath(_domain.Directory)}");
    }

    /// <summary>Blocks until the domain was stopped or migrated away.</summary>
    public void WaitForExit() => _exited.Wait();

    /// <summary>
    /// Stops the guest and persists it (the control <c>stop</c>, SIGTERM, Ctrl-C). False when it is migrating, unless
    /// <paramref name="cancelMigration"/> (a signal): then the migration is cancelled (before GO the source resumes
    /// unchanged) and the domain is stopped once it has ended.
    /// </summary>
    public bool Stop(bool cancelMigration = false)
    {
        lock (_gate)
        {
            if (_state is HostState.Migrating)
            {
                if (!cancelMigration || _migration is not { } migration)
                {
                    return false;
                }

                _stopAfterMigration = true;
                _ = Task.Run(() =>
                {
                    try
                    {
                        migration.Cancel();
                    }
                    catch (ObjectDisposedException)
                    {
                    }
                });
                return true;
            }

            if (_state is HostState.Stopped or HostState.MigratedAway)
            {
                return true;
            }

            _domain.Pause();
            _domain.StopWorkload();
            if (_domain.LogDirty)
            {
                _domain.DisableLogDirty();
            }

            _domain.Save();
            _state = HostState.Stopped;
        }

        Exit();
        return true;
    }

    public HostStatus Status()
    {
        lock (_gate)
        {
            return new HostStatus
            {
                State = _state switch
                {
                    HostState.Running => "running",
                    HostState.Paused => "paused",
                    HostState.Migrating => "migrating",
                    HostState.MigratedAway => "migrated-away",
                    _ => "stopped",
                },
                Directory = _domain.Directory,
                Type = _domain.GuestType == GuestType.Hvm ? "hvm" : "pv",
                Pid = Environment.ProcessId,
                UptimeSeconds = Math.Round(_uptime.Elapsed.TotalSeconds, 3),
                PagesWritten = _domain.Workload?.PagesWritten ?? 0,
                Workload = _workload.ToString(),
                LogDirty = _domain.LogDirty,
            };
        }
    }

    public void Dispose()
    {
        Exit();
        _exited.Dispose();
    }

    private void Exit()
    {
        var listener = Interlocked.Exchange(ref _listener, null);
        if (listener != null)
        {
            listener.Dispose();
            try
            {
                // The socket lives in the domain directory, wherever it is now.
                File.Delete(DomainControl.SocketPath(_domain.Directory));
            }
            catch (IOException)
            {
            }
        }

        try
        {
            _exited.Set();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void AcceptLoop()
    {
        while (_listener is { } listener)
        {
            Socket client;
            try
            {
                client = listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => Serve(client));
        }
    }

    private void Serve(Socket client)
    {
        using (client)
        using (var stream = new NetworkStream(client, ownsSocket: false))
        {
            void Reply(string line)
            {
                try
                {
                    stream.Write(Encoding.UTF8.GetBytes(line.ReplaceLineEndings(" ") + "\n"));
                }
                catch (IOException)
                {
                    // The client went away; what it asked for still happens.
                }
            }

            string? request;
            using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
            try
            {
                client.ReceiveTimeout = 10_000;
                request = DomainControl.ReadLine(reader);
            }
            catch (IOException)
            {
                return;
            }

            var words = (request ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (words.FirstOrDefault())
            {
                case "status":
                    Reply("ok " + JsonSerializer.Serialize(Status(), HostJson.Default.HostStatus));
                    break;
                case "pause":
                    Reply(SetPaused(true));
                    break;
                case "unpause":
                    Reply(SetPaused(false));
                    break;
                case "stop":
                    Reply(Stop() ? "ok stopped" : "error the domain is migrating");
                    break;
                case "migrate" when words.Length >= 3:
                    // migrate HOST:PORT STREAM [digest] [settings {json}]: the JSON is the rest of the line.
                    var at = request!.IndexOf(" settings ", StringComparison.Ordinal);
                    var settings = at < 0 ? new MigrationSettings() : MigrationSettings.FromJson(request[(at + 10)..]);
                    if (settings is null)
                    {
                        Reply("error the migration settings are not valid JSON");
                        break;
                    }

                    Migrate(words[1], words[2], words.Contains("digest"), StallWord(words), settings, Reply, client, reader);
                    break;
                default:
                    Reply($"error unknown request \"{request}\" (status, pause, unpause, stop, migrate HOST:PORT STREAM)");
                    break;
            }
        }
    }

    private string SetPaused(bool paused)
    {
        lock (_gate)
        {
            if (_state is not (HostState.Running or HostState.Paused))
            {
                return $"error the domain is {Status().State}";
            }

            if (paused)
            {
                _domain.Pause();
            }
            else
            {
                _domain.Unpause();
            }

            _state = paused ? HostState.Paused : HostState.Running;
            return paused ? "ok paused" : "ok running";
        }
    }

    /// <summary>
    /// Cancels <paramref name="cancel"/> when the client of a migration says <c>cancel</c> (its SIGINT or SIGTERM) or
    /// goes away (killed): the migrating process is gone, so the migration is abandoned before GO and the source runs on.
    /// </summary>
    private static Task WatchClient(Socket client, StreamReader reader, CancellationTokenSource cancel) => Task.Run(() =>
    {
        try
        {
            client.ReceiveTimeout = 0;
            while (DomainControl.ReadLine(reader) is { } line && line != "cancel")
            {
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }

        try
        {
            cancel.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    });

    /// <summary>The <c>stall=SECONDS</c> word of a migrate request (<c>xmig migrate --stall-timeout</c>), if any.</summary>
    private static TimeSpan? StallWord(string[] words) =>
        words.FirstOrDefault(w => w.StartsWith("stall=", StringComparison.Ordinal)) is { } word
        && double.TryParse(word.AsSpan(6), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
        && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : null;

    private void Migrate(string target, string stream, bool digest, TimeSpan? stall, MigrationSettings settings, Action<string> reply, Socket client, StreamReader reader)
    {
        if (!ChannelEndpoint.TryParse(target, out var host, out var port, out var problem))
        {
            reply("error " + problem);
            return;
        }

        if (!TryParseStream(stream, out var kind))
        {
            reply($"error unknown stream kind \"{stream}\"");
            return;
        }

        if (settings.ToSendOptions(kind, digest, out problem) is not { } options)
        {
            reply("error " + problem);
            return;
        }

        HostState before;
        lock (_gate)
        {
            if (_state is not (HostState.Running or HostState.Paused))
            {
                reply($"error the domain is {Status().State}");
                return;
            }

            before = _state;
            _state = HostState.Migrating;
        }

        using var cancel = new CancellationTokenSource();
        lock (_gate)
        {
            _migration = cancel;
        }

        // Ends when the client closes (after the answer, Serve disposes the connection); a late cancel is harmless.
        _ = WatchClient(client, reader, cancel);
        MigrationSendResult result;
        try
        {
            using var socket = ChannelEndpoint.Connect(host, port, TimeSpan.FromSeconds(30));
            using var network = new NetworkStream(socket, ownsSocket: false);
            using var channel = new XlMigrationChannel(network, network, XlChannelRole.Sender);
            if (stall is { } bound)
            {
                options = options with { StallTimeout = bound };
            }

            var sender = new MigrationSender(_domain, options, line => reply("log " + line))
            {
                Round = round => reply("log " + MigrationRoundLine.Format(round)),
            };
            result = sender.Run(channel, cancel.Token);
        }
        catch (IOException e)
        {
            lock (_gate)
            {
                _state = before;
                _migration = null;
            }

            reply("error " + MigrationSendReport.From(new MigrationSendResult { Error = e.Message, FailedAt = "connect", SourceDirectory = _domain.Directory }, stream, _workload.ToString()).ToJson());
            if (_stopAfterMigration)
            {
                Stop();
            }

            return;
        }

        var report = MigrationSendReport.From(result, stream, _workload.ToString()).ToJson();
        if (result.Source == SourceState.MigratedAway)
        {
            lock (_gate)
            {
                _state = HostState.MigratedAway;
                _migration = null;
            }

            reply("ok " + report);
            Exit();
            return;
        }

        bool stop;
        lock (_gate)
        {
            // Before GO the sender resumed the guest; "undefined" leaves it paused, as xl does.
            _state = result.Source == SourceState.Running ? HostState.Running : HostState.Paused;
            _migration = null;
            stop = _stopAfterMigration;
        }

        reply("error " + report);
        if (stop)
        {
            Stop();
        }
    }

    internal static bool TryParseStream(string text, out SaveStreamKind kind)
    {
        kind = text switch
        {
            "xl" => SaveStreamKind.Xl,
            "libxl" => SaveStreamKind.Libxl,
            "libxc" => SaveStreamKind.Libxc,
            "legacy-4.0" => SaveStreamKind.Legacy40,
            "legacy-4.1" => SaveStreamKind.Legacy41,
            _ => (SaveStreamKind)(-1),
        };
        return (int)kind >= 0;
    }
}
