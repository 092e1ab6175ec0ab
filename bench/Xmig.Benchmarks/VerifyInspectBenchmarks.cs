using BenchmarkDotNet.Attributes;
using Xmig.Formats;
using Xmig.Inspect;
using Xmig.Verify;

namespace Xmig.Benchmarks;

/// <summary>
/// Issue 2's targets: <c>verify</c> and <c>inspect</c> over a 1 GiB v2 stream in page cache, from a file (where
/// verify seeks past page data) and from a real pipe (where every octet is read).
/// </summary>
public class VerifyInspectBenchmarks : StreamSourceBenchmark
{
    protected override string Input() => BenchData.V2Libxl();

    [Benchmark]
    public long Verify() => Run(Workloads.Verify);

    [Benchmark]
    public long Inspect() => Run(Workloads.Inspect);
}

/// <summary>The workloads shared by the BenchmarkDotNet classes and the throughput runner.</summary>
internal static class Workloads
{
    public static FileStream OpenFile(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);

    /// <summary>Verifies; returns the pages seen, or throws when the stream is invalid.</summary>
    public static long Verify(Stream stream)
    {
        var result = StreamVerifier.Verify(stream);
        if (!result.IsValid)
        {
            throw new InvalidOperationException("benchmark input is invalid: " + result.Error?.Message);
        }

        return result.Summary.TotalBytes;
    }

    /// <summary>Inspects (text rendering to a null writer); returns the stream's length.</summary>
    public static long Inspect(Stream stream)
    {
        var result = StreamInspector.Inspect(stream, StreamFormat.Auto, TextWriter.Null);
        return result.Summary.TotalBytes;
    }
}

internal static partial class Registry
{
    static partial void RegisterVerifyInspect()
    {
        Throughput.Register("verify", () => BenchData.V2Libxl(), Workloads.Verify);
        Throughput.Register("inspect", () => BenchData.V2Libxl(), Workloads.Inspect);
        Throughput.Register("verify-libxc", () => BenchData.V2Libxc(), Workloads.Verify);
    }
}
