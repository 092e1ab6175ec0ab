using System.Diagnostics;
using System.Globalization;

namespace Xmig.Benchmarks;

/// <summary>One timed run of a workload with its throughput and peak memory.</summary>
internal static class Throughput
{
    private static readonly Dictionary<string, (Func<string> Input, Func<Stream, long> Run)> Workloads = new()
    {
        ["walk"] = (() => BenchData.V2Libxl(), WalkCore),
        ["walk-libxc"] = (() => BenchData.V2Libxc(), WalkCore),
    };

    public static void Register(string name, Func<string> input, Func<Stream, long> run) => Workloads[name] = (input, run);

    public static int Run(string[] args)
    {
        Registry.RegisterAll();
        if (args.Length == 0 || !Workloads.TryGetValue(args[0], out var workload))
        {
            Console.Error.WriteLine($"usage: throughput {{{string.Join('|', Workloads.Keys)}}} [file|pipe] [repeat]");
            return 2;
        }

        var pipe = args.Length > 1 && args[1] == "pipe";
        var repeat = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3;
        var path = workload.Input();
        var bytes = new FileInfo(path).Length;
        for (var i = 0; i < repeat; i++)
        {
            var sw = Stopwatch.StartNew();
            long result;
            if (pipe)
            {
                using var source = new PipeSource(path);
                result = workload.Run(source.Reader);
            }
            else
            {
                using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
                result = workload.Run(file);
            }

            sw.Stop();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{args[0]} {(pipe ? "pipe" : "file")}: {bytes / 1e9:F2} GB in {sw.Elapsed.TotalMilliseconds:F0} ms = {bytes / sw.Elapsed.TotalSeconds / 1e9:F2} GB/s (result {result}), peak RSS {PeakRssMiB()} MiB, GC heap {GC.GetTotalMemory(false) >> 20} MiB"));
        }

        return 0;
    }

    internal static long WalkCore(Stream stream)
    {
        using var input = new Xmig.Formats.InputBuffer(stream);
        var reader = new Xmig.Formats.V2StreamReader(input);
        long pages = 0;
        while (reader.Read())
        {
            if (reader.Item == Xmig.Formats.V2Item.LibxcRecord && reader.Libxc!.Type == Xmig.Formats.Libxc.RecordType.PageData)
            {
                pages += reader.Libxc.ReadPageData().Count;
            }
        }

        return pages;
    }

    /// <summary>Peak resident set size of this process (VmHWM), in MiB.</summary>
    public static long PeakRssMiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                var kb = long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                return kb >> 10;
            }
        }

        return -1;
    }
}

/// <summary>Workloads added by later benchmark files register here.</summary>
internal static partial class Registry
{
    public static void RegisterAll()
    {
        RegisterVerifyInspect();
        RegisterConvert();
    }

    static partial void RegisterVerifyInspect();

    static partial void RegisterConvert();
}
