using System.Text.Json;
using Xmig.Tests.Domains;

namespace Xmig.Tests.Save;

public class SaveCommandTests
{
    [Fact]
    public void Save_Progress_PrintsEachPhaseToStandardError_AndThePolicyRuns()
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "hvm", "--memory", "16MiB").Code);
        var (code, stdout, stderr) = DomainTestSupport.Cli("save", tmp["d"], "-o", tmp["s.bin"], "--stream", "libxl", "--checkpoints", "2",
            "--interval", "1", "--policy", "xen-legacy", "--progress", "--json");
        Assert.True(code == 0, stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("save: checkpoint 1 setup pass 0:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("save: checkpoint 1 iteration pass 0:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("save: checkpoint 2 checkpoint pass 1:", StringComparison.Ordinal));
        Assert.StartsWith("save: checkpoint 2 done", lines[^1], StringComparison.Ordinal);
        using var report = JsonDocument.Parse(stdout);
        Assert.Equal(2, report.RootElement.GetProperty("checkpoints").GetInt32());
    }

    [Fact]
    public void Save_UnknownPolicy_IsAUsageError()
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "pv", "--memory", "16MiB").Code);
        var (code, _, stderr) = DomainTestSupport.Cli("save", tmp["d"], "-o", tmp["s.bin"], "--policy", "fastest");
        Assert.NotEqual(0, code);
        Assert.Contains("fastest", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(tmp["s.bin"]));
    }
}
