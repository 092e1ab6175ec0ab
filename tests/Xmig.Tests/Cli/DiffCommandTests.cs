using System.Text.Json;
using Xmig.Domains;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;

namespace Xmig.Tests.Cli;

public class DiffCommandTests
{
    [Fact]
    public void Diff_DomainWithItself_IsEqual_Exit0()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm");
        var (code, stdout, stderr) = DomainTestSupport.Cli("diff", domain.Directory, domain.Directory);
        Assert.True(code == 0, stderr);
        Assert.Contains("are equal", stdout);
    }

    [Fact]
    public void Diff_OnePageChanged_Exit1_NamesThePfn()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv");
        var copy = tmp["copy"];
        CopyDirectory(domain.Directory, copy);
        var pfn = domain.Populated.NextSet(1234);
        using (var memory = new FileStream(Path.Combine(copy, DomainDirectory.MemoryFile), FileMode.Open, FileAccess.ReadWrite))
        {
            memory.Position = ((long)pfn * 4096) + 17;
            var b = memory.ReadByte();
            memory.Position--;
            memory.WriteByte((byte)(b ^ 0x5A));
        }

        var (code, stdout, stderr) = DomainTestSupport.Cli("diff", domain.Directory, copy, "--json");
        Assert.True(code == 1, stderr);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.False(root.GetProperty("equal").GetBoolean());
        Assert.Equal(1UL, root.GetProperty("pages_differing").GetUInt64());
        Assert.Equal(0UL, root.GetProperty("only_in_a").GetUInt64());
        Assert.Equal(domain.PopulatedPages, root.GetProperty("pages_compared").GetUInt64());
        Assert.Equal([pfn], root.GetProperty("first_pfns").EnumerateArray().Select(e => e.GetUInt64()));
        Assert.Equal(0, root.GetProperty("state").GetArrayLength());

        (code, stdout, _) = DomainTestSupport.Cli("diff", domain.Directory, copy);
        Assert.Equal(1, code);
        Assert.Contains($"first differing pfns: 0x{pfn:X}", stdout);
    }

    [Theory]
    [InlineData("xl", "hvm")]
    [InlineData("libxc", "pv")]
    public void Diff_StreamAgainstTheDomainItWasSavedFromAtPause_IsEqual(string kind, string guest)
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, guest);
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Live = false });
        File.WriteAllBytes(tmp["s"], saved.Bytes);
        var (code, stdout, stderr) = DomainTestSupport.Cli("diff", tmp["s"], domain.Directory);
        Assert.True(code == 0, stdout + stderr);
        (code, stdout, stderr) = DomainTestSupport.Cli("diff", tmp["s"], tmp["s"], "--json");
        Assert.True(code == 0, stdout + stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("equal").GetBoolean());
        Assert.Equal(2, Directory.EnumerateFileSystemEntries(tmp.Path).Count()); // no staging directory left
    }

    [Fact]
    public void Diff_StateRecordChanged_NamesTheRecord()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm", seed: 7);
        var copy = tmp["twin"];
        DomainTestSupport.CreateDomain(copy, GuestType.Hvm, seed: 7).Dispose(); // the same seed makes the same domain
        Assert.Equal(0, DomainTestSupport.Cli("diff", domain.Directory, copy).Code);
        var blob = File.ReadAllBytes(Path.Combine(copy, DomainDirectory.HvmContextFile));
        blob[100] ^= 1; // inside the first CPU entry, after the header entry
        File.WriteAllBytes(Path.Combine(copy, DomainDirectory.HvmContextFile), blob);
        var (code, stdout, stderr) = DomainTestSupport.Cli("diff", domain.Directory, copy);
        Assert.True(code == 1, stderr);
        Assert.Contains("state: HVM context:", stdout);
        Assert.Contains("0 differ in content", stdout);
    }

    [Fact]
    public void Diff_BadStreamOrMissingInput_Exit2()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv");
        File.WriteAllBytes(tmp["junk"], [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        var (code, stdout, stderr) = DomainTestSupport.Cli("diff", tmp["junk"], domain.Directory);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("xmig: error: ", stderr);
        (code, _, stderr) = DomainTestSupport.Cli("diff", domain.Directory, tmp["nothing"]);
        Assert.Equal(2, code);
        Assert.Contains("no such stream file or domain directory", stderr);
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }
}
