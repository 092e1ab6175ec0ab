using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Xmig.Tests.Support;

/// <summary>
/// A shaped network link between two network namespaces of this test run: a veth pair, <c>10.231.X.1/24</c> in
/// <see cref="Source"/> and <c>10.231.X.2/24</c> in <see cref="Destination"/>, each end shaped by
/// <c>tc qdisc ... netem rate R delay D</c>. Where the kernel has no netem (some VMs leave it out), each end is
/// shaped by <c>tbf rate R</c> instead: the rate holds, the delay is absent, and <see cref="Shaping"/> says so.
/// Child processes run inside a namespace (<c>ip netns exec NS xmig ...</c>). Dispose deletes both namespaces, which
/// takes the veth pair with them; namespaces left by an earlier, killed run are removed by their name prefix.
/// Needs root, <c>ip</c> and <c>tc</c>; <see cref="UnavailableReason"/> says why not where they are missing.
/// </summary>
internal sealed class ShapedLink : IDisposable
{
    /// <summary>Every namespace this fixture makes is named <c>xmigt-PID-N-src|dst</c>.</summary>
    public const string Prefix = "xmigt-";

    private const string Device = "xmig0";

    private static int _count;

    private ShapedLink(string source, string destination, int subnet, string shaping)
    {
        Source = source;
        Destination = destination;
        SourceAddress = $"10.231.{subnet}.1";
        DestinationAddress = $"10.231.{subnet}.2";
        Shaping = shaping;
    }

    /// <summary>Why shaped links cannot be made here, or null when they can (probed once per test run).</summary>
    public static string? UnavailableReason { get; } = Probe();

    /// <summary>The namespace of the <c>.1</c> end.</summary>
    public string Source { get; }

    /// <summary>The namespace of the <c>.2</c> end.</summary>
    public string Destination { get; }

    public string SourceAddress { get; }

    public string DestinationAddress { get; }

    /// <summary>The qdisc on each end, as <c>tc</c> was given it (netem, or tbf where the kernel has no netem).</summary>
    public string Shaping { get; }

    /// <summary>True when the link has its delay (netem); false when only its rate (tbf).</summary>
    public bool HasDelay => Shaping.StartsWith("netem", StringComparison.Ordinal);

    /// <summary>Makes the two namespaces, the veth pair, the addresses and the shaping; throws when any step fails.</summary>
    public static ShapedLink Create(string rate = "100mbit", string delay = "5ms")
    {
        RemoveStale();
        var n = Interlocked.Increment(ref _count);
        var id = string.Create(CultureInfo.InvariantCulture, $"{Prefix}{Environment.ProcessId}-{n}");
        var link = new ShapedLink(id + "-src", id + "-dst", 1 + (n % 250), "");
        try
        {
            Ip("netns", "add", link.Source);
            Ip("netns", "add", link.Destination);
            Ip("link", "add", Device, "netns", link.Source, "type", "veth", "peer", "name", Device, "netns", link.Destination);
            var shaping = "";
            foreach (var (ns, address) in new[] { (link.Source, link.SourceAddress), (link.Destination, link.DestinationAddress) })
            {
                Ip("-n", ns, "addr", "add", address + "/24", "dev", Device);
                Ip("-n", ns, "link", "set", "lo", "up");
                Ip("-n", ns, "link", "set", Device, "up");
                shaping = Shape(ns, rate, delay);
            }

            return new ShapedLink(link.Source, link.Destination, 1 + (n % 250), shaping);
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    /// <summary>Start info for <c>xmig ARGS</c> inside namespace <paramref name="ns"/>, redirected as <see cref="XmigProcess"/> does.</summary>
    public static ProcessStartInfo StartInfo(string ns, bool redirectStdin, params string[] args)
    {
        var inner = XmigProcess.StartInfo(redirectStdin, args);
        var start = new ProcessStartInfo("ip")
        {
            RedirectStandardInput = redirectStdin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (ReadOnlySpan<string>)["netns", "exec", ns, inner.FileName])
        {
            start.ArgumentList.Add(a);
        }

        foreach (var a in inner.ArgumentList)
        {
            start.ArgumentList.Add(a);
        }

        return start;
    }

    /// <summary>Starts <c>xmig ARGS</c> inside namespace <paramref name="ns"/>.</summary>
    public static Process Start(string ns, bool redirectStdin, params string[] args) => Process.Start(StartInfo(ns, redirectStdin, args))!;

    public void Dispose()
    {
        // Deleting a namespace destroys its end of the veth pair, and with it the other end.
        foreach (var ns in (ReadOnlySpan<string>)[Source, Destination])
        {
            Run("ip", "netns", "del", ns);
        }
    }

    /// <summary>Deletes the namespaces of earlier runs of this fixture whose process is gone (killed mid-test).</summary>
    public static void RemoveStale()
    {
        var (code, list) = Run("ip", "netns", "list");
        if (code != 0)
        {
            return;
        }

        foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var name = line.Split(' ')[0];
            if (!name.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var pid = name[Prefix.Length..].Split('-')[0];
            if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var owner) || !Alive(owner))
            {
                Run("ip", "netns", "del", name);
            }
        }
    }

    private static bool Alive(int pid) => pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}");

    /// <summary>netem on <paramref name="ns"/>'s end; tbf at the same rate where the kernel lacks netem.</summary>
    private static string Shape(string ns, string rate, string delay)
    {
        var netem = $"netem rate {rate} delay {delay}";
        var (code, output) = Run("ip", ["netns", "exec", ns, "tc", "qdisc", "add", "dev", Device, "root", .. netem.Split(' ')]);
        if (code == 0)
        {
            return netem;
        }

        if (!output.Contains("unknown", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"tc qdisc add dev {Device} root {netem} in {ns} failed: {output.Trim()}");
        }

        // No netem in this kernel: a token bucket holds the rate (burst of 32 KiB, at most 50 ms queued).
        var tbf = $"tbf rate {rate} burst 32kb latency 50ms";
        (code, output) = Run("ip", ["netns", "exec", ns, "tc", "qdisc", "add", "dev", Device, "root", .. tbf.Split(' ')]);
        if (code != 0)
        {
            throw new InvalidOperationException($"this kernel has no netem, and tc qdisc add dev {Device} root {tbf} in {ns} failed: {output.Trim()}");
        }

        return tbf + $" (the kernel has no netem: no {delay} delay)";
    }

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "network namespaces are Linux's";
        }

        if (Environment.UserName != "root" && !IsRoot())
        {
            return "not root: ip netns add needs CAP_SYS_ADMIN";
        }

        foreach (var tool in (ReadOnlySpan<string>)["ip", "tc"])
        {
            if (!OnPath(tool))
            {
                return $"no '{tool}' on PATH (apt-get install iproute2)";
            }
        }

        try
        {
            using var link = Create();
            Console.Error.WriteLine($"xmig tests: shaped links are {link.Shaping}");
            return null;
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    }

    private static bool IsRoot() => File.Exists("/proc/self/status")
        && File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal)) is { } uid
        && uid.Split('\t', StringSplitOptions.RemoveEmptyEntries) is [_, "0", ..];

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':')
            .Concat(["/usr/sbin", "/sbin"]).Any(d => File.Exists(Path.Combine(d, tool)));

    private static void Ip(params string[] args)
    {
        var (code, output) = Run("ip", args);
        if (code != 0)
        {
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed: {output.Trim()}");
        }
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        try
        {
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                process.Kill(entireProcessTree: true);
                return (-1, $"{file} did not finish in 30 s");
            }

            process.WaitForExit();
            return (process.ExitCode, new StringBuilder().Append(stdout.Result).Append(stderr.Result).ToString());
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, $"{file}: {e.Message}");
        }
    }
}

/// <summary>A fact that runs only where shaped links can be made; elsewhere it is reported as skipped with why.</summary>
public sealed class ShapedLinkFactAttribute : FactAttribute
{
    public ShapedLinkFactAttribute()
    {
        if (ShapedLink.UnavailableReason is { } reason)
        {
            Skip = "SKIPPED: no shaped link (network namespaces, veth, tc) on this machine: " + reason;
            Console.Error.WriteLine("xmig tests: " + Skip);
        }
    }
}
