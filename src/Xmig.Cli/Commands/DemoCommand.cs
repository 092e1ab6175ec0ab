using System.CommandLine;
using System.Globalization;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Inspect;
using Xmig.Samples;
using Xmig.Verify;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig demo [--out DIR]</c>: the main job on an embedded default. It writes sample streams of every kind
/// into a work directory, shows <c>inspect</c> and <c>verify</c> on them, and shows a broken stream rejected with
/// its record and offset.
/// </summary>
internal static class DemoCommand
{
    public static Command Create(CliContext ctx)
    {
        var outDir = new Option<string?>("--out") { Description = "Keep the demo's files in this directory (default: a temporary directory, removed afterwards)." };
        var command = new Command("demo", "Write sample streams of each kind and show inspect and verify on them.") { outDir };
        command.SetAction(parse => (int)Run(ctx, parse.GetValue(outDir)));
        return command;
    }

    internal static ExitCode Run(CliContext ctx, string? outDir)
    {
        var keep = outDir is not null;
        var dir = outDir ?? Path.Combine(Path.GetTempPath(), "xmig-demo-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        try
        {
            var failures = 0;
            failures += StreamsSection(ctx, dir);
            ctx.Out.WriteLine();
            failures += DemoEngineSections.SaveRestore(ctx, dir);
            ctx.Out.WriteLine();
            failures += DemoEngineSections.Matrix(ctx, dir);
            ctx.Out.WriteLine();
            failures += DemoMigrationSection.Run(ctx, dir);
            ctx.Out.WriteLine();
            ctx.Out.WriteLine(failures == 0 ? "demo: every check passed" : $"demo: {failures} check(s) FAILED");
            if (keep)
            {
                ctx.Out.WriteLine($"demo: files kept in {dir}");
            }

            return failures == 0 ? ExitCode.Ok : ExitCode.Invalid;
        }
        finally
        {
            if (!keep)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static readonly (string Name, SampleStreamOptions Options)[] Samples =
    [
        ("hvm.xl", new() { Kind = StreamKind.Xl, Guest = GuestType.Hvm, Pages = 2048 }),
        ("hvm.libxl", new() { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 2048 }),
        ("hvm.libxc", new() { Kind = StreamKind.Libxc, Guest = GuestType.Hvm, Pages = 2048 }),
        ("pv64.libxl", new() { Kind = StreamKind.Libxl, Guest = GuestType.Pv, Pages = 2048, GuestWidth = 8 }),
        ("pv32.libxc", new() { Kind = StreamKind.Libxc, Guest = GuestType.Pv, Pages = 2048, GuestWidth = 4 }),
        ("hvm-remus3.libxl", new() { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 2048, Checkpoints = 3 }),
        ("hvm-colo2.libxl", new() { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 1024, Checkpoints = 2, Colo = true }),
    ];

    private static int StreamsSection(CliContext ctx, string dir)
    {
        var o = ctx.Out;
        o.WriteLine("== 1. Migration v2 streams written by xmig, checked by `xmig verify`");
        o.WriteLine();
        o.WriteLine($"  {"file",-18} {"kind",-6} {"guest",-5} {"bytes",10} {"records",8} {"pfns",6} {"ckpts",5}  verify");
        var failures = 0;
        foreach (var (name, options) in Samples)
        {
            var path = Path.Combine(dir, name);
            using (var file = File.Create(path))
            {
                SampleStreams.Write(file, options);
            }

            var result = VerifyFile(path);
            var s = result.Summary;
            var verdict = result.IsValid ? "valid" : "INVALID: " + result.Error?.Message;
            failures += result.IsValid ? 0 : 1;
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-18} {StreamReport.KindName(s.Kind),-6} {(options.Guest == GuestType.Hvm ? "hvm" : "pv"),-5} {s.TotalBytes,10} {s.TotalRecords,8} {s.DistinctPfns,6} {s.Checkpoints,5}  {verdict}"));
        }

        o.WriteLine();
        o.WriteLine("== 2. `xmig inspect hvm.xl` (records and summary)");
        o.WriteLine();
        using (var file = File.OpenRead(Path.Combine(dir, "hvm.xl")))
        {
            StreamInspector.Inspect(file, StreamFormat.Auto, new IndentedWriter(o, "  "));
        }

        o.WriteLine();
        o.WriteLine("== 3. A damaged copy of hvm.libxl: one page batch claims 70000 pages");
        o.WriteLine();
        var broken = Path.Combine(dir, "hvm-damaged.libxl");
        var offset = DamageFirstPageData(Path.Combine(dir, "hvm.libxl"), broken);
        var damaged = VerifyFile(broken);
        if (damaged.Error is { } e)
        {
            o.WriteLine($"  $ xmig verify hvm-damaged.libxl   (count patched at offset 0x{offset:X})");
            o.WriteLine("  xmig: error: " + e.Message);
            o.WriteLine("  exit code 1");
        }
        else
        {
            o.WriteLine("  FAILED: the damaged stream was accepted");
            failures++;
        }

        return failures;
    }

    private static VerifyResult VerifyFile(string path)
    {
        using var file = File.OpenRead(path);
        return StreamVerifier.Verify(file);
    }

    /// <summary>Copies <paramref name="source"/> and sets the first PAGE_DATA count to 70000; returns its offset.</summary>
    private static long DamageFirstPageData(string source, string destination)
    {
        File.Copy(source, destination, overwrite: true);
        long countOffset;
        using (var file = File.OpenRead(source))
        using (var input = new InputBuffer(file))
        {
            var reader = new V2StreamReader(input);
            countOffset = -1;
            while (reader.Read())
            {
                if (reader.Item == V2Item.LibxcRecord && reader.Libxc!.Type == RecordType.PageData)
                {
                    countOffset = reader.ItemOffset + RecordHeader.Size;
                    break;
                }
            }
        }

        using var output = new FileStream(destination, FileMode.Open, FileAccess.Write);
        output.Position = countOffset;
        output.Write(BitConverter.GetBytes(70000u));
        return countOffset;
    }

    /// <summary>Indents every line written through it.</summary>
    private sealed class IndentedWriter(TextWriter inner, string indent) : TextWriter
    {
        private bool _lineStart = true;

        public override System.Text.Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (_lineStart && value != '\n')
            {
                inner.Write(indent);
            }

            inner.Write(value);
            _lineStart = value == '\n';
        }
    }
}
