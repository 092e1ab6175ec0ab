using BenchmarkDotNet.Running;

namespace Xmig.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project bench/Xmig.Benchmarks -- [BenchmarkDotNet args]</c> runs the benchmark classes;
/// <c>... -- throughput WORKLOAD [file|pipe]</c> runs one workload once over its 1 GiB input and prints throughput
/// and the process's peak resident memory (VmHWM), which BenchmarkDotNet does not report.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "throughput")
        {
            return Throughput.Run(args[1..]);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
