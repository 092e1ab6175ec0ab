using BenchmarkDotNet.Attributes;
using Xmig.Formats;
using Xmig.Formats.Libxc;

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
        using var source = Open(out var pipe);
        using (pipe)
        {
            using var input = new InputBuffer(source);
            var reader = new V2StreamReader(input);
            long pages = 0;
            while (reader.Read())
            {
                if (reader.Item == V2Item.LibxcRecord && reader.Libxc!.Type == RecordType.PageData)
                {
                    pages += reader.Libxc.ReadPageData().Count;
                }
            }

            return pages;
        }
    }

    private Stream Open(out PipeSource? pipe)
    {
        if (Source == "pipe")
        {
            pipe = new PipeSource(_path);
            return pipe.Reader;
        }

        pipe = null;
        return new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
    }
}
