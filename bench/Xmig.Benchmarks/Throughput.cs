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

    private static readonly Dictionary<string, Func<bool, long>> Custom = [];

    public static void Register(string name, Func<string> input, Func<Stream, long> run) => Workloads[name] = (input, run);

    /// <summary>A workload that does its own I/O: given "pipe?", returns the octets it moved.</summary>
    public static void RegisterCustom(string name, Func<bool, long> run) => Custom[name] = run;

    public static int Run(string[] args)
    {
        Registry.RegisterAll();
        var pipe = args.Length > 1 && args[1] == "pipe";
        var repeat = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3;
        if (args.Length > 0 && Custom.TryGetValue(args[0], out var custom))
        {
            for (var i = 0; i < repeat; i++)
            {
                var watch = Stopwatch.StartNew();
                var moved = custom(pipe);
                watch.Stop();
                Report(args[0], pipe, moved, watch.Elapsed, moved);
            }

            return 0;
        }

        if (args.Length == 0 || !Workloads.TryGetValue(args[0], out var workload))
        {
            Console.Error.WriteLine($"usage: throughput {{{string.Join('|', Workloads.Keys.Concat(Custom.Keys))}}} [file|pipe] [repeat]");
            return 2;
        }

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
            Report(args[0], pipe, bytes, sw.Elapsed, result);
        }

        return 0;
    }

    private static void Report(string name, bool pipe, long bytes, TimeSpan elapsed, long result) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name} {(pipe ? "pipe" : "file")}: {bytes / 1e9:F2} GB in {elapsed.TotalMilliseconds:F0} ms = {bytes / elapsed.TotalSeconds / 1e9:F2} GB/s (result {result}), peak RSS {PeakRssMiB()} MiB, GC heap {GC.GetTotalMemory(false) >> 20} MiB"));

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
        RegisterSaveRestore();
    }

    static partial void RegisterVerifyInspect();

    static partial void RegisterConvert();

    static partial void RegisterSaveRestore();
}
