using Xmig.Domains;
using Xmig.Extract;
using Xmig.Tests.Cli;
using Xmig.Tests.Domains;

namespace Xmig.Tests.Extract;

public class ElfCoreTests
{
    [Fact]
    public void Write_MoreThan65534Runs_UsesPnXnumAndEveryRunIsASegment()
    {
        // Every other frame populated (zero pages: holes in the memory file, so this costs no disk): 70000 runs.
        const ulong Frames = 140_000;
        using var tmp = new TempDirectory();
        Directory.CreateDirectory(tmp["d"]);
        using var domain = SimulatedDomain.CreateEmpty(tmp["d"], GuestType.Hvm, 8, Frames);
        var zero = new byte[GuestPage.Size];
        var one = new byte[GuestPage.Size];
        one[7] = 0x42;
        for (ulong pfn = 0; pfn < Frames; pfn += 2)
        {
            domain.WritePage(pfn, PageType.NoTab, pfn == 0x1234 ? one : zero);
        }

        var path = tmp["core"];
        ElfCore.Summary summary;
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            summary = ElfCore.Write(domain, handle);
        }

        Assert.Equal(70_000, summary.Runs);
        Assert.Equal(0, summary.Vcpus);
        var elf = ElfCoreFile.Read(path);
        Assert.Equal(70_000, elf.Loads.Count);
        Assert.Empty(elf.Notes);
        Assert.All(elf.Loads.Select((l, i) => (l, i)), x => Assert.Equal((ulong)x.i * 2 * GuestPage.Size, x.l.PhysicalAddress));
        using var file = File.OpenRead(path);
        Assert.Equal(one, ElfCoreFile.Page(file, elf.Loads, 0x1234));
        Assert.Equal(zero, ElfCoreFile.Page(file, elf.Loads, 0x1236));
        Assert.Null(ElfCoreFile.Page(file, elf.Loads, 0x1235));

        if (ElfCoreFile.ReadElf(path, "-h", "-W") is { } header)
        {
            Assert.Contains("65535 (70000)", header, StringComparison.Ordinal); // readelf shows PN_XNUM and the count
        }
    }
}
