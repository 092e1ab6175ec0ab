using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xmig.Domains;
using Xmig.Replication;
using Xmig.Tests.Domains;

#pragma warning disable xUnit1031

namespace Xmig.Tests.Support;

/// <summary>
/// A replication between real processes on 127.0.0.1: <c>xmig migrate-receive --replica</c> (the secondary, on a port
/// it picks) and <c>xmig replicate</c> (the primary), each with its JSON-lines log, in a scratch directory.
/// </summary>
internal sealed partial class ReplicationPair : IDisposable
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    private readonly TempDirectory _tmp = new();

    public ReplicationPair(GuestType type = GuestType.Hvm, ulong memoryMiB = 16)
    {
        DomainTestSupport.CreateDomain(PrimaryDir, type, memoryMiB).Dispose();
    }

    public string PrimaryDir => _tmp["primary"];

    public string SecondaryDir => _tmp["secondary"];

    public string PrimaryLog => _tmp["primary.log"];

    public string SecondaryLog => _tmp["secondary.log"];

    public string this[string name] => _tmp[name];

    public XmigChild? Secondary { get; private set; }

    public XmigChild? Primary { get; private set; }

    public int Port { get; private set; }

    [GeneratedRegex(@"listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex Listening();

    [GeneratedRegex(@"replication secondary: (failover|switchover) to checkpoint (\d+) \(epoch (\d+), digest ([0-9a-f]{64})\)")]
    public static partial Regex TakeOverLine();

    [GeneratedRegex(@"domain host: .* running")]
    public static partial Regex HostRunning();

    /// <summary>Starts the secondary (heartbeat in ms) and waits for its port.</summary>
    public XmigChild StartSecondary(int heartbeatMs = 300, params string[] extra)
    {
        Secondary?.Dispose();
        string[] args = ["migrate-receive", "--replica", "--listen", Port == 0 ? "127.0.0.1:0" : $"127.0.0.1:{Port}", "--into", SecondaryDir,
            "--heartbeat", heartbeatMs.ToString(CultureInfo.InvariantCulture), "--log", SecondaryLog, .. extra];
        Secondary = new XmigChild(args);
        var listening = Secondary.WaitForLine(Listening(), Bound) ?? throw new InvalidOperationException("the secondary did not listen: " + Secondary.Err);
        Port = int.Parse(listening.Groups[1].Value, CultureInfo.InvariantCulture);
        return Secondary;
    }

    /// <summary>Starts the primary (interval in ms) to the secondary's port.</summary>
    public XmigChild StartPrimary(int intervalMs = 20, string workload = "hotset:2MiB:32", params string[] extra)
    {
        string[] args = ["replicate", PrimaryDir, $"127.0.0.1:{Port}", "--interval", intervalMs.ToString(CultureInfo.InvariantCulture),
            "--workload", workload, "--log", PrimaryLog, .. extra];
        Primary = new XmigChild(args);
        return Primary;
    }

    /// <summary>Waits (bounded) until the primary's log shows at least <paramref name="count"/> events named <paramref name="name"/>.</summary>
    public bool WaitForEvents(string log, string name, int count, TimeSpan bound)
    {
        var until = DateTime.UtcNow + bound;
        while (DateTime.UtcNow < until)
        {
            if (File.Exists(log) && Events(log, name).Count >= count)
            {
                return true;
            }

            if (Primary is { } p && p.Process.HasExited && log == PrimaryLog)
            {
                return File.Exists(log) && Events(log, name).Count >= count;
            }

            Thread.Sleep(5);
        }

        return false;
    }

    public static List<JsonElement> Events(string log, string name) =>
        [.. ReplicationLogReader.Read(log).Where(e => e.GetProperty("event").GetString() == name)];

    /// <summary>The digest the primary logged for each checkpoint it sent.</summary>
    public Dictionary<int, string> SentDigests() =>
        Events(PrimaryLog, "sent").ToDictionary(e => e.GetProperty("checkpoint").GetInt32(), e => e.GetProperty("digest").GetString()!);

    /// <summary>The last checkpoint the primary logged as acknowledged (0: none).</summary>
    public int LastAcked() => Events(PrimaryLog, "acked").Select(e => e.GetProperty("checkpoint").GetInt32()).DefaultIfEmpty(0).Max();

    /// <summary>The checkpoint digest of a domain directory, from scratch.</summary>
    public static string Digest(string dir)
    {
        using var domain = SimulatedDomain.Open(dir);
        return CheckpointDigest.Compute(domain);
    }

    /// <summary>SIGTERM to a child and a bounded wait for its exit code.</summary>
    public static int? Terminate(XmigChild child)
    {
        if (!child.Process.HasExited)
        {
            Signal(child.Process, Sigterm);
        }

        return child.Finish(Bound);
    }

    /// <summary>No staging directory (<c>.NAME.xmig-…</c>) is left beside <paramref name="dir"/>.</summary>
    public static bool NoStaging(string dir) =>
        !Directory.EnumerateDirectories(Path.GetDirectoryName(dir)!, "." + Path.GetFileName(dir) + ".xmig-*").Any();

    public const int Sigint = 2;

    public const int Sigkill = 9;

    public const int Sigterm = 15;

    public const int Sigcont = 18;

    public const int Sigstop = 19;

    /// <summary>Sends signal <paramref name="signal"/> with kill(2).</summary>
    public static void Signal(System.Diagnostics.Process process, int signal)
    {
        if (Kill(process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    public void Dispose()
    {
        Primary?.Dispose();
        Secondary?.Dispose();
        _tmp.Dispose();
    }
}
