using Xmig.Domains;
using Xmig.Domains.Kvm;

namespace Xmig.Tests.Domains.Kvm;

public class KvmCommandTests
{
    [KvmFact]
    public void CreateSaveVerifyRestore_KvmGuest_StepCountContinuesFromTheSave()
    {
        using var tmp = new TempDirectory();
        var (code, output, error) = DomainTestSupport.Cli("domain", "create", tmp["g"], "--backend", "kvm", "--program", "counter", "--memory", "16MiB");
        Assert.True(code == 0, error);
        Assert.Contains("created kvm domain", output, StringComparison.Ordinal);
        Assert.Contains("program counter", output, StringComparison.Ordinal);

        (code, _, error) = DomainTestSupport.Cli("save", tmp["g"], "-o", tmp["g.xl"]);
        Assert.True(code == 0, error);
        CounterCheck saved;
        using (var image = SimulatedDomain.Open(tmp["g"]))
        {
            saved = CounterImage.Check(image); // the save left the guest paused, its image the stream's final one
        }

        Assert.True(saved.Consistent);
        Assert.True(saved.Steps > 0, "the guest ran during the live save");
        (code, output, error) = DomainTestSupport.Cli("verify", tmp["g.xl"]);
        Assert.True(code == 0, output + error);

        (code, _, error) = DomainTestSupport.Cli("restore", tmp["g.xl"], "--into", tmp["r"], "--backend", "kvm");
        Assert.True(code == 0, error);
        Assert.True(KvmDomain.IsKvmDirectory(tmp["r"]));
        using var restored = KvmDomain.Open(tmp["r"]);
        Assert.Equal(saved, CounterImage.Check(restored));
        restored.Unpause();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (restored.Sweeps < saved.Sweeps + 2 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(1);
        }

        restored.Pause();
        var later = CounterImage.Check(restored);
        Assert.True(later.Consistent && later.Steps > saved.Steps, $"steps {later.Steps} after {saved.Steps}, {later.BadPages} bad pages");
    }

    [Theory]
    [InlineData("dirty:64MiB", "dirty:WSS:RATE")]
    [InlineData("dirty:64MiB:256", "does not fit")]
    public void Create_KvmBadProgram_SaysWhatIsWrong(string program, string expected)
    {
        using var tmp = new TempDirectory();
        var (code, _, error) = DomainTestSupport.Cli("domain", "create", tmp["g"], "--backend", "kvm", "--program", program, "--memory", "16MiB");
        Assert.Equal(2, code);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(tmp["g"]));
    }
}
