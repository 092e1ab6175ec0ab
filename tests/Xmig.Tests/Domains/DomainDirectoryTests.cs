using Xmig.Domains;

namespace Xmig.Tests.Domains;

public class DomainDirectoryTests
{
    public static TheoryData<string, string> Corruptions => new()
    {
        { "delete memory.raw", "memory.raw is missing" },
        { "truncate memory.raw", "memory.raw is" },
        { "extend memory.raw", "memory.raw is" },
        { "delete domain.json", "domain.json is missing" },
        { "garbage domain.json", "domain.json:" },
        { "unknown field domain.json", "domain.json:" },
        { "wrong format domain.json", "format" },
        { "wrong pages domain.json", "populated.bitmap marks" },
        { "wrong type domain.json", "type" },
        { "truncate populated.bitmap", "populated.bitmap is" },
        { "truncate page-types.bin", "page-types.bin is" },
        { "bad type page-types.bin", "page-types.bin: frame" },
        { "truncate vcpu0-basic.bin", "vcpu0-basic.bin is" },
        { "delete vcpu1-basic.bin", "vcpu1-basic.bin is missing" },
        { "truncate shared-info.bin", "shared-info.bin is" },
        { "truncate p2m-frames.bin", "p2m-frames.bin is" },
        { "truncate cpuid-policy.bin", "cpuid-policy.bin is" },
        { "oversize vcpu0-extended.bin", "vcpu0-extended.bin is" },
    };

    public static TheoryData<string, string> HvmCorruptions => new()
    {
        { "delete hvm-context.bin", "hvm-context.bin is missing" },
        { "magic hvm-context.bin", "header magic" },
        { "truncate hvm-context.bin", "hvm-context.bin:" },
        { "vcpus domain.json", "describes 2 vCPUs" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void Open_CorruptPvDirectory_IsRefusedWithReason(string corruption, string reason)
    {
        using var tmp = new TempDirectory();
        DomainTestSupport.CreateDomain(tmp["d"], GuestType.Pv, memoryMiB: 16, vcpus: 2).Dispose();
        Corrupt(tmp["d"], corruption);
        var e = Assert.Throws<InvalidDomainException>(() => SimulatedDomain.Open(tmp["d"]).Dispose());
        Assert.Contains(reason, e.Message);
        Assert.StartsWith(tmp["d"], e.Message);
    }

    [Theory]
    [MemberData(nameof(HvmCorruptions))]
    public void Open_CorruptHvmDirectory_IsRefusedWithReason(string corruption, string reason)
    {
        using var tmp = new TempDirectory();
        DomainTestSupport.CreateDomain(tmp["d"], GuestType.Hvm, memoryMiB: 16, vcpus: 2).Dispose();
        Corrupt(tmp["d"], corruption);
        var e = Assert.Throws<InvalidDomainException>(() => SimulatedDomain.Open(tmp["d"]).Dispose());
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Open_MissingDirectory_IsAnIoError()
    {
        using var tmp = new TempDirectory();
        Assert.Throws<DirectoryNotFoundException>(() => SimulatedDomain.Open(tmp["nope"]));
    }

    [Fact]
    public void Cli_DigestOfCorruptDirectory_ExitsInvalidWithOneLine()
    {
        using var tmp = new TempDirectory();
        DomainTestSupport.CreateDomain(tmp["d"], GuestType.Hvm).Dispose();
        Corrupt(tmp["d"], "truncate memory.raw");
        var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "digest", tmp["d"]);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("xmig: error: ", line);
        Assert.Contains("memory.raw is", line);
    }

    private static void Corrupt(string dir, string corruption)
    {
        var parts = corruption.Split(' ');
        var path = Path.Combine(dir, parts[^1]);
        switch (parts[0])
        {
            case "delete":
                File.Delete(path);
                break;
            case "truncate":
                using (var s = new FileStream(path, FileMode.Open))
                {
                    s.SetLength(s.Length - 1);
                }

                break;
            case "extend":
                using (var s = new FileStream(path, FileMode.Open))
                {
                    s.SetLength(s.Length + 4096);
                }

                break;
            case "oversize":
                File.WriteAllBytes(path, new byte[200]);
                break;
            case "garbage":
                File.WriteAllText(path, "{ \"format\": \"xmig-domain\", ");
                break;
            case "unknown":
                File.WriteAllText(path, File.ReadAllText(path).Replace("\"seed\"", "\"sede\""));
                break;
            case "wrong" when parts[1] == "format":
                File.WriteAllText(path, File.ReadAllText(path).Replace("xmig-domain", "other"));
                break;
            case "wrong" when parts[1] == "pages":
                File.WriteAllText(path, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(path), "\"pages\": \\d+", "\"pages\": 3"));
                break;
            case "wrong" when parts[1] == "type":
                File.WriteAllText(path, File.ReadAllText(path).Replace("\"pv\"", "\"arm\""));
                break;
            case "vcpus":
                File.WriteAllText(path, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(path), "\"vcpus\": \\[[^\\]]*\\]", "\"vcpus\": [0]"));
                break;
            case "bad":
                var bytes = File.ReadAllBytes(path);
                bytes[10] = 0x6;
                File.WriteAllBytes(path, bytes);
                break;
            case "magic":
                var blob = File.ReadAllBytes(path);
                blob[8] ^= 0xFF;
                File.WriteAllBytes(path, blob);
                break;
            default:
                throw new ArgumentException(corruption);
        }
    }
}
