using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Domains;
using Xmig.Restore;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig restore [FILE|-] [--into DIR] [--checkpointed no|yes|auto] [--json]</c>: one restore engine for every
/// stream kind. The domain is built in a working directory beside DIR and renamed into place only on success;
/// without <c>--into</c> it is built in a temporary directory, digested and removed.
/// </summary>
internal static class RestoreCommand
{
    public static Command Create(CliContext ctx)
    {
        var input = new Argument<string>("FILE") { Description = "Stream to restore, or - for standard input.", DefaultValueFactory = _ => "-" };
        var into = new Option<string?>("--into") { Description = "Domain directory to create (must not exist, or be empty)." };
        var checkpointed = new Option<string>("--checkpointed") { Description = "Is the stream checkpointed (Remus/COLO)? no, yes or auto.", DefaultValueFactory = _ => "auto" };
        checkpointed.AcceptOnlyFromAmong("no", "yes", "auto");
        var maxMemory = new Option<string>("--max-memory") { Description = "Bound on guest-physical space (HVM streams declare none), e.g. 32GiB.", DefaultValueFactory = _ => "32GiB" };
        var width = new Option<int?>("--width", "-w") { Description = "Legacy input: bitness of the saving toolstack (32 or 64); detected if omitted." };
        var guest = new Option<string?>("--guest-type", "-g") { Description = "Legacy input: guest type (pv or hvm); detected if omitted." };
        guest.AcceptOnlyFromAmong("pv", "hvm");
        var heartbeat = new Option<int>("--heartbeat")
        {
            Description = "Checkpointed input: after the first complete checkpoint, silence longer than MS milliseconds on a pipe or socket commits the last complete checkpoint (Xen's HEARTBEAT_MS; 0 waits indefinitely). A regular file never times out.",
            DefaultValueFactory = _ => 1000,
        };
        var backend = new Option<string>("--backend") { Description = "What --into DIR becomes: simulated (default), or kvm (a KVM guest's stream, resumed by opening DIR).", DefaultValueFactory = _ => "simulated" };
        backend.AcceptOnlyFromAmong("simulated", "kvm");
        var json = new Option<bool>("--json") { Description = "Print one JSON document (memory_sha256, pages, checkpoints_seen, ...)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("restore", "Restore any xl, libxl, libxc or legacy stream into a simulated domain and digest its memory.")
        {
            input, into, checkpointed, maxMemory, width, guest, heartbeat, backend, json, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), giveUp: true, interruption =>
        {
            if (!ByteSize.TryParse(parse.GetValue(maxMemory), out var max) || max < GuestPage.Size)
            {
                return EngineCommand.Usage(ctx, $"--max-memory \"{parse.GetValue(maxMemory)}\" is not a size");
            }

            if (parse.GetValue(width) is { } w && w is not (32 or 64))
            {
                return EngineCommand.Usage(ctx, $"--width {w} is not 32 or 64");
            }

            if (parse.GetValue(heartbeat) is var ms && ms < 0)
            {
                return EngineCommand.Usage(ctx, $"--heartbeat {ms} is negative");
            }

            var options = new RestoreOptions
            {
                Heartbeat = ms > 0 ? TimeSpan.FromMilliseconds(ms) : null,
                Checkpointed = parse.GetValue(checkpointed) switch
                {
                    "no" => CheckpointedMode.No,
                    "yes" => CheckpointedMode.Yes,
                    _ => CheckpointedMode.Auto,
                },
                MaxGuestPhysicalBytes = max,
                LegacyWidth = parse.GetValue(width),
                GuestType = parse.GetValue(guest) switch
                {
                    "pv" => GuestType.Pv,
                    "hvm" => GuestType.Hvm,
                    _ => null,
                },
            };

            var path = parse.GetValue(input)!;
            var target = parse.GetValue(into);
            var temporary = target == null;
            var kvm = parse.GetValue(backend) == "kvm";
            if (kvm && temporary)
            {
                return EngineCommand.Usage(ctx, "--backend kvm needs --into DIR");
            }

            target ??= Path.Combine(Path.GetTempPath(), $"xmig-restore-{Environment.ProcessId}-{Guid.NewGuid():N}");
            if (!temporary)
            {
                EngineCommand.RemoveStaleStaging(ctx, target);
            }

            // SIGINT/SIGTERM: the read (even of a stalled pipe) ends, and the staging directory is discarded.
            var staged = target;
            interruption.OnGiveUp(() => DomainDirectory.DiscardOwn(staged));
            using var stream = new Xmig.IO.HeartbeatStream(StreamInput.Open(path, decimalIsFd: false), leaveOpen: false)
            {
                Cancellation = interruption.Token,
            };
            var (domain, result) = SimulatedRestore.ToDirectory(stream, target, options);

            try
            {
                var digest = MemoryDigest.Compute(domain);
                if (parse.GetValue(json))
                {
                    var report = new RestoreReport
                    {
                        MemorySha256 = digest.Sha256,
                        Pages = digest.Pages,
                        CheckpointsSeen = result.CheckpointsSeen,
                        CheckpointCommitted = result.CheckpointCommitted,
                        StreamKind = result.StreamKind,
                        SenderGeneration = result.SenderGeneration,
                        Type = domain.GuestType == GuestType.Hvm ? "hvm" : "pv",
                        GuestWidth = domain.GuestWidth * 8,
                        P2mSize = domain.P2mSize,
                        Vcpus = domain.MaxVcpuId + 1,
                        End = result.End,
                        FinishReason = result.FinishReason.Name(),
                        FinishRecord = result.FinishRecord,
                        FinishOffset = result.FinishOffset,
                        Discarded = result.Discarded,
                        VerifyMismatches = result.VerifyMismatches,
                        Warnings = [.. result.Warnings],
                        Directory = temporary ? null : domain.Directory,
                    };
                    ctx.Out.WriteLine(JsonSerializer.Serialize(report, RestoreCommandJson.Default.RestoreReport));
                }
                else
                {
                    var checkpoints = result.CheckpointsSeen > 0 ? $", checkpoint {result.CheckpointCommitted} of {result.CheckpointsSeen}" : "";
                    var where = temporary ? "" : $" into {domain.Directory}";
                    ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"restored {result.StreamKind} stream ({result.SenderGeneration}){where}: {(domain.GuestType == GuestType.Hvm ? "hvm" : "pv")} domain, {digest.Pages} pages{checkpoints}"));
                    ctx.Out.WriteLine($"memory_sha256 {digest.Sha256}");
                    ctx.Out.WriteLine(FinishLine(result));
                    if (result.Discarded != null)
                    {
                        ctx.Error.WriteLine($"xmig: note: discarded {result.Discarded}");
                    }

                    foreach (var warning in result.Warnings)
                    {
                        ctx.Error.WriteLine($"xmig: warning: {warning}");
                    }
                }
            }
            finally
            {
                domain.Dispose();
                if (temporary)
                {
                    DomainDirectory.Discard(target);
                }
            }

            if (kvm)
            {
                Xmig.Domains.Kvm.KvmDomain.Adopt(target);
            }

            return ExitCode.Ok;
        }));
        return command;
    }

    /// <summary>The text form of <c>finish_reason</c>: why reading stopped, which checkpoint stands, and where it broke.</summary>
    internal static string FinishLine(RestoreResult result)
    {
        var line = $"finish_reason {result.FinishReason.Name()}";
        if (result.CheckpointsSeen > 0)
        {
            line += string.Create(CultureInfo.InvariantCulture, $" (checkpoint {result.CheckpointCommitted} committed)");
        }

        if (result.FinishRecord is { } record)
        {
            line += $" at {record}";
        }

        if (result.FinishOffset is { } offset)
        {
            line += string.Create(CultureInfo.InvariantCulture, $"{(result.FinishRecord is null ? " at" : ",")} offset 0x{offset:X}");
        }

        return line;
    }
}

internal sealed class RestoreReport
{
    public string FinishReason { get; set; } = "";

    public string? FinishRecord { get; set; }

    public long? FinishOffset { get; set; }

    public string MemorySha256 { get; set; } = "";

    public ulong Pages { get; set; }

    public int CheckpointsSeen { get; set; }

    public int CheckpointCommitted { get; set; }

    public string StreamKind { get; set; } = "";

    public string SenderGeneration { get; set; } = "";

    public string Type { get; set; } = "";

    public int GuestWidth { get; set; }

    public ulong P2mSize { get; set; }

    public int Vcpus { get; set; }

    public string End { get; set; } = "";

    public string? Discarded { get; set; }

    public long VerifyMismatches { get; set; }

    public List<string> Warnings { get; set; } = [];

    public string? Directory { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(RestoreReport))]
internal sealed partial class RestoreCommandJson : JsonSerializerContext;
