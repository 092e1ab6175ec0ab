using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Win32.SafeHandles;
using Xmig.Domains;
using Xmig.Extract;
using Xmig.Restore;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig extract STREAM|DIR -o FILE [--format elf|raw] [--checkpoint N]</c>: guest memory as an ELF core (what
/// <c>xl dump-core</c> users open in <c>crash</c> and <c>gdb</c>) or as a sparse raw image. A stream is restored once
/// into a hidden staging directory beside FILE, removed afterwards; FILE is written beside its final name and renamed
/// into place, so a failure leaves neither behind.
/// </summary>
internal static class ExtractCommand
{
    public static Command Create(CliContext ctx)
    {
        var input = new Argument<string>("INPUT") { Description = "A stream of any kind xmig reads (xl, libxl, libxc, legacy; '-' for stdin), or a domain directory." };
        var output = new Option<string>("--output", "-o") { Description = "The file to write (replaced if it exists).", Required = true, HelpName = "FILE" };
        var format = new Option<string?>("--format") { Description = "elf (an ELF64 core: one PT_LOAD per run of pfns, vCPU registers in notes) or raw (page n at n*4096, sparse). Default: raw for a FILE named *.raw or *.img, else elf." };
        format.AcceptOnlyFromAmong("elf", "raw");
        var checkpoint = new Option<int?>("--checkpoint") { Description = "Checkpointed stream: extract checkpoint N (1 = the first); default the last complete one.", HelpName = "N" };
        var maxMemory = new Option<string>("--max-memory") { Description = "Bound on guest-physical space of a stream (HVM streams declare none).", DefaultValueFactory = _ => "32GiB", HelpName = "SIZE" };
        var width = new Option<int?>("--width", "-w") { Description = "Legacy input: bitness of the saving toolstack (32 or 64); detected if omitted." };
        var guest = new Option<string?>("--guest-type", "-g") { Description = "Legacy input: guest type (pv or hvm); detected if omitted." };
        guest.AcceptOnlyFromAmong("pv", "hvm");
        var json = new Option<bool>("--json") { Description = "Print one JSON document (format, runs, pages, vcpus, bytes, ...)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("extract", "Write guest memory of a stream or a domain directory as an ELF core (readelf, gdb, crash) or a raw sparse image.")
        {
            input, output, format, checkpoint, maxMemory, width, guest, json, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            var path = parse.GetValue(input)!;
            var target = parse.GetValue(output)!;
            var raw = parse.GetValue(format) is { } f
                ? f == "raw"
                : target.EndsWith(".raw", StringComparison.OrdinalIgnoreCase) || target.EndsWith(".img", StringComparison.OrdinalIgnoreCase);
            if (!ByteSize.TryParse(parse.GetValue(maxMemory), out var max) || max < GuestPage.Size)
            {
                return EngineCommand.Usage(ctx, $"--max-memory \"{parse.GetValue(maxMemory)}\" is not a size");
            }

            if (parse.GetValue(checkpoint) is { } n && n < 1)
            {
                return EngineCommand.Usage(ctx, $"--checkpoint {n} is not a checkpoint number (1, 2, ...)");
            }

            if (parse.GetValue(width) is { } w && w is not (32 or 64))
            {
                return EngineCommand.Usage(ctx, $"--width {w} is not 32 or 64");
            }

            if (target == "-")
            {
                return EngineCommand.Usage(ctx, "-o -: extract writes a sparse, seekable file; name a file");
            }

            var full = Path.GetFullPath(target);
            if (Directory.Exists(full))
            {
                return EngineCommand.Usage(ctx, $"-o {target}: is a directory");
            }

            if (Xmig.IO.FileKind.IsSpecial(full))
            {
                return EngineCommand.Usage(ctx, $"-o {target}: not a regular file (extract replaces FILE by renaming a finished image onto it)");
            }

            var parent = Path.GetDirectoryName(full)!;
            if (!Directory.Exists(parent))
            {
                return EngineCommand.Usage(ctx, $"-o {target}: no such directory {parent}");
            }

            var isDirectory = path != "-" && Directory.Exists(path);
            if (isDirectory && parse.GetValue(checkpoint) is { } c)
            {
                return EngineCommand.Usage(ctx, $"--checkpoint {c} applies to a checkpointed stream; {path} is a domain directory");
            }

            var streamOnly = parse.GetValue(width) is not null ? "--width" : parse.GetValue(guest) is not null ? "--guest-type"
                : parse.GetResult(maxMemory) is { Implicit: false } ? "--max-memory" : null;
            if (isDirectory && streamOnly != null)
            {
                return EngineCommand.Usage(ctx, $"{streamOnly} applies to a stream; {path} is a domain directory");
            }

            var options = new RestoreOptions
            {
                MaxGuestPhysicalBytes = max,
                StopAfterCheckpoint = parse.GetValue(checkpoint),
                LegacyWidth = parse.GetValue(width),
                GuestType = parse.GetValue(guest) switch { "pv" => GuestType.Pv, "hvm" => GuestType.Hvm, _ => null },
            };
            InterruptCleanup.SweepStale(parent, Path.GetFileName(full), ctx.Error);
            using var cleanup = new InterruptCleanup();
            using var source = isDirectory ? DomainSource.FromDirectory(path) : OpenStream(path, parent, options, cleanup);
            if (CheckCheckpoint(ctx, source, parse.GetValue(checkpoint)) is { } refused)
            {
                return refused;
            }

            var report = Write(source, target, full, raw, cleanup);
            if (parse.GetValue(json))
            {
                ctx.Out.WriteLine(JsonSerializer.Serialize(report, ExtractCommandJson.Default.ExtractReport));
            }
            else
            {
                var from = source.Restored is { } r
                    ? $"{r.StreamKind} stream {path}" + (r.CheckpointsSeen == 0 ? ""
                        : parse.GetValue(checkpoint) is not null ? string.Create(CultureInfo.InvariantCulture, $", checkpoint {r.CheckpointCommitted} (reading stopped there)")
                        : string.Create(CultureInfo.InvariantCulture, $", checkpoint {r.CheckpointCommitted} of {r.CheckpointsSeen}"))
                    : $"domain {path}";
                ctx.Out.WriteLine(raw
                    ? string.Create(CultureInfo.InvariantCulture, $"extracted {from} to {target}: raw image, {report.Pages} pages, {report.Bytes} octets (sparse)")
                    : string.Create(CultureInfo.InvariantCulture, $"extracted {from} to {target}: ELF core, {report.Pages} pages in {report.Runs} PT_LOAD segments, registers of {report.Vcpus} vCPU(s)"));
            }

            return ExitCode.Ok;
        }));
        return command;
    }

    private static DomainSource OpenStream(string path, string stagingParent, RestoreOptions options, InterruptCleanup cleanup)
    {
        if (path != "-" && !File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such stream file or domain directory");
        }

        using var stream = StreamInput.Open(path, decimalIsFd: false);
        return DomainSource.FromStream(stream, StreamInput.Describe(path), stagingParent, options, cleanup.Add);
    }

    private static ExitCode? CheckCheckpoint(CliContext ctx, DomainSource source, int? wanted)
    {
        if (wanted is not { } n || source.Restored is not { } r)
        {
            return null;
        }

        if (r.CheckpointsSeen == 0)
        {
            return EngineCommand.Usage(ctx, $"--checkpoint {n}: {source.Name} is not a checkpointed stream");
        }

        if (r.CheckpointCommitted != n)
        {
            return EngineCommand.Usage(ctx, string.Create(CultureInfo.InvariantCulture,
                $"--checkpoint {n}: {source.Name} has {r.CheckpointCommitted} complete checkpoint(s)"));
        }

        return null;
    }

    /// <summary>Writes the image beside <paramref name="full"/> and renames it into place; on any failure removes it.</summary>
    private static ExtractReport Write(DomainSource source, string target, string full, bool raw, InterruptCleanup cleanup)
    {
        var partial = Path.Combine(Path.GetDirectoryName(full)!, string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(full)}.xmig-{Environment.ProcessId}-{Guid.NewGuid():N}"));
        var report = new ExtractReport { Format = raw ? "raw" : "elf", Output = target, Input = source.Name };
        try
        {
            cleanup.Add(partial);
            using (var handle = File.OpenHandle(partial, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                var domain = source.Domain;
                if (raw)
                {
                    report.Bytes = RawImage.Write(domain, handle);
                    report.Pages = domain.PopulatedPages;
                }
                else
                {
                    var summary = ElfCore.Write(domain, handle);
                    (report.Runs, report.Pages, report.Vcpus, report.Bytes) = (summary.Runs, summary.Pages, summary.Vcpus, summary.Bytes);
                }

                RandomAccess.FlushToDisk(handle);
            }

            File.Move(partial, full, overwrite: true);
        }
        catch (IOException e)
        {
            TryDelete(partial);
            throw new IOException($"-o {target}: {e.Message.Replace(partial, target, StringComparison.Ordinal)}", e);
        }
        catch
        {
            TryDelete(partial);
            throw;
        }

        if (source.Restored is { } r)
        {
            report.StreamKind = r.StreamKind;
            report.CheckpointsSeen = r.CheckpointsSeen;
            report.CheckpointCommitted = r.CheckpointCommitted;
        }

        return report;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

internal sealed class ExtractReport
{
    public string Format { get; set; } = "";

    public string Input { get; set; } = "";

    public string Output { get; set; } = "";

    public string? StreamKind { get; set; }

    public int? CheckpointsSeen { get; set; }

    public int? CheckpointCommitted { get; set; }

    public ulong Pages { get; set; }

    /// <summary>PT_LOAD segments (ELF only).</summary>
    public long Runs { get; set; }

    /// <summary>vCPUs whose registers are in the notes (ELF only).</summary>
    public int Vcpus { get; set; }

    /// <summary>Length of the output file (it is sparse: zero pages take no space).</summary>
    public long Bytes { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ExtractReport))]
internal sealed partial class ExtractCommandJson : JsonSerializerContext;
