using BenchmarkDotNet.Attributes;

namespace Xmig.Benchmarks;

/// <summary>
/// Reading a 1 GiB v2 stream (in page cache) from a file and from a pipe: the raw walk through every record and
/// page batch, which bounds what inspect and verify can reach.
/// </summary>
[MemoryDiagnoser]
public class V2ReadBenchmarks
{
    private string _path = "";

    [Params("file", "pipe")]
    public string Source { get; set; } = "file";

    [GlobalSetup]
    public void Setup() => _path = BenchData.V2Libxl();

    [Benchmark]
    public long WalkAllPages()
    {
        if (Source == "pipe")
        {
            using var pipe = new PipeSource(_path);
            return Throughput.WalkCore(pipe.Reader);
        }

        using var file = Workloads.OpenFile(_path);
        return Throughput.WalkCore(file);
    }
}
