using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Domains;
using Xmig.Save;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig save DIR -o FILE|- [--stream xl|libxl|libxc|legacy-4.0|legacy-4.1] [--checkpoints N] [--workload SPEC]</c>:
/// writes a simulated domain as Xen would. The domain runs (its workload writing its memory file in place) until
/// the save pauses it; it is left as the stream's final image.
/// </summary>
internal static class SaveCommand
{
    public static Command Create(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory (see 'xmig domain create')." };
        var output = new Option<string>("--output", "-o") { Description = "Output file, or - for standard output.", Required = true };
        var stream = new Option<string>("--stream", "-s") { Description = "Stream kind: xl (default), libxl, libxc, legacy-4.0, legacy-4.1.", DefaultValueFactory = _ => "xl" };
        stream.AcceptOnlyFromAmong("xl", "libxl", "libxc", "legacy-4.0", "legacy-4.1");
        var checkpoints = new Option<int>("--checkpoints") { Description = "Write a checkpointed (Remus) stream of N checkpoints; 0 writes a plain stream.", DefaultValueFactory = _ => 0 };
        var workload = new Option<string>("--workload") { Description = "Guest workload while it runs: idle, uniform:RATE (MiB/s), hotset:SIZE:RATE.", DefaultValueFactory = _ => "idle" };
        var interval = new Option<int>("--interval") { Description = "Milliseconds the guest runs between checkpoints.", DefaultValueFactory = _ => 100 };
        var nonLive = new Option<bool>("--non-live") { Description = "Pause the guest first and send every page once (as 'xl save'), instead of pre-copy." };
        var seed = new Option<ulong>("--seed") { Description = "Workload seed.", DefaultValueFactory = _ => 1 };
        var toolstack = new Option<int>("--toolstack-bits") { Description = "Legacy streams: word size of the saving toolstack, 32 or 64.", DefaultValueFactory = _ => 64 };
        var policy = new Option<string?>("--policy") { Description = "When live pre-copy stops iterating: xen (Xen v2: at most 5 passes, stop below 50 dirty pages), xen-legacy (xc_domain_save: 29 passes, 3x memory sent, 50 pages). Default: xen for v2 streams, xen-legacy for legacy streams." };
        policy.AcceptOnlyFromAmong([.. PrecopyPolicies.Names]);
        var progress = new Option<bool>("--progress") { Description = "Print each phase and pass (checkpoint, pass, pages and octets sent, dirty pages, elapsed) to standard error." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document: what was written and the final image's memory_sha256." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("save", "Save a simulated domain as a Xen stream (plain or checkpointed), optionally under a running workload.")
        {
            dir, output, stream, checkpoints, workload, interval, nonLive, seed, toolstack, policy, progress, json, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), giveUp: true, interruption =>
        {
            var target = parse.GetValue(output)!;
            var toStdout = target == "-";
            if (toStdout && parse.GetValue(json))
            {
                return EngineCommand.Usage(ctx, "--json needs -o FILE (standard output carries the stream)");
            }

            if (!WorkloadSpec.TryParse(parse.GetValue(workload), out var spec, out var problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            var n = parse.GetValue(checkpoints);
            if (n < 0 || parse.GetValue(interval) < 0)
            {
                return EngineCommand.Usage(ctx, "--checkpoints and --interval must not be negative");
            }

            var kind = parse.GetValue(stream) switch
            {
                "libxl" => SaveStreamKind.Libxl,
                "libxc" => SaveStreamKind.Libxc,
                "legacy-4.0" => SaveStreamKind.Legacy40,
                "legacy-4.1" => SaveStreamKind.Legacy41,
                _ => SaveStreamKind.Xl,
            };
            var toolstackBits = parse.GetValue(toolstack);
            if (toolstackBits is not (32 or 64))
            {
                return EngineCommand.Usage(ctx, $"--toolstack-bits {toolstackBits} is not 32 or 64");
            }

            var options = new SaveOptions
            {
                Kind = kind,
                Checkpoints = n,
                Live = !parse.GetValue(nonLive),
                CheckpointInterval = TimeSpan.FromMilliseconds(parse.GetValue(interval)),
                LegacyToolstackWidth = toolstackBits / 8,
                Policy = parse.GetValue(policy) is { } name ? PrecopyPolicies.Parse(name) : null,
            };

            // A KVM guest (xmig domain create --backend kvm) runs its own program during the save; a simulated one runs --workload.
            var path = parse.GetValue(dir)!;
            var kvm = Xmig.Domains.Kvm.KvmDomain.IsKvmDirectory(path);
            if (kvm && spec.Kind != WorkloadKind.Idle)
            {
                return EngineCommand.Usage(ctx, "--workload applies to simulated domains; a KVM guest runs its own program");
            }

            var simulated = kvm ? null : SimulatedDomain.Open(path, writable: true);
            using IDomain domain = simulated != null ? simulated : Xmig.Domains.Kvm.KvmDomain.Open(path);
            simulated?.StartWorkload(spec, parse.GetValue(seed));
            if (kvm)
            {
                domain.Unpause();
            }
            SaveResult result;
            long guestWrites;
            var file = toStdout ? null : new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, 1);
            if (file != null)
            {
                interruption.OnGiveUp(() => File.Delete(target));
            }

            try
            {
                var sink = file ?? Xmig.IO.PipeTuning.OpenStandardOutput();
                using (var engine = new SaveEngine(domain, sink, options))
                {
                    if (parse.GetValue(progress))
                    {
                        engine.Progress = p => ctx.Error.WriteLine(Describe(p));
                    }

                    result = engine.Run(interruption.Token);
                }

                guestWrites = simulated?.Workload?.PagesWritten ?? 0;
                simulated?.StopWorkload();
                file?.Dispose();
            }
            catch
            {
                simulated?.StopWorkload();
                if (file != null)
                {
                    file.Dispose();
                    File.Delete(target);
                }

                throw;
            }

            if (parse.GetValue(json))
            {
                var digest = MemoryDigest.Compute(domain);
                var report = new SaveReport
                {
                    StreamKind = parse.GetValue(stream)!,
                    Bytes = result.Bytes,
                    PagesSent = result.PagesSent,
                    Iterations = result.Iterations,
                    Checkpoints = result.Checkpoints,
                    FinalDirtyPages = result.FinalDirtyPages,
                    Workload = spec.ToString(),
                    GuestPagesWritten = guestWrites,
                    MemorySha256 = digest.Sha256,
                    Pages = digest.Pages,
                };
                ctx.Out.WriteLine(JsonSerializer.Serialize(report, SaveCommandJson.Default.SaveReport));
            }
            else if (!toStdout)
            {
                ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"saved {parse.GetValue(stream)} stream {target}: {result.Bytes} octets, {result.PagesSent} pages sent, {result.Iterations} passes{(result.Checkpoints > 0 ? $", {result.Checkpoints} checkpoints" : "")}"));
            }

            return ExitCode.Ok;
        }));
        return command;
    }

    /// <summary>One progress line: <c>save: checkpoint 1 iteration pass 2: 1234 pages, 5.0 MiB sent, 80 dirty, 0.12 s</c>.</summary>
    private static string Describe(SaveProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"save: checkpoint {p.Checkpoint} {Phase(p.Phase)} pass {p.Iteration}: {p.PagesSent} pages, {p.BytesSent / 1048576.0:F1} MiB sent, {p.DirtyPages} dirty, {p.Elapsed.TotalSeconds:F2} s");

    private static string Phase(SavePhase phase) => phase switch
    {
        SavePhase.Setup => "setup",
        SavePhase.Iteration => "iteration",
        SavePhase.StopAndCopy => "stop-and-copy",
        SavePhase.Checkpoint => "checkpoint",
        SavePhase.Resumed => "resumed",
        _ => "done",
    };
}

internal sealed class SaveReport
{
    public string StreamKind { get; set; } = "";

    public long Bytes { get; set; }

    public long PagesSent { get; set; }

    public int Iterations { get; set; }

    public int Checkpoints { get; set; }

    public long FinalDirtyPages { get; set; }

    public string Workload { get; set; } = "";

    public long GuestPagesWritten { get; set; }

    public string MemorySha256 { get; set; } = "";

    public ulong Pages { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(SaveReport))]
internal sealed partial class SaveCommandJson : JsonSerializerContext;
