using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Domains;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig domain create DIR --type hvm|pv --memory SIZE --vcpus N [--seed N] [--guest-width 32|64]</c> and
/// <c>xmig domain digest DIR [--json]</c>: simulated domains on disk.
/// </summary>
internal static class DomainCommand
{
    public static Command Create(CliContext ctx)
    {
        var command = new Command("domain", "Create simulated domains and digest their memory.");
        command.Subcommands.Add(CreateCreate(ctx));
        command.Subcommands.Add(CreateDigest(ctx));
        DomainRunCommand.AddTo(command, ctx);
        DomainInfoCommand.AddTo(command, ctx);
        return command;
    }

    private static Command CreateCreate(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Directory to create (must not exist, or be empty)." };
        var type = new Option<string>("--type", "-t") { Description = "Guest type: hvm or pv (required for simulated domains; KVM guests are hvm)." };
        type.AcceptOnlyFromAmong("hvm", "pv");
        var memory = new Option<string>("--memory", "-m") { Description = "Guest RAM: 4GiB, 512MiB, or a bare number of MiB as xl's memory = (16MiB … 16GiB).", DefaultValueFactory = _ => "1GiB" };
        var vcpus = new Option<int>("--vcpus") { Description = "Number of vCPUs (1 … 128).", DefaultValueFactory = _ => 1 };
        var seed = new Option<ulong>("--seed") { Description = "Content seed; the same seed gives the same domain.", DefaultValueFactory = _ => 1 };
        var width = new Option<int>("--guest-width", "-w") { Description = "PV guest width in bits: 32 or 64.", DefaultValueFactory = _ => 64 };
        var backend = new Option<string>("--backend") { Description = "simulated (default), or kvm: a real guest under /dev/kvm running --program.", DefaultValueFactory = _ => "simulated" };
        backend.AcceptOnlyFromAmong("simulated", "kvm");
        var program = new Option<string>("--program") { Description = "KVM guest program: counter, or dirty:WSS:RATE (working set, MiB/s; e.g. dirty:64MiB:256).", DefaultValueFactory = _ => "counter" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("create", "Create a simulated domain directory with realistic content from a seed, or a KVM guest (--backend kvm).")
        {
            dir, type, memory, vcpus, seed, width, backend, program, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var path = parse.GetValue(dir)!;
            if (!ByteSize.TryParseMemory(parse.GetValue(memory), out var bytes))
            {
                return EngineCommand.Usage(ctx, $"--memory: '{parse.GetValue(memory)}' is not a size (a bare number is MiB, as xl's memory =; or 4GiB, 512MiB)");
            }

            if (parse.GetValue(backend) == "kvm")
            {
                return KvmDomainCreate.Run(ctx, path, parse.GetValue(type), parse.GetValue(program), bytes, parse.GetValue(vcpus));
            }

            if (parse.GetValue(type) == null)
            {
                return EngineCommand.Usage(ctx, "--type is required (hvm or pv)");
            }

            var guestType = parse.GetValue(type) == "pv" ? GuestType.Pv : GuestType.Hvm;
            var bits = parse.GetValue(width);
            if (bits is not (32 or 64))
            {
                return EngineCommand.Usage(ctx, $"--guest-width {bits} is not 32 or 64");
            }

            if (guestType == GuestType.Hvm && bits != 64)
            {
                return EngineCommand.Usage(ctx, "--guest-width applies to PV guests only");
            }

            var spec = new DomainSpec(guestType, bytes, parse.GetValue(vcpus), parse.GetValue(seed), bits / 8);
            var problem = spec.Validate();
            if (problem != null)
            {
                return EngineCommand.Usage(ctx, problem);
            }

            using var domain = DomainDirectory.Build(path, working => SimulatedDomain.Create(working, spec));
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"created {parse.GetValue(type)} domain {path}: {ByteSize.Format(bytes)}, {spec.Vcpus} vCPU(s), {domain.PopulatedPages} pages, p2m size 0x{domain.P2mSize:X}, seed {spec.Seed}"));
            return ExitCode.Ok;
        }));
        return command;
    }

    private static Command CreateDigest(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (memory_sha256, pages, type, ...)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("digest", "Print the canonical memory digest (memory_sha256) of a domain directory.")
        {
            dir, json, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var path = parse.GetValue(dir)!;
            using var domain = SimulatedDomain.Open(path);
            var digest = MemoryDigest.Compute(domain);
            if (parse.GetValue(json))
            {
                var report = new DomainDigestReport
                {
                    MemorySha256 = digest.Sha256,
                    Pages = digest.Pages,
                    Type = domain.GuestType == GuestType.Hvm ? "hvm" : "pv",
                    GuestWidth = domain.GuestWidth * 8,
                    P2mSize = domain.P2mSize,
                    Vcpus = domain.MaxVcpuId + 1,
                    Directory = domain.Directory,
                };
                ctx.Out.WriteLine(JsonSerializer.Serialize(report, DomainCommandJson.Default.DomainDigestReport));
            }
            else
            {
                ctx.Out.WriteLine($"{digest.Sha256}  {path}");
            }

            return ExitCode.Ok;
        }));
        return command;
    }
}

internal sealed class DomainDigestReport
{
    public string MemorySha256 { get; set; } = "";

    public ulong Pages { get; set; }

    public string Type { get; set; } = "";

    public int GuestWidth { get; set; }

    public ulong P2mSize { get; set; }

    public int Vcpus { get; set; }

    public string Directory { get; set; } = "";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(DomainDigestReport))]
internal sealed partial class DomainCommandJson : JsonSerializerContext;
