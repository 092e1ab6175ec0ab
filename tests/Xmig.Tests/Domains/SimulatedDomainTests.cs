using System.Buffers.Binary;
using System.Security.Cryptography;
using Xmig.Domains;

namespace Xmig.Tests.Domains;

public class SimulatedDomainTests
{
    [Fact]
    public void Create_SameSeed_GivesSameDigest_OtherSeedDiffers()
    {
        using var tmp = new TempDirectory();
        string a, b, c;
        using (var d = DomainTestSupport.CreateDomain(tmp["a"], GuestType.Pv, seed: 5))
        {
            a = MemoryDigest.Compute(d).Sha256;
        }

        using (var d = DomainTestSupport.CreateDomain(tmp["b"], GuestType.Pv, seed: 5))
        {
            b = MemoryDigest.Compute(d).Sha256;
        }

        using (var d = DomainTestSupport.CreateDomain(tmp["c"], GuestType.Pv, seed: 6))
        {
            c = MemoryDigest.Compute(d).Sha256;
        }

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(File.ReadAllBytes(tmp["a/memory.raw"]), File.ReadAllBytes(tmp["b/memory.raw"]));
    }

    [Theory]
    [InlineData("hvm", 8)]
    [InlineData("pv", 8)]
    [InlineData("pv", 4)]
    public void Create_ContentHasZeroRepeatedAndRandomPages(string guest, int width)
    {
        var type = guest == "pv" ? GuestType.Pv : GuestType.Hvm;
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], type, memoryMiB: 32, guestWidth: width);
        var zero = 0;
        var seen = new Dictionary<string, int>();
        for (var pfn = 0UL; pfn < d.P2mSize; pfn++)
        {
            if (!d.IsPopulated(pfn))
            {
                continue;
            }

            var page = d.GetPage(pfn);
            if (!page.ContainsAnyExcept((byte)0))
            {
                zero++;
                continue;
            }

            var key = Convert.ToHexString(SHA256.HashData(page));
            seen[key] = seen.GetValueOrDefault(key) + 1;
        }

        Assert.True(zero > 100, $"{zero} zero pages");
        Assert.Contains(seen.Values, n => n > 10);            // repeated pages
        Assert.True(seen.Values.Count(n => n == 1) > 100);     // random, unique pages
    }

    [Fact]
    public void Create_Hvm_LaysOutRamAroundVgaHoleWithSpecialPagesAndParams()
    {
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], GuestType.Hvm, memoryMiB: 16, vcpus: 3);
        Assert.Equal(GuestType.Hvm, d.GuestType);
        Assert.Equal(0xFF000UL, d.P2mSize);
        Assert.False(d.IsPopulated(0xA0));
        Assert.False(d.IsPopulated(0xBF));
        Assert.True(d.IsPopulated(0x9F));
        Assert.True(d.IsPopulated(0xC0));
        Assert.True(d.IsPopulated(d.GetHvmParam(HvmParam.StorePfn)));
        Assert.True(d.IsPopulated(d.GetHvmParam(HvmParam.ConsolePfn)));
        Assert.Equal((16UL << 20) / 4096 + 16, d.PopulatedPages);
        Assert.Null(HvmContextBlob.Validate(d.HvmContext));
        Assert.Equal(HvmContextBlob.Magic, BinaryPrimitives.ReadUInt32LittleEndian(d.HvmContext[8..]));
        Assert.Equal(2, d.MaxVcpuId);
        Assert.True(d.IsVcpuOnline(2));
        Assert.False(d.IsVcpuOnline(3));
        Assert.StartsWith("QEVM", System.Text.Encoding.ASCII.GetString(d.EmulatorContext[..4]));
        Assert.Equal(3, d.EmulatorXenstore.Count);
        Assert.Equal(0, d.CpuidPolicy.Length % 24);
        Assert.Equal(0, d.MsrPolicy.Length % 16);
    }

    [Theory]
    [InlineData(8, 5168, 0xC)]
    [InlineData(4, 2800, 0xB)]
    public void Create_Pv_HasContextsOfGuestWidthAndPageTables(int width, int basicSize, byte topType)
    {
        var top = (PageType)topType;
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], GuestType.Pv, memoryMiB: 64, vcpus: 2, guestWidth: width);
        Assert.Equal(width, d.GuestWidth);
        Assert.Equal((64UL << 20) / 4096, d.P2mSize);
        Assert.Equal(d.P2mSize, d.PopulatedPages);
        Assert.Equal(basicSize, d.GetVcpuContext(0, VcpuContextKind.Basic).Length);
        Assert.Equal(basicSize, d.GetVcpuContext(1, VcpuContextKind.Basic).Length);
        Assert.Equal(128, d.GetVcpuContext(0, VcpuContextKind.Extended).Length);
        Assert.True(d.GetVcpuContext(0, VcpuContextKind.Xsave).Length >= 16);
        Assert.Equal(0, d.GetVcpuContext(0, VcpuContextKind.Msrs).Length);
        Assert.Equal(4096, d.SharedInfo.Length);
        var fpp = 4096UL / (ulong)width;
        Assert.Equal((int)((d.P2mSize + fpp - 1) / fpp), d.P2mFrames.Length);
        var types = new PageType[d.P2mSize];
        d.GetPageTypes(0, types);
        Assert.Single(types, t => t == top);
        Assert.Contains(PageType.L1Tab, types);
        Assert.Contains(PageType.L2Tab, types);
        Assert.All(d.P2mFrames.ToArray(), f => Assert.Equal(PageType.NoTab, types[f]));
        Assert.Equal(1, d.MaxVcpuId);
    }

    [Fact]
    public void Open_AfterCreate_HasSameStateAndDigest()
    {
        using var tmp = new TempDirectory();
        MemoryDigestResult before;
        byte[] basic, shared;
        ulong frames;
        using (var d = DomainTestSupport.CreateDomain(tmp["d"], GuestType.Pv, memoryMiB: 16, vcpus: 3, seed: 9))
        {
            before = MemoryDigest.Compute(d);
            basic = d.GetVcpuContext(2, VcpuContextKind.Basic).ToArray();
            shared = d.SharedInfo.ToArray();
            frames = d.P2mFrames[0];
        }

        using var again = SimulatedDomain.Open(tmp["d"]);
        Assert.Equal(before, MemoryDigest.Compute(again));
        Assert.Equal(before, MemoryDigest.Compute((IDomain)again));
        Assert.Equal(basic, again.GetVcpuContext(2, VcpuContextKind.Basic).ToArray());
        Assert.Equal(shared, again.SharedInfo.ToArray());
        Assert.Equal(frames, again.P2mFrames[0]);
        Assert.Equal(2, again.MaxVcpuId);
        Assert.Equal(9UL, again.Seed);
        Assert.False(again.Writable);
    }

    [Fact]
    public void Digest_IsSha256OverPfnAndPageOfEveryFrameHoldingData()
    {
        using var tmp = new TempDirectory();
        var dir = tmp["d"];
        Directory.CreateDirectory(dir);
        using var d = SimulatedDomain.CreateEmpty(dir, GuestType.Hvm, 8, 1024);
        var page = new byte[4096];
        page.AsSpan().Fill(0xAB);
        d.WritePage(7, PageType.NoTab, page);
        d.WritePage(3, PageType.NoTab, new byte[4096]);   // a zero page holding data counts
        d.WritePage(5, PageType.XAlloc, default);          // allocated, no data: not counted
        d.WritePage(9, PageType.XTab, default);            // nothing

        var expected = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var pfn = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(pfn, 3);
        expected.AppendData(pfn);
        expected.AppendData(new byte[4096]);
        BinaryPrimitives.WriteUInt64LittleEndian(pfn, 7);
        expected.AppendData(pfn);
        expected.AppendData(page);

        var digest = MemoryDigest.Compute(d);
        Assert.Equal(Convert.ToHexStringLower(expected.GetHashAndReset()), digest.Sha256);
        Assert.Equal(2UL, digest.Pages);
        Assert.Equal(8UL, d.P2mSize);
        Assert.Equal(digest, MemoryDigest.Compute((IDomain)d));
    }

    [Fact]
    public void Digest_OfZeroPagesNeverWritten_HashesZerosAndLeavesThemHoles()
    {
        using var tmp = new TempDirectory();
        var dir = tmp["d"];
        Directory.CreateDirectory(dir);
        using var d = SimulatedDomain.CreateEmpty(dir, GuestType.Hvm, 8, 4096);
        var page = new byte[4096];
        page.AsSpan().Fill(0x5A);
        for (ulong pfn = 0; pfn < 64; pfn++)
        {
            d.WritePage(pfn, PageType.NoTab, pfn % 3 == 0 ? page : new byte[4096]);
        }

        var expected = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var pfnBytes = new byte[8];
        for (ulong pfn = 0; pfn < 64; pfn++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(pfnBytes, pfn);
            expected.AppendData(pfnBytes);
            expected.AppendData(pfn % 3 == 0 ? page : new byte[4096]);
        }

        Assert.Equal(Convert.ToHexStringLower(expected.GetHashAndReset()), MemoryDigest.Compute(d).Sha256);

        // Reading a hole through the shared mapping would have allocated it; the digest left frames 1 and 2 holes.
        Assert.Equal((3UL, 4UL), d.Memory.NextDataRun(1));
    }

    [Fact]
    public void Digest_SeesAGuestWriteIntoAZeroPageHole()
    {
        using var tmp = new TempDirectory();
        var dir = tmp["d"];
        Directory.CreateDirectory(dir);
        using var d = SimulatedDomain.CreateEmpty(dir, GuestType.Hvm, 8, 1024);
        d.WritePage(2, PageType.NoTab, new byte[4096]);
        var before = MemoryDigest.Compute(d);
        d.GuestWrite(2, 100, [1, 2, 3]);

        var page = new byte[4096];
        page[100] = 1;
        page[101] = 2;
        page[102] = 3;
        var expected = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var pfnBytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(pfnBytes, 2);
        expected.AppendData(pfnBytes);
        expected.AppendData(page);
        var after = MemoryDigest.Compute(d);
        Assert.NotEqual(before, after);
        Assert.Equal(Convert.ToHexStringLower(expected.GetHashAndReset()), after.Sha256);
    }

    [Fact]
    public void WritePage_BeyondLimit_IsRefused_AndTypesAreTracked()
    {
        using var tmp = new TempDirectory();
        var dir = tmp["d"];
        Directory.CreateDirectory(dir);
        using var d = SimulatedDomain.CreateEmpty(dir, GuestType.Pv, 8, 16);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.WritePage(16, PageType.NoTab, new byte[4096]));
        Assert.Throws<ArgumentOutOfRangeException>(() => d.GrowP2m(17));
        Assert.Throws<ArgumentException>(() => d.WritePage(1, PageType.NoTab, new byte[10]));
        Assert.Throws<ArgumentException>(() => d.WritePage(1, (PageType)0x6, new byte[4096]));

        d.WritePage(2, PageType.L1TabPinned, new byte[4096]);
        d.WritePage(4, PageType.XAlloc, default);
        d.WritePage(5, PageType.Broken, default);
        var types = new PageType[6];
        d.GetPageTypes(0, types);
        Assert.Equal([PageType.XTab, PageType.XTab, PageType.L1TabPinned, PageType.XTab, PageType.XAlloc, PageType.Broken], types);

        // Data replaces XALLOC; XALLOC after data drops the data.
        var data = new byte[4096];
        data[100] = 1;
        d.WritePage(4, PageType.NoTab, data);
        Assert.True(d.IsPopulated(4));
        Assert.Equal(1, d.GetPage(4)[100]);
        d.WritePage(4, PageType.XAlloc, default);
        Assert.False(d.IsPopulated(4));
        Assert.False(d.GetPage(4).ContainsAnyExcept((byte)0));
    }

    [Fact]
    public void Save_AfterRestoreLikeGrowth_CutsMemoryFileToP2mSize()
    {
        using var tmp = new TempDirectory();
        var domain = DomainDirectory.Build(tmp["d"], working =>
        {
            var d = SimulatedDomain.CreateEmpty(working, GuestType.Hvm, 8, 1 << 20);
            var page = new byte[4096];
            page[0] = 42;
            d.WritePage(0x1234, PageType.NoTab, page);
            d.SetHvmContext(HvmContextBlob.Build(1, 1, 1000));
            d.Save();
            return d;
        });
        using (domain)
        {
            Assert.Equal(0x1235UL * 4096, (ulong)new FileInfo(tmp["d/memory.raw"]).Length);
            Assert.Equal(0x1235UL, domain.MaxP2mSize);
            Assert.Equal(42, domain.GetPage(0x1234)[0]);
        }

        using var reopened = SimulatedDomain.Open(tmp["d"]);
        Assert.Equal(1UL, reopened.PopulatedPages);
        Assert.Equal(42, reopened.GetPage(0x1234)[0]);
    }

    [Fact]
    public void Build_WhenBuildFails_LeavesNothingBehind()
    {
        using var tmp = new TempDirectory();
        Assert.Throws<InvalidOperationException>(() => DomainDirectory.Build(tmp["d"], working =>
        {
            File.WriteAllText(Path.Combine(working, "junk"), "x");
            throw new InvalidOperationException("boom");
        }));
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void Build_IntoNonEmptyDirectory_IsRefused()
    {
        using var tmp = new TempDirectory();
        Directory.CreateDirectory(tmp["d"]);
        File.WriteAllText(tmp["d/x"], "x");
        Assert.Throws<IOException>(() => DomainTestSupport.CreateDomain(tmp["d"], GuestType.Hvm));
    }

    [Fact]
    public void ReadAndClearDirty_RequiresLogDirtyAndEnoughWords()
    {
        using var tmp = new TempDirectory();
        using var d = DomainTestSupport.CreateDomain(tmp["d"], GuestType.Pv, memoryMiB: 16);
        var bitmap = new ulong[(d.P2mSize + 63) / 64];
        Assert.Throws<InvalidOperationException>(() => d.ReadAndClearDirty(bitmap));
        d.EnableLogDirty();
        Assert.Throws<ArgumentException>(() => d.ReadAndClearDirty(new ulong[1]));
        d.GuestWrite(100, 0, [1, 2, 3]);
        d.WritePage(200, PageType.NoTab, new byte[4096]);
        Assert.Equal(2, d.ReadAndClearDirty(bitmap));
        Assert.Equal(1UL << (100 % 64), bitmap[100 / 64]);
        Assert.Equal(1UL << (200 % 64), bitmap[200 / 64]);
        Assert.Equal(0, d.ReadAndClearDirty(bitmap));
        Assert.All(bitmap, w => Assert.Equal(0UL, w));
    }

    [Fact]
    public void WritePages_HasTheEffectOfWritePagePerFrame()
    {
        using var tmp = new TempDirectory();
        Directory.CreateDirectory(tmp["bulk"]);
        Directory.CreateDirectory(tmp["single"]);
        using var bulk = SimulatedDomain.CreateEmpty(tmp["bulk"], GuestType.Hvm, 8, 4096);
        using var single = SimulatedDomain.CreateEmpty(tmp["single"], GuestType.Hvm, 8, 4096);

        // Frames 100..139: data, zeros, data again, over frames of which some already hold data (a later checkpoint).
        var data = new byte[40 * 4096];
        var prng = new Random(7);
        for (var i = 0; i < 40; i++)
        {
            if (i is not (3 or 4 or 20 or 39))
            {
                prng.NextBytes(data.AsSpan(i * 4096, 4096));
            }
        }

        var before = new byte[4096];
        prng.NextBytes(before);
        foreach (var d in new[] { bulk, single })
        {
            d.WritePage(104, PageType.NoTab, before); // holds data; the run's zeros must clear it
            d.WritePage(120, PageType.NoTab, before);
            d.EnableLogDirty();
        }

        bulk.WritePages(100, PageType.NoTab, data);
        for (var i = 0; i < 40; i++)
        {
            single.WritePage(100 + (ulong)i, PageType.NoTab, data.AsSpan(i * 4096, 4096));
        }

        Assert.Equal(MemoryDigest.Compute(single).Sha256, MemoryDigest.Compute(bulk).Sha256);
        Assert.Equal(single.PopulatedPages, bulk.PopulatedPages);
        Assert.Equal(single.P2mSize, bulk.P2mSize);
        Assert.True(bulk.GetPage(104).IndexOfAnyExcept((byte)0) < 0, "zeros over a frame with data clear it");
        var a = new ulong[64];
        var b = new ulong[64];
        Assert.Equal(single.ReadAndClearDirty(a), bulk.ReadAndClearDirty(b));
        Assert.Equal(a, b);
        var types = new PageType[40];
        var types2 = new PageType[40];
        bulk.GetPageTypes(100, types);
        single.GetPageTypes(100, types2);
        Assert.Equal(types2, types);
    }

    [Fact]
    public void WritePages_BeyondTheLimit_IsRefusedAsWritePageRefusesIt()
    {
        using var tmp = new TempDirectory();
        Directory.CreateDirectory(tmp["d"]);
        using var d = SimulatedDomain.CreateEmpty(tmp["d"], GuestType.Hvm, 8, 64);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.WritePages(60, PageType.NoTab, new byte[8 * 4096]));
    }
}
