using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Domains;
using Xmig.Hosting;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig domain info DIR [--json] [--digest]</c>: what a domain directory holds (type, width, memory, p2m size,
/// populated pages, vCPUs, TSC, HVM parameters, which state blobs exist) and whether a host runs it.
/// </summary>
internal static class DomainInfoCommand
{
    /// <summary>Adds <c>info</c> to <c>xmig domain</c>.</summary>
    public static void AddTo(Command domain, CliContext ctx) => domain.Subcommands.Add(Create(ctx));

    private static Command Create(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (type, guest_width, memory_bytes, p2m_size, pages, vcpus, tsc, hvm_params, blobs, hosted, ...)." };
        var digest = new Option<bool>("--digest") { Description = "Also compute the memory digest (memory_sha256): reads every page." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("info", "Describe a domain directory: type, memory, vCPUs, TSC, HVM parameters, state blobs, and whether it is hosted.")
        {
            dir, json, digest, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var path = parse.GetValue(dir)!;
            var report = Describe(path, parse.GetValue(digest));
            ctx.Out.Write(parse.GetValue(json)
                ? JsonSerializer.Serialize(report, DomainInfoJson.Default.DomainInfoReport) + Environment.NewLine
                : Text(report));
            return ExitCode.Ok;
        }));
        return command;
    }

    internal static DomainInfoReport Describe(string path, bool digest)
    {
        using var domain = SimulatedDomain.Open(path);
        IDomain d = domain;
        var report = new DomainInfoReport
        {
            Directory = domain.Directory,
            Backend = File.Exists(Path.Combine(domain.Directory, Domains.Kvm.KvmDescription.FileName)) ? "kvm" : "simulated",
            Type = domain.GuestType == GuestType.Hvm ? "hvm" : "pv",
            GuestWidth = domain.GuestWidth * 8,
            MemoryBytes = d.MemoryBytes,
            P2mSize = domain.P2mSize,
            Pages = domain.PopulatedPages,
            Seed = domain.Seed,
            Vcpus = [.. Enumerable.Range(0, domain.MaxVcpuId + 1).Where(domain.IsVcpuOnline)],
            Tsc = new DomainInfoTsc { Mode = domain.TscInfo.Mode, Khz = domain.TscInfo.Khz, Nsec = domain.TscInfo.Nsec, Incarnation = domain.TscInfo.Incarnation },
            HvmParams = [.. Enumerable.Range(0, (int)HvmParam.Count)
                .Select(i => (Index: (uint)i, Value: domain.GetHvmParam((uint)i)))
                .Where(p => p.Value != 0)
                .Select(p => new DomainInfoParam { Index = p.Index, Name = HvmParam.Name(p.Index), Value = p.Value })],
            Blobs = [.. Directory.EnumerateFiles(domain.Directory, "*.bin")
                .Select(f => new FileInfo(f))
                .Where(f => f.Name != DomainDirectory.TypesFile)
                .OrderBy(f => f.Name, StringComparer.Ordinal)
                .Select(f => new DomainInfoBlob { Name = f.Name, Bytes = f.Length })],
            EmulatorXenstoreEntries = domain.EmulatorXenstore.Count,
        };
        if (digest)
        {
            report.MemorySha256 = MemoryDigest.Compute(domain).Sha256;
        }

        if (DomainControl.Request(path, "status") is { Ok: true } answer
            && JsonSerializer.Deserialize(answer.Text, HostJson.Default.HostStatus) is { } status)
        {
            report.Hosted = true;
            report.HostState = status.State;
            report.HostPid = status.Pid;
        }

        return report;
    }

    private static string Text(DomainInfoReport r)
    {
        var s = new StringBuilder();
        void Line(string key, string value) => s.Append(CultureInfo.InvariantCulture, $"{key,-18} {value}\n");
        Line("directory", r.Directory);
        Line("backend", r.Backend);
        Line("type", $"{r.Type}, {r.GuestWidth}-bit");
        Line("memory", string.Create(CultureInfo.InvariantCulture, $"{ByteSize.Format(r.MemoryBytes)} ({r.MemoryBytes} octets)"));
        Line("p2m size", string.Create(CultureInfo.InvariantCulture, $"0x{r.P2mSize:X} frames"));
        Line("populated pages", string.Create(CultureInfo.InvariantCulture, $"{r.Pages}"));
        Line("vcpus online", r.Vcpus.Count == 0 ? "none" : string.Join(',', r.Vcpus));
        Line("tsc", string.Create(CultureInfo.InvariantCulture, $"mode {r.Tsc.Mode}, {r.Tsc.Khz} kHz, nsec {r.Tsc.Nsec}, incarnation {r.Tsc.Incarnation}"));
        Line("hvm params", r.HvmParams.Count == 0 ? "none" : string.Join(", ", r.HvmParams.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Name ?? p.Index.ToString(CultureInfo.InvariantCulture)}=0x{p.Value:X}"))));
        Line("blobs", r.Blobs.Count == 0 ? "none" : string.Join(", ", r.Blobs.Select(b => string.Create(CultureInfo.InvariantCulture, $"{b.Name} ({b.Bytes})"))));
        if (r.MemorySha256 is { } sha)
        {
            Line("memory_sha256", sha);
        }

        Line("hosted", r.Hosted ? string.Create(CultureInfo.InvariantCulture, $"yes ({r.HostState}, pid {r.HostPid})") : "no");
        return s.ToString();
    }
}

internal sealed class DomainInfoReport
{
    public string Directory { get; set; } = "";

    public string Backend { get; set; } = "";

    public string Type { get; set; } = "";

    public int GuestWidth { get; set; }

    public ulong MemoryBytes { get; set; }

    public ulong P2mSize { get; set; }

    public ulong Pages { get; set; }

    public ulong Seed { get; set; }

    public List<int> Vcpus { get; set; } = [];

    public DomainInfoTsc Tsc { get; set; } = new();

    public List<DomainInfoParam> HvmParams { get; set; } = [];

    public List<DomainInfoBlob> Blobs { get; set; } = [];

    public int EmulatorXenstoreEntries { get; set; }

    public string? MemorySha256 { get; set; }

    public bool Hosted { get; set; }

    public string? HostState { get; set; }

    public int? HostPid { get; set; }
}

internal sealed class DomainInfoTsc
{
    public uint Mode { get; set; }

    public uint Khz { get; set; }

    public ulong Nsec { get; set; }

    public uint Incarnation { get; set; }
}

internal sealed class DomainInfoParam
{
    public uint Index { get; set; }

    public string? Name { get; set; }

    public ulong Value { get; set; }
}

internal sealed class DomainInfoBlob
{
    public string Name { get; set; } = "";

    public long Bytes { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(DomainInfoReport))]
internal sealed partial class DomainInfoJson : JsonSerializerContext;
