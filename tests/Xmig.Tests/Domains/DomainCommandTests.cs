using System.Text.Json;
using Xmig.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Domains;

public class DomainCommandTests
{
    [Fact]
    public void Create_ThenDigestJson_ReportsDigestPagesAndType()
    {
        using var tmp = new TempDirectory();
        var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "pv", "--memory", "16MiB", "--vcpus", "2", "--seed", "4", "--guest-width", "32");
        Assert.True(code == 0, stderr);
        Assert.Contains("created pv domain", stdout);

        (code, stdout, stderr) = DomainTestSupport.Cli("domain", "digest", tmp["d"], "--json");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.Equal(4096UL, root.GetProperty("pages").GetUInt64());
        Assert.Equal("pv", root.GetProperty("type").GetString());
        Assert.Equal(32, root.GetProperty("guest_width").GetInt32());
        Assert.Equal(2, root.GetProperty("vcpus").GetInt32());
        using var d = SimulatedDomain.Open(tmp["d"]);
        Assert.Equal(MemoryDigest.Compute(d).Sha256, root.GetProperty("memory_sha256").GetString());

        (code, stdout, _) = DomainTestSupport.Cli("domain", "digest", tmp["d"]);
        Assert.Equal(0, code);
        Assert.Equal($"{MemoryDigest.Compute(d).Sha256}  {tmp["d"]}", stdout.TrimEnd());
    }

    [Theory]
    [InlineData("--memory", "lots")]
    [InlineData("--memory", "8MiB")]
    [InlineData("--memory", "17GiB")]
    [InlineData("--vcpus", "0")]
    [InlineData("--guest-width", "32")]
    public void Create_BadOptions_ExitsUsageAndLeavesNothing(string option, string value)
    {
        using var tmp = new TempDirectory();
        var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "hvm", option, value);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("xmig: error: ", stderr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void Create_OverNonEmptyDirectory_ExitsUsageOrIo()
    {
        using var tmp = new TempDirectory();
        Directory.CreateDirectory(tmp["d"]);
        File.WriteAllText(tmp["d/keep"], "x");
        var (code, _, stderr) = DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "hvm", "--memory", "16MiB");
        Assert.Equal(2, code);
        Assert.Contains("not empty", stderr);
        Assert.Equal("x", File.ReadAllText(tmp["d/keep"]));
    }

    [Fact]
    public void Digest_MissingDirectory_ExitsUsageOrIo()
    {
        using var tmp = new TempDirectory();
        var (code, _, stderr) = DomainTestSupport.Cli("domain", "digest", tmp["nope"]);
        Assert.Equal(2, code);
        Assert.StartsWith("xmig: error: ", stderr);
    }

    [Trait("Category", XmigProcess.Category)]
    [Fact]
    public void ChildProcess_CreateAndDigest_AgreeWithLibrary()
    {
        using var tmp = new TempDirectory();
        var (code, _, stderr) = DomainTestSupport.CliProcess("domain", "create", tmp["d"], "--type", "hvm", "--memory", "16MiB", "--vcpus", "2", "--seed", "12");
        Assert.True(code == 0, stderr);
        (code, var stdout, stderr) = DomainTestSupport.CliProcess("domain", "digest", tmp["d"], "--json");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        using var d = SimulatedDomain.Open(tmp["d"]);
        Assert.Equal(MemoryDigest.Compute(d).Sha256, json.RootElement.GetProperty("memory_sha256").GetString());
        Assert.Equal("hvm", json.RootElement.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("4GiB", 4UL << 30)]
    [InlineData("512MiB", 512UL << 20)]
    [InlineData("16G", 16UL << 30)]
    [InlineData("4096", 4096UL)]
    [InlineData("1.5GiB", 3UL << 29)]
    public void ByteSize_Parses(string text, ulong bytes)
    {
        Assert.True(ByteSize.TryParse(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("1024", 1UL << 30)]
    [InlineData("64", 64UL << 20)]
    [InlineData("512MiB", 512UL << 20)]
    [InlineData("4096B", 4096UL)]
    public void Memory_BareNumbersAreMiB_AsXlReadsThem(string text, ulong bytes)
    {
        Assert.True(ByteSize.TryParseMemory(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("99999999999999999999GiB")]
    [InlineData("18446744073709551616")]
    [InlineData("1e3")]
    public void ByteSize_RefusesWhatOverflowsOrIsNoSize(string text) => Assert.False(ByteSize.TryParse(text, out _));

    [Fact]
    public void Create_WithAnOverflowingMemorySize_IsOneLineAndNoTrace()
    {
        using var tmp = new TempDirectory();
        var (code, _, err) = DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "hvm", "--memory", "99999999999999999999GiB");
        Assert.Equal(2, code);
        Assert.Contains("--memory: '99999999999999999999GiB' is not a size", err, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", err, StringComparison.Ordinal);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(Directory.Exists(tmp["d"]));
    }

    [Fact]
    public void Create_WithABareMemoryNumber_MakesThatManyMiB()
    {
        using var tmp = new TempDirectory();
        var (code, output, err) = DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "pv", "--memory", "32");
        Assert.True(code == 0, err);
        Assert.Contains("32MiB", output, StringComparison.Ordinal);
    }
}
