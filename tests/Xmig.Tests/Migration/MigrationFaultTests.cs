using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

#pragma warning disable xUnit1031 // child processes are waited for with bounded blocking waits

namespace Xmig.Tests.Migration;

/// <summary>
/// Issue 10 item 6, injected: sender → <see cref="FaultProxy"/> on 127.0.0.1 → receiver, all real processes, and one
/// fault (a reset of both connections, a stall, a SIGKILL of either end) at a point of every phase before GO: the
/// banner, the xl header and config, early and late in the first pass, a later pass, stop-and-copy (the source is
/// paused), after the last stream octet (on "ready", which the receiver sent and the sender never got) and inside
/// "ready". Every time the source ends running and unchanged, the sender and receiver that survive end non-zero with
/// one line, and the destination ends empty: after a SIGKILL of the receiver the next <c>migrate-receive</c> on the
/// same <c>--into</c> removes the staging directory it left.
/// </summary>
/// <remarks>
/// Which process is "the sender": for a domain that is not hosted, <c>xmig migrate</c> runs it in-process, so it is
/// the sender and the source's hypervisor at once; killing it leaves the directory as it was (the workload is idle,
/// so its digest is the one before). For a hosted domain the host (<c>xmig domain run</c>) is the sender and
/// <c>xmig migrate</c> only its client: killing the client makes the host abandon the migration (the source runs on,
/// status "running"), and killing the host kills the source's hypervisor (its directory stays, openable, never renamed).
/// </remarks>
[Trait("Category", XmigProcess.Category)]
public sealed partial class MigrationFaultTests
{
    /// <summary>The stall timeout where a stall is the fault: short, as nothing else happens meanwhile.</summary>
    private const string StallSeconds = "2";

    /// <summary>
    /// The stall timeout where the fault is not a stall: long, so that a slow receiver on a loaded machine (it drains the
    /// octets in flight and completes the domain before "ready") is never taken for a stalled one.
    /// </summary>
    private const string PatientSeconds = "30";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>Octets of the standard domain's in-process idle stream (message 2: xl header, config, stream), measured once.</summary>
    private static readonly Lazy<long> StreamLength = new(MeasureStream);

    [GeneratedRegex(@"listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();

    public static TheoryData<string, string, string> Cases => new()
    {
        // action, point, source
        { "reset", "banner+10", "inproc" },
        { "stall", "banner+10", "inproc" },
        { "kill-receiver", "banner+10", "inproc" },
        { "kill-sender", "stream+0", "inproc" },
        { "reset", "stream+20", "inproc" },
        { "stall", "stream+60", "inproc" },
        { "kill-receiver", "stream+60", "inproc" },
        { "reset", "stream+64KiB", "inproc" },
        { "kill-sender", "stream+1MiB", "inproc" },
        { "stall", "stream+2MiB", "inproc" },
        { "kill-receiver", "stream+10MiB", "inproc" },
        { "reset", "end-200", "inproc" },
        { "kill-sender", "end-200", "inproc" },
        { "stall", "end-1", "inproc" },
        { "kill-receiver", "end-1", "inproc" },
        { "reset", "ready", "inproc" },
        { "stall", "ready", "inproc" },
        { "kill-sender", "ready", "inproc" },
        { "kill-receiver", "ready", "inproc" },
        { "reset", "ready+10", "inproc" },
        { "reset", "later", "hosted" },
        { "stall", "later", "hosted" },
        { "kill-receiver", "later", "hosted" },
        { "kill-sender", "stream+1MiB", "hosted" },
        { "kill-host", "stream+2MiB", "hosted" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Migrate_FaultBeforeGo_SourceRunsUnchangedAndDestinationEndsEmpty(string action, string point, string source)
    {
        using var tmp = new TempDirectory();
        Create(tmp);
        var hosted = source == "hosted";
        var before = hosted ? null : Digest(tmp["src"]);
        var (direction, offset) = Point(point);
        var fault = action switch
        {
            "reset" => FaultAction.Reset,
            "stall" => FaultAction.Stall,
            _ => FaultAction.Kill,
        };

        // A stall on "ready" must outlast the receiver's completion, which the sender's wait for "ready" includes.
        var stall = fault != FaultAction.Stall ? PatientSeconds : point.StartsWith("ready", StringComparison.Ordinal) ? "8" : StallSeconds;
        using var receiver = new XmigChild("migrate-receive", "--listen", "127.0.0.1:0", "--into", tmp["dst"], "--stall-timeout", stall);
        var port = receiver.WaitForLine(ListeningLine(), Bound);
        Assert.True(port is not null, "the receiver did not listen: " + receiver.Err);
        using var proxy = new FaultProxy(int.Parse(port.Groups[1].Value, CultureInfo.InvariantCulture), direction, offset, fault);

        using var host = hosted ? new XmigChild("domain", "run", tmp["src"], "--workload", "uniform:16") : null;
        if (host is not null)
        {
            Assert.True(DomainTestSupport.WaitUntil(() => File.Exists(Path.Combine(tmp["src"], "control.sock"))), "the host did not start: " + host.Err);
        }

        using var sender = new XmigChild("migrate", tmp["src"], $"127.0.0.1:{proxy.Port}", "--stall-timeout", stall);
        proxy.Victim = action switch
        {
            "kill-receiver" => receiver.Process,
            "kill-sender" => sender.Process,
            "kill-host" => host!.Process,
            _ => null,
        };

        var senderCode = sender.Finish(Bound);
        var receiverCode = receiver.Finish(Bound);
        Assert.True(proxy.Fired.IsCompleted, $"the fault point {point} was never reached (sender octets {proxy.SenderOctets}, receiver octets {proxy.ReceiverOctets}): {sender.Err} {receiver.Err}");
        Assert.True(senderCode is not null, "the sender hung: " + sender.Err);
        Assert.True(receiverCode is not null, "the receiver hung: " + receiver.Err);

        if (action != "kill-sender")
        {
            Assert.NotEqual(0, senderCode);
            Assert.True(sender.ErrorLines.Count == 1, "the sender should say one line: " + sender.Err);
            if (action != "kill-host")
            {
                Assert.Contains("(source running)", sender.ErrorLines[0], StringComparison.Ordinal);
            }
        }

        if (action != "kill-receiver")
        {
            Assert.NotEqual(0, receiverCode);
            Assert.True(receiver.ErrorLines.Count == 1, "the receiver should say one line: " + receiver.Err);
        }

        if (action == "stall")
        {
            // Both ends gave up by their stall timeout, and say so.
            var words = new Regex($@"\b({stall} s|{stall}000 ms)\b");
            Assert.Matches(words, sender.ErrorLines[0]);
            Assert.Matches(words, receiver.ErrorLines[0]);
        }

        Assert.DoesNotContain(".xmig-", sender.Err + receiver.Err, StringComparison.Ordinal);

        // The source: never renamed away, running (hosted) or as it was (its directory, its digest).
        Assert.True(Directory.Exists(tmp["src"]), "the source directory is gone");
        Assert.False(Directory.Exists(tmp["src--migratedaway"]), "the source was renamed away");
        if (host is not null && action != "kill-host")
        {
            Assert.True(DomainTestSupport.WaitUntil(() => HostState(tmp["src"]) == "running"), "the hosted source is not running: " + HostState(tmp["src"]) + " " + host.Err);
            Assert.Equal(0, DomainTestSupport.Cli("domain", "stop", tmp["src"]).Code);
            Assert.True(host.Finish(Bound) is not null, "the host did not stop");
        }
        else if (host is not null)
        {
            Assert.Equal("not running", HostState(tmp["src"]));
        }

        var after = Digest(tmp["src"]);
        if (before is not null)
        {
            Assert.Equal(before, after);
        }

        // The destination: nothing, or only what a SIGKILL left, which the next run removes with one line.
        Assert.False(Directory.Exists(tmp["dst"]), "the destination left a domain behind");
        var staging = Staging(tmp);
        if (action == "kill-receiver")
        {
            var (_, _, err) = DomainTestSupport.Cli("migrate-receive", "--listen", "127.0.0.1:0", "--into", tmp["dst"], "--accept-timeout", "1");
            foreach (var left in staging)
            {
                Assert.Contains($"xmig: removed a stale staging directory {left} left by a killed run", err, StringComparison.Ordinal);
            }

            Assert.False(Directory.Exists(tmp["dst"]));
        }

        Assert.Empty(Staging(tmp));
    }

    /// <summary>
    /// A full disk at the receiver: an 8 MiB tmpfs mounted for the test, and a 64 MiB domain whose pages are not zero.
    /// The receiver fails with one line naming the lack of space, leaves nothing in the mount, and the source is unchanged.
    /// </summary>
    [TmpfsFact]
    public void Migrate_IntoAFullDisk_ReceiverSaysNoSpaceAndLeavesNothingAndTheSourceIsUnchanged()
    {
        using var tmp = new TempDirectory();
        Create(tmp, "64MiB");
        var before = Digest(tmp["src"]);
        var mount = tmp["small"];
        Directory.CreateDirectory(mount);
        Assert.True(Tmpfs.Mount(mount, "8m", out var why), why);
        try
        {
            var into = Path.Combine(mount, "dst");
            using var receiver = new XmigChild("migrate-receive", "--listen", "127.0.0.1:0", "--into", into, "--stall-timeout", PatientSeconds);
            var port = receiver.WaitForLine(ListeningLine(), Bound);
            Assert.True(port is not null, receiver.Err);
            var (code, _, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{port.Groups[1].Value}", "--stall-timeout", PatientSeconds);
            var receiverCode = receiver.Finish(Bound);

            Assert.NotEqual(0, receiverCode);
            var line = Assert.Single(receiver.ErrorLines);
            Assert.Contains("No space left on device", line, StringComparison.Ordinal);
            Assert.DoesNotContain(".xmig-", line, StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFileSystemEntries(mount));

            Assert.NotEqual(0, code);
            Assert.Single(err.Split('\n'), l => l.StartsWith("xmig: error:", StringComparison.Ordinal) && l.Contains("(source running)", StringComparison.Ordinal));
            Assert.False(Directory.Exists(tmp["src--migratedaway"]));
            Assert.Equal(before, Digest(tmp["src"]));
        }
        finally
        {
            Tmpfs.Unmount(mount);
        }
    }

    /// <summary>A point in words: where the proxy counts, and the octet before which it acts.</summary>
    private static (FaultDirection Direction, long Offset) Point(string point)
    {
        var banner = Transport.XlMigrationMessagesText.Banner.Length;
        return point switch
        {
            "banner+10" => (FaultDirection.ReceiverToSender, 10),
            "ready" => (FaultDirection.ReceiverToSender, banner),
            "ready+10" => (FaultDirection.ReceiverToSender, banner + 10),
            "end-200" => (FaultDirection.SenderToReceiver, StreamLength.Value - 200),
            "end-1" => (FaultDirection.SenderToReceiver, StreamLength.Value - 1),

            // A hosted source under a workload sends more than the idle stream: what lies past its length is a later pass.
            "later" => (FaultDirection.SenderToReceiver, StreamLength.Value + (256 << 10)),
            _ when point.StartsWith("stream+", StringComparison.Ordinal) => (FaultDirection.SenderToReceiver, Size(point["stream+".Length..])),
            _ => throw new ArgumentException(point),
        };
    }

    private static long Size(string text) => text.EndsWith("MiB", StringComparison.Ordinal)
        ? long.Parse(text[..^3], CultureInfo.InvariantCulture) << 20
        : text.EndsWith("KiB", StringComparison.Ordinal)
            ? long.Parse(text[..^3], CultureInfo.InvariantCulture) << 10
            : long.Parse(text, CultureInfo.InvariantCulture);

    private static long MeasureStream()
    {
        using var tmp = new TempDirectory();
        Create(tmp);
        using var receiver = new XmigChild("migrate-receive", "--listen", "127.0.0.1:0", "--into", tmp["dst"]);
        var port = receiver.WaitForLine(ListeningLine(), Bound) ?? throw new InvalidOperationException("no receiver: " + receiver.Err);
        var (code, output, err) = DomainTestSupport.CliProcess("migrate", tmp["src"], $"127.0.0.1:{port.Groups[1].Value}", "--json");
        if (code != 0 || receiver.Finish(Bound) != 0)
        {
            throw new InvalidOperationException("the reference migration failed: " + err + receiver.Err);
        }

        using var report = JsonDocument.Parse(output);
        return report.RootElement.GetProperty("transferred").GetInt64();
    }

    internal static void Create(TempDirectory tmp, string memory = "16MiB")
    {
        var (code, _, err) = DomainTestSupport.Cli("domain", "create", tmp["src"], "--type", "hvm", "--memory", memory, "--vcpus", "2");
        Assert.True(code == 0, err);
    }

    internal static string Digest(string dir)
    {
        var (code, output, err) = DomainTestSupport.Cli("domain", "digest", dir);
        Assert.True(code == 0, err);
        return output.Split(' ')[0];
    }

    private static string HostState(string dir)
    {
        var (_, output, _) = DomainTestSupport.Cli("domain", "status", dir, "--json");
        try
        {
            using var status = JsonDocument.Parse(output);
            return status.RootElement.GetProperty("state").GetString() ?? "";
        }
        catch (JsonException)
        {
            return output;
        }
    }

    /// <summary>Staging directories beside the destination (<c>.dst.xmig-PID-GUID</c>).</summary>
    internal static List<string> Staging(TempDirectory tmp) => [.. Directory.EnumerateDirectories(tmp.Path, ".dst.xmig-*")];
}

/// <summary>Mounting a small tmpfs (root only): the full-disk test.</summary>
internal static class Tmpfs
{
    private static readonly Lazy<string?> Unavailable = new(Probe);

    /// <summary>Why a tmpfs cannot be mounted here, or null when it can.</summary>
    public static string? UnavailableReason => Unavailable.Value;

    public static bool Mount(string directory, string size, out string why) =>
        Run("mount", ["-t", "tmpfs", "-o", "size=" + size, "tmpfs", directory], out why);

    public static void Unmount(string directory) => Run("umount", [directory], out _);

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux";
        }

        var probe = Path.Combine(Path.GetTempPath(), "xmig-tmpfs-probe-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(probe);
        try
        {
            if (!Mount(probe, "1m", out var why))
            {
                return why;
            }

            Unmount(probe);
            return null;
        }
        finally
        {
            try
            {
                Directory.Delete(probe);
            }
            catch (IOException)
            {
            }
        }
    }

    private static bool Run(string tool, string[] args, out string why)
    {
        try
        {
            var start = new System.Diagnostics.ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in args)
            {
                start.ArgumentList.Add(a);
            }

            using var process = System.Diagnostics.Process.Start(start)!;
            var err = process.StandardError.ReadToEnd();
            process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(30_000) || process.ExitCode != 0)
            {
                why = $"{tool} {string.Join(' ', args)} failed: {err.Trim()}";
                return false;
            }

            why = "";
            return true;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            why = $"{tool}: {e.Message}";
            return false;
        }
    }
}

/// <summary>A fact that needs to mount a tmpfs; skipped, loudly, where mount is not permitted.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (Tmpfs.UnavailableReason is { } reason)
        {
            Skip = "SKIPPED: cannot mount a tmpfs here (the full-disk test needs root): " + reason;
            Console.Error.WriteLine("xmig tests: full-disk test skipped: " + reason);
        }
    }
}
