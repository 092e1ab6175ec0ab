using System.Buffers.Binary;
using System.CommandLine;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Inspect;
using Xmig.Verify;

namespace Xmig.Cli.Commands;

/// <summary><c>xmig demo</c>: the main job on an embedded default.</summary>
internal static class DemoCommand
{
    public static Command Create(CliContext ctx)
    {
        var dir = new Option<string?>("--dir") { Description = "Where to write the sample streams (default: a folder under the temp directory)." };
        var command = new Command("demo", "Write sample streams of each kind and show inspect and verify on them.") { dir };
        command.SetAction(parse =>
        {
            var target = parse.GetValue(dir) ?? Path.Combine(Path.GetTempPath(), "xmig-demo");
            Directory.CreateDirectory(target);
            ShowV2(ctx, target);
            return (int)ExitCode.Ok;
        });
        return command;
    }

    /// <summary>Migration v2: a stream of each kind written by xmig's writers, inspected and verified.</summary>
    private static void ShowV2(CliContext ctx, string dir)
    {
        var samples = new (string Name, SampleStreamOptions Options)[]
        {
            ("hvm.xl", new SampleStreamOptions { Kind = StreamKind.Xl, Guest = DomainType.X86Hvm, Pages = 64 }),
            ("pv.libxl", new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = DomainType.X86Pv, Pages = 64 }),
            ("hvm.libxc", new SampleStreamOptions { Kind = StreamKind.Libxc, Guest = DomainType.X86Hvm, Pages = 64 }),
            ("colo-hvm.libxl", new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = DomainType.X86Hvm, Pages = 64, Checkpoints = 2, Colo = true }),
        };

        ctx.Out.WriteLine($"== Migration v2 sample streams in {dir}");
        var paths = new List<string>();
        foreach (var (name, options) in samples)
        {
            var path = Path.Combine(dir, "sample-" + name);
            using (var file = File.Create(path))
            {
                SampleStreams.Write(file, options);
            }

            paths.Add(path);
        }

        // A broken one: the first PAGE_DATA claims 70000 entries.
        var bad = File.ReadAllBytes(paths[2]);
        var pageData = FindFirstPageData(bad);
        BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(pageData + 8), 70000);
        var badPath = Path.Combine(dir, "sample-broken.libxc");
        File.WriteAllBytes(badPath, bad);
        paths.Add(badPath);

        ctx.Out.WriteLine();
        ctx.Out.WriteLine($"$ xmig inspect {paths[0]}");
        using (var stream = File.OpenRead(paths[0]))
        {
            StreamInspector.Inspect(stream, StreamFormat.Auto, ctx.Out);
        }

        foreach (var path in paths)
        {
            ctx.Out.WriteLine();
            ctx.Out.WriteLine($"$ xmig verify {path}");
            using var stream = File.OpenRead(path);
            var result = StreamVerifier.Verify(stream);
            var s = result.Summary;
            ctx.Out.WriteLine(result.Error is { } e
                ? $"xmig: error: {e.Message}    (exit code 1)"
                : $"{path}: valid {StreamReport.KindName(s.Kind)} stream, {s.TotalRecords} records, {s.Checkpoints} checkpoints, {s.TotalBytes} bytes");
        }
    }

    private static int FindFirstPageData(byte[] libxc)
    {
        var at = ImageHeader.Size + DomainHeader.Size;
        while (BinaryPrimitives.ReadUInt32LittleEndian(libxc.AsSpan(at)) != (uint)RecordType.PageData)
        {
            at += (int)new RecordHeader(0, BinaryPrimitives.ReadUInt32LittleEndian(libxc.AsSpan(at + 4))).WireSize;
        }

        return at;
    }
}
