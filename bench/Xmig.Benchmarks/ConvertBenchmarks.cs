using BenchmarkDotNet.Attributes;
using Xmig.Conversion;
using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Benchmarks;

/// <summary>
/// Issue 3's target: <c>convert</c> of a 1 GiB legacy HVM stream (Xen 4.1 sender, 64-bit toolstack) to a libxl v2
/// stream, file to file and pipe to pipe.
/// </summary>
[MemoryDiagnoser]
public class ConvertBenchmarks
{
    private string _path = "";

    [Params("file", "pipe")]
    public string Source { get; set; } = "file";

    [GlobalSetup]
    public void Setup() => _path = LegacyBenchData.Hvm();

    [Benchmark]
    public long Convert() => Source == "pipe" ? LegacyBenchData.ConvertPipeToPipe(_path) : LegacyBenchData.ConvertFileToFile(_path);
}

internal static class LegacyBenchData
{
    /// <summary>A legacy HVM image as Xen 4.1–4.5 wrote it, with <paramref name="bytes"/> of page data.</summary>
    public static string Hvm(long bytes = BenchData.GiB) => BenchData.Ensure($"legacy-hvm-w64-{bytes >> 20}m.bin", path =>
    {
        var pages = (uint)(bytes / 4096);
        using var file = File.Create(path);
        using var output = new OutputBuffer(file);
        using (var w = new LegacyStreamWriter(output, new LegacyWriterOptions(8, GuestType.Hvm) { Generation = LegacyWriterGeneration.Legacy41 }))
        {
            var p2mSize = pages + 16;
            w.WriteHvmHeader(p2mSize);
            w.WriteTscInfo(new LegacyTscInfo(0, 123456789, 2_400_000, 1));
            var page = new byte[4096];
            for (uint pfn = 0; pfn < pages; pfn++)
            {
                // Distinct contents: the pfn stamped every 512 octets over a constant pattern.
                page.AsSpan().Fill((byte)(pfn * 31));
                for (var o = 0; o < 4096; o += 512)
                {
                    BitConverter.TryWriteBytes(page.AsSpan(o), pfn);
                }

                w.AddPage(pfn, LegacyPageType.NoTab, page);
            }

            w.FlushBatch();
            w.WriteVcpuInfo(1, [3UL]);
            w.WriteHvmParam(LegacyChunkId.HvmIdentPt, 0xFEFFC000);
            w.WriteHvmParam(LegacyChunkId.HvmConsolePfn, p2mSize - 6);
            w.EndBody();
            var context = new byte[1024];
            BitConverter.TryWriteBytes(context, 0x54381286u);
            w.WriteHvmTail(p2mSize - 3, p2mSize - 4, p2mSize - 5, context);
            var dm = new byte[8192];
            "QEVM"u8.CopyTo(dm);
            w.WriteDeviceModelRecord(LegacyDeviceModelSignature.DeviceModelRecord0002, dm);
        }

        output.Flush();
    });

    public static string OutputPath => Path.Combine(BenchData.Directory, "convert-out.libxl");

    public static LegacyConvertOptions Options => new() { Width = 8, Guest = GuestType.Hvm, Format = V2OutputFormat.Libxl };

    public static long ConvertFileToFile(string path)
    {
        using var input = Workloads.OpenFile(path);
        using var output = new FileStream(OutputPath, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        LegacyToV2Converter.Convert(input, output, Options);
        return output.Length;
    }

    /// <summary>Input fed through one pipe, output drained from another, as <c>cat | xmig convert -i - -o - | cat</c>.</summary>
    public static long ConvertPipeToPipe(string path)
    {
        using var source = new PipeSource(path);
        using var sink = new PipeSink();
        LegacyToV2Converter.Convert(source.Reader, sink.Writer, Options);
        return sink.Finish();
    }
}

/// <summary>A real OS pipe whose read end is drained (and counted) by a second thread.</summary>
internal sealed class PipeSink : IDisposable
{
    private readonly System.IO.Pipes.AnonymousPipeServerStream _server;
    private readonly System.IO.Pipes.AnonymousPipeClientStream _client;
    private readonly Thread _drain;
    private long _bytes;

    public PipeSink()
    {
        _server = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.In);
        _client = new System.IO.Pipes.AnonymousPipeClientStream(System.IO.Pipes.PipeDirection.Out, _server.ClientSafePipeHandle);
        Xmig.IO.PipeTuning.TryGrow(_client);
        _drain = new Thread(() =>
        {
            var buffer = new byte[1 << 20];
            int n;
            while ((n = _server.Read(buffer)) > 0)
            {
                _bytes += n;
            }
        })
        { IsBackground = true, Name = "pipe drain" };
        _drain.Start();
    }

    public Stream Writer => _client;

    /// <summary>Closes the write end and returns the octets drained.</summary>
    public long Finish()
    {
        _client.Dispose();
        _drain.Join();
        return _bytes;
    }

    public void Dispose()
    {
        _client.Dispose();
        _drain.Join();
        _server.Dispose();
    }
}

internal static partial class Registry
{
    static partial void RegisterConvert()
    {
        Throughput.Register("convert", () => LegacyBenchData.Hvm(), s => ConvertTo(s));
    }

    private static long ConvertTo(Stream input)
    {
        if (input is FileStream)
        {
            using var output = new FileStream(LegacyBenchData.OutputPath, FileMode.Create, FileAccess.Write, FileShare.None, 1);
            LegacyToV2Converter.Convert(input, output, LegacyBenchData.Options);
            return output.Length;
        }

        using var sink = new PipeSink();
        LegacyToV2Converter.Convert(input, sink.Writer, LegacyBenchData.Options);
        return sink.Finish();
    }
}
