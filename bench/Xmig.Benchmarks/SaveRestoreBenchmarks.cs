using BenchmarkDotNet.Attributes;
using Xmig.Domains;
using Xmig.Restore;
using Xmig.Save;

namespace Xmig.Benchmarks;

/// <summary>
/// Issue 4's targets: save and restore of a 4 GiB simulated HVM domain, to and from a file in page cache and through a
/// real pipe, without the digest; the digest is measured on its own.
/// </summary>
[MemoryDiagnoser]
public class SaveRestoreBenchmarks
{
    private string _domain = "";
    private string _stream = "";

    [Params("file", "pipe")]
    public string Source { get; set; } = "file";

    [GlobalSetup]
    public void Setup()
    {
        _domain = DomainBenchData.Hvm4G();
        _stream = DomainBenchData.SavedStream();
    }

    [Benchmark]
    public long Save() => Source == "pipe" ? DomainBenchData.SaveToPipe(_domain) : DomainBenchData.SaveToFile(_domain);

    [Benchmark]
    public long Restore() => DomainBenchData.Restore(_stream, Source == "pipe");

    [Benchmark]
    public long Digest()
    {
        using var domain = SimulatedDomain.Open(_domain);
        return (long)MemoryDigest.Compute(domain).Pages;
    }
}

internal static partial class DomainBenchData
{
    /// <summary>A 4 GiB HVM domain directory (seed 1), created once.</summary>
    public static string Hvm4G() => BenchData.EnsureDirectory("domain-hvm-4g", path =>
    {
        using var domain = SimulatedDomain.Create(path, new DomainSpec(GuestType.Hvm, 4UL << 30, 4, 1));
        domain.Save();
    });

    /// <summary>That domain saved as an xl file (non-live), created once.</summary>
    public static string SavedStream() => BenchData.Ensure("domain-hvm-4g.xl", path =>
    {
        SaveToFile(Hvm4G(), path);
    });

    public static string OutputPath => Path.Combine(BenchData.Directory, "save-out.xl");

    public static long SaveToFile(string domainDir) => SaveToFile(domainDir, OutputPath);

    private static long SaveToFile(string domainDir, string path)
    {
        using var domain = SimulatedDomain.Open(domainDir);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        using var engine = new SaveEngine(domain, file, new SaveOptions { Kind = SaveStreamKind.Xl, Live = false });
        return engine.Run().Bytes;
    }

    public static long SaveToPipe(string domainDir)
    {
        using var domain = SimulatedDomain.Open(domainDir);
        using var sink = new PipeSink();
        long bytes;
        using (var engine = new SaveEngine(domain, sink.Writer, new SaveOptions { Kind = SaveStreamKind.Xl, Live = false }))
        {
            bytes = engine.Run().Bytes;
        }

        sink.Finish();
        return bytes;
    }

    /// <summary>Restores <paramref name="stream"/> into a fresh directory (removed afterwards); returns the pages restored.</summary>
    public static long Restore(string stream, bool pipe)
    {
        var target = Path.Combine(BenchData.Directory, "restore-out-" + Guid.NewGuid().ToString("N"));
        try
        {
            if (pipe)
            {
                using var source = new PipeSource(stream);
                return RestoreInto(source.Reader, target);
            }

            using var file = Workloads.OpenFile(stream);
            return RestoreInto(file, target);
        }
        finally
        {
            if (Directory.Exists(target))
            {
                Directory.Delete(target, recursive: true);
            }
        }
    }
}

internal static partial class DomainBenchData
{
    /// <summary>Restores from <paramref name="input"/> into a fresh directory (removed afterwards).</summary>
    public static long RestoreFrom(Stream input)
    {
        var target = Path.Combine(BenchData.Directory, "restore-out-" + Guid.NewGuid().ToString("N"));
        try
        {
            return RestoreInto(input, target);
        }
        finally
        {
            if (Directory.Exists(target))
            {
                Directory.Delete(target, recursive: true);
            }
        }
    }

    private static long RestoreInto(Stream input, string target)
    {
        using var domain = SimulatedRestore.ToDirectory(input, target).Domain;
        return (long)domain.P2mSize;
    }
}

internal static partial class Registry
{
    static partial void RegisterSaveRestore()
    {
        Throughput.Register("restore", DomainBenchData.SavedStream, DomainBenchData.RestoreFrom);
        Throughput.RegisterCustom("save", pipe => pipe ? DomainBenchData.SaveToPipe(DomainBenchData.Hvm4G()) : DomainBenchData.SaveToFile(DomainBenchData.Hvm4G()));
        Throughput.RegisterCustom("digest", _ =>
        {
            using var domain = SimulatedDomain.Open(DomainBenchData.Hvm4G());
            return (long)MemoryDigest.Compute(domain).Pages * 4096;
        });
    }
}
