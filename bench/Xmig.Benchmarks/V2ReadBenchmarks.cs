using BenchmarkDotNet.Attributes;

namespace Xmig.Benchmarks;

/// <summary>
/// Reading a 1 GiB v2 stream (in page cache) from a file and from a pipe: the raw walk through every record and
/// page batch, which bounds what inspect and verify can reach.
/// </summary>
public class V2ReadBenchmarks : StreamSourceBenchmark
{
    protected override string Input() => BenchData.V2Libxl();

    [Benchmark]
    public long WalkAllPages() => Run(Throughput.WalkCore);
}

/// <summary>A workload over one input stream, read from a file in page cache or through a real pipe.</summary>
[MemoryDiagnoser]
public abstract class StreamSourceBenchmark
{
    private string _path = "";

    [Params("file", "pipe")]
    public string Source { get; set; } = "file";

    [GlobalSetup]
    public void Setup() => _path = Input();

    protected abstract string Input();

    protected long Run(Func<Stream, long> workload)
    {
        if (Source == "pipe")
        {
            using var pipe = new PipeSource(_path);
            return workload(pipe.Reader);
        }

        using var file = Workloads.OpenFile(_path);
        return workload(file);
    }
}
