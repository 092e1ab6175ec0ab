using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Xmig.Domains;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Restore;

namespace Xmig.Tests.Cli;

public class ExtractCommandTests
{
    [Theory]
    [InlineData("xl", "hvm", 8)]
    [InlineData("libxl", "hvm", 8)]
    [InlineData("libxc", "pv", 8)]
    [InlineData("legacy-4.1", "pv", 4)]
    public void Extract_SavedStream_ElfLoadsCoverExactlyThePopulatedPfnsWithTheirBytesAndRegisters(string kind, string guest, int width)
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, guest, width);
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Live = false });
        File.WriteAllBytes(tmp["s.bin"], saved.Bytes);

        var (code, stdout, stderr) = DomainTestSupport.Cli("extract", tmp["s.bin"], "-o", tmp["core"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("ELF core", stdout);
        AssertCoreMatches(tmp["core"], domain);
        Assert.Equal(["core", "s.bin", Path.GetFileName(domain.Directory)], Directory.EnumerateFileSystemEntries(tmp.Path).Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void Extract_DomainDirectory_ElfMatchesAndRawImageEqualsMemoryFile()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv", 8, vcpus: 3);
        var (code, _, stderr) = DomainTestSupport.Cli("extract", domain.Directory, "-o", tmp["core.elf"]);
        Assert.True(code == 0, stderr);
        AssertCoreMatches(tmp["core.elf"], domain);

        // A *.raw name chooses the raw format.
        (code, var stdout, stderr) = DomainTestSupport.Cli("extract", domain.Directory, "-o", tmp["image.raw"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("raw image", stdout);
        Assert.Equal(File.ReadAllBytes(Path.Combine(domain.Directory, DomainDirectory.MemoryFile)), File.ReadAllBytes(tmp["image.raw"]));

        // --format wins over the name, and an existing output is replaced.
        (code, _, stderr) = DomainTestSupport.Cli("extract", domain.Directory, "-o", tmp["image.raw"], "--format", "elf");
        Assert.True(code == 0, stderr);
        AssertCoreMatches(tmp["image.raw"], domain);
    }

    [Fact]
    public void Extract_HvmStreamAsRaw_IsSparseAndHoldsEveryPageAtItsPfn()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Libxc, Live = false });
        File.WriteAllBytes(tmp["s.libxc"], saved.Bytes);
        var (code, _, stderr) = DomainTestSupport.Cli("extract", tmp["s.libxc"], "-o", tmp["mem"], "--format", "raw");
        Assert.True(code == 0, stderr);
        Assert.Equal((long)domain.P2mSize * 4096, new FileInfo(tmp["mem"]).Length); // 4 GiB: the special pages sit below 4 GiB

        using var file = File.OpenRead(tmp["mem"]);
        var page = new byte[4096];
        for (var pfn = domain.Populated.NextSet(0); pfn < domain.P2mSize; pfn = domain.Populated.NextSet(pfn + 1))
        {
            file.Position = (long)pfn * 4096;
            file.ReadExactly(page);
            Assert.True(domain.GetPage(pfn).SequenceEqual(page), $"pfn 0x{pfn:X}");
        }

        var allocated = AllocatedBytes(tmp["mem"]);
        if (allocated is { } bytes)
        {
            Assert.True(bytes < 64L << 20, $"{bytes} octets allocated for a 16 MiB guest");
        }
    }

    [Theory]
    [InlineData("libxl")]
    [InlineData("libxc")]
    [InlineData("legacy-4.1")]
    public void Extract_Checkpoint_PicksThatCheckpoint_DefaultTheLast(string kind)
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "hvm");
        var saved = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = 3 });
        Assert.Equal(3, saved.AtCheckpoint.Count);
        Assert.NotEqual(saved.AtCheckpoint[0].Sha256, saved.AtCheckpoint[2].Sha256); // so picking one is seen
        File.WriteAllBytes(tmp["remus"], saved.Bytes);
        for (var n = 1; n <= 3; n++)
        {
            var (code, stdout, stderr) = DomainTestSupport.Cli("extract", tmp["remus"], "-o", tmp[$"c{n}.elf"], "--checkpoint", n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(code == 0, stderr);
            Assert.Contains($"checkpoint {n}", stdout);
            Assert.Equal(saved.AtCheckpoint[n - 1].Sha256, DigestOf(tmp[$"c{n}.elf"]));
        }

        Assert.Equal(0, DomainTestSupport.Cli("extract", tmp["remus"], "-o", tmp["last.elf"]).Code);
        Assert.Equal(saved.AtCheckpoint[2].Sha256, DigestOf(tmp["last.elf"]));

        var (refused, _, error) = DomainTestSupport.Cli("extract", tmp["remus"], "-o", tmp["c4.elf"], "--checkpoint", "4");
        Assert.Equal(2, refused);
        Assert.Contains("has 3 complete checkpoint(s)", error);
        Assert.False(File.Exists(tmp["c4.elf"]));
    }

    [Fact]
    public void Extract_CheckpointOfAPlainStreamOrADirectory_IsRefused()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv");
        File.WriteAllBytes(tmp["plain"], SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Libxl, Live = false }).Bytes);
        var (code, _, stderr) = DomainTestSupport.Cli("extract", tmp["plain"], "-o", tmp["x"], "--checkpoint", "1");
        Assert.Equal(2, code);
        Assert.Contains("not a checkpointed stream", stderr);
        (code, _, stderr) = DomainTestSupport.Cli("extract", domain.Directory, "-o", tmp["x"], "--checkpoint", "1");
        Assert.Equal(2, code);
        Assert.Contains("domain directory", stderr);
        foreach (var option in new[] { "-w", "--guest-type", "--max-memory" })
        {
            (code, _, stderr) = DomainTestSupport.Cli("extract", domain.Directory, "-o", tmp["x"], option, option == "-w" ? "64" : option == "--guest-type" ? "pv" : "1GiB");
            Assert.Equal(2, code);
            Assert.Contains("applies to a stream", stderr);
        }

        Assert.False(File.Exists(tmp["x"]));
    }

    [Fact]
    public void Extract_BadInputOrUnwritableOutput_OneLineAndNothingLeftBehind()
    {
        using var tmp = new TempDirectory();
        var junk = new byte[70000];
        new Random(5).NextBytes(junk);
        File.WriteAllBytes(tmp["junk"], junk);
        var (code, stdout, stderr) = DomainTestSupport.Cli("extract", tmp["junk"], "-o", tmp["out.elf"]);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("xmig: error: ", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Equal(["junk"], Directory.EnumerateFileSystemEntries(tmp.Path).Select(p => Path.GetFileName(p)).ToArray());

        using var domain = SaveRestoreSupport.Domain(tmp, "pv");
        foreach (var output in new[] { tmp["no/such/dir/out.elf"], tmp.Path, "/dev/full" })
        {
            (code, _, stderr) = DomainTestSupport.Cli("extract", domain.Directory, "-o", output);
            Assert.Equal(2, code);
            Assert.StartsWith("xmig: error: -o ", stderr);
            Assert.Single(stderr.TrimEnd().Split('\n'));
        }

        (code, _, stderr) = DomainTestSupport.Cli("extract", tmp["missing"], "-o", tmp["out.elf"]);
        Assert.Equal(2, code);
        Assert.Contains("no such stream file or domain directory", stderr);
        Assert.Equal(2, Directory.EnumerateFileSystemEntries(tmp.Path).Count()); // junk and the domain
    }

    [Xmig.Tests.Domains.Kvm.KvmFact]
    public void Extract_KvmGuest_CoreOpensInGdbAtTheGuestsInstructionPointer()
    {
        using var tmp = new TempDirectory();
        var (code, _, stderr) = DomainTestSupport.Cli("domain", "create", tmp["k"], "--backend", "kvm", "--memory", "16MiB");
        Assert.True(code == 0, stderr);
        (code, _, stderr) = DomainTestSupport.Cli("extract", tmp["k"], "-o", tmp["k.core"]);
        Assert.True(code == 0, stderr);
        using var domain = SimulatedDomain.Open(tmp["k"]);
        AssertCoreMatches(tmp["k.core"], domain);
        Assert.Contains("\"backend\":\"kvm\"", DomainTestSupport.Cli("domain", "info", tmp["k"], "--json").Out);

        var rip = ExpectedRip(domain, 0);
        var gdb = new ProcessStartInfo("gdb") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-batch", "-nx", "-ex", "info registers rip", "-c", tmp["k.core"] })
        {
            gdb.ArgumentList.Add(a);
        }

        try
        {
            using var process = Process.Start(gdb)!;
            _ = process.StandardError.ReadToEndAsync();
            var output = process.StandardOutput.ReadToEnd();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "gdb did not finish");
            Assert.Contains($"0x{rip:x}", output);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.WriteLine("SKIPPED gdb cross-check: gdb is not installed (apt-get install gdb)");
        }
    }

    /// <summary>Checks the core's PT_LOADs against the domain's populated runs, every page's bytes, and the registers' notes.</summary>
    private static void AssertCoreMatches(string path, SimulatedDomain domain)
    {
        var elf = ElfCoreFile.Read(path);
        Assert.Equal(4, elf.Type);   // ET_CORE
        Assert.Equal(62, elf.Machine); // EM_X86_64
        var expected = new List<(ulong Start, ulong End)>();
        for (ulong pfn = 0; pfn < domain.P2mSize; pfn++)
        {
            if (domain.IsPopulated(pfn))
            {
                if (expected.Count > 0 && expected[^1].End == pfn)
                {
                    expected[^1] = (expected[^1].Start, pfn + 1);
                }
                else
                {
                    expected.Add((pfn, pfn + 1));
                }
            }
        }

        Assert.Equal(expected, elf.Loads.Select(l => (l.PhysicalAddress >> 12, (l.PhysicalAddress + (ulong)l.FileSize) >> 12)).ToList());
        Assert.All(elf.Loads, l =>
        {
            Assert.Equal(l.PhysicalAddress, l.VirtualAddress);
            Assert.Equal(l.FileSize, l.MemorySize);
            Assert.Equal(0, l.Offset % 4096);
        });
        using (var file = File.OpenRead(path))
        {
            foreach (var (start, end) in expected)
            {
                for (var pfn = start; pfn < end; pfn++)
                {
                    Assert.True(domain.GetPage(pfn).SequenceEqual(ElfCoreFile.Page(file, elf.Loads, pfn)), $"pfn 0x{pfn:X}");
                }
            }
        }

        var prstatus = elf.Notes.Where(n => n.Name == "CORE" && n.Type == 1).ToList();
        var online = Enumerable.Range(0, domain.MaxVcpuId + 1).Where(domain.IsVcpuOnline).ToList();
        Assert.Equal(online.Count, prstatus.Count);
        Assert.Equal(online.Count, elf.Notes.Count(n => n.Name == "CORE" && n.Type == 2 && n.Description.Length == 512));
        for (var i = 0; i < online.Count; i++)
        {
            var vcpu = online[i];
            var note = prstatus[i].Description;
            Assert.Equal(336, note.Length);
            Assert.Equal(vcpu + 1, BinaryPrimitives.ReadInt32LittleEndian(note.AsSpan(32)));
            Assert.Equal(ExpectedRip(domain, vcpu), BinaryPrimitives.ReadUInt64LittleEndian(note.AsSpan(112 + (16 * 8))));
        }

        if (ElfCoreFile.ReadElf(path, "-l", "-n", "-W") is { } readelf)
        {
            var lines = readelf.Split('\n');
            Assert.Equal(expected.Count, lines.Count(l => l.TrimStart().StartsWith("LOAD ", StringComparison.Ordinal)));
            Assert.Equal(online.Count, lines.Count(l => l.Contains("NT_PRSTATUS", StringComparison.Ordinal)));
        }
    }

    /// <summary>The instruction pointer as the stream's own record holds it: hvm_hw_cpu.rip, or cpu_user_regs.rip/eip of the PV context.</summary>
    private static ulong ExpectedRip(SimulatedDomain domain, int vcpu)
    {
        if (domain.GuestType == GuestType.Hvm)
        {
            Assert.True(HvmContextBlob.TryFindEntry(domain.HvmContext, HvmContextBlob.TypeCpu, (ushort)vcpu, out var cpu));
            return BinaryPrimitives.ReadUInt64LittleEndian(cpu[640..]);
        }

        var basic = domain.GetVcpuContext(vcpu, VcpuContextKind.Basic);
        return domain.GuestWidth == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(basic[(520 + 128)..]) : BinaryPrimitives.ReadUInt32LittleEndian(basic[(516 + 32)..]);
    }

    /// <summary>The canonical memory digest of the pages an ELF core holds (pfn as 8 LE octets, then the page).</summary>
    private static string DigestOf(string path)
    {
        var elf = ElfCoreFile.Read(path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var file = File.OpenRead(path);
        var pfnBytes = new byte[8];
        foreach (var load in elf.Loads.OrderBy(l => l.PhysicalAddress))
        {
            for (var pfn = load.PhysicalAddress >> 12; pfn < (load.PhysicalAddress + (ulong)load.FileSize) >> 12; pfn++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(pfnBytes, pfn);
                hash.AppendData(pfnBytes);
                hash.AppendData(ElfCoreFile.Page(file, elf.Loads, pfn)!);
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Octets the file takes on disk (stat's blocks × 512), or null (said) when stat cannot tell.</summary>
    private static long? AllocatedBytes(string path)
    {
        var start = new ProcessStartInfo("stat") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("%b");
        start.ArgumentList.Add(path);
        try
        {
            using var process = Process.Start(start)!;
            var text = process.StandardOutput.ReadToEnd();
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)));
            return long.Parse(text.Trim(), System.Globalization.CultureInfo.InvariantCulture) * 512;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.WriteLine("SKIPPED sparseness check: stat(1) is not installed");
            return null;
        }
    }
}

[Trait("Category", Xmig.Tests.Support.XmigProcess.Category)]
public class ExtractInterruptTests
{
    [Fact]
    public void Extract_TerminatedOnAStalledPipe_LeavesNothing_AndAKilledOneIsSweptByTheNextRun()
    {
        using var tmp = new TempDirectory();
        using var domain = SaveRestoreSupport.Domain(tmp, "pv");
        var stream = SaveRestoreSupport.Save(domain, new SaveOptions { Kind = SaveStreamKind.Libxc, Live = false }).Bytes;
        Directory.CreateDirectory(tmp["out"]);

        foreach (var signal in new[] { "TERM", "KILL" })
        {
            using var process = Xmig.Tests.Support.XmigProcess.Start(redirectStdin: true, "extract", "-", "-o", tmp["out/core"]);
            var stderr = new System.Text.StringBuilder();
            process.ErrorDataReceived += (_, e) => stderr.AppendLine(e.Data);
            process.BeginErrorReadLine();
            _ = process.StandardOutput.ReadToEndAsync();
            process.StandardInput.BaseStream.Write(stream, 0, stream.Length / 2); // then the sender stalls
            process.StandardInput.BaseStream.Flush();
            Assert.True(DomainTestSupport.WaitUntil(() => Directory.EnumerateDirectories(tmp["out"], ".xmig-staging-*").Any(), 60), "no staging directory appeared");
            Thread.Sleep(300); // let it block on the pipe
            using (var kill = Process.Start("kill", $"-{signal} {process.Id}"))
            {
                Assert.True(kill.WaitForExit(TimeSpan.FromSeconds(30)));
            }

            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)), $"xmig did not end on SIG{signal}");
            var left = Directory.EnumerateFileSystemEntries(tmp["out"]).ToList();
            if (signal == "TERM")
            {
                Assert.True(left.Count == 0, $"left after SIGTERM: {string.Join(", ", left)}; {stderr}");
            }
            else
            {
                Assert.Single(left); // SIGKILL: the staging directory stays
            }
        }

        File.WriteAllBytes(tmp["s"], stream);
        var (code, _, error) = DomainTestSupport.Cli("extract", tmp["s"], "-o", tmp["out/core"]);
        Assert.True(code == 0, error);
        Assert.Contains("xmig: note: removed ", error);
        Assert.Contains("left by an interrupted xmig", error);
        Assert.Equal(["core"], Directory.EnumerateFileSystemEntries(tmp["out"]).Select(p => Path.GetFileName(p)).ToArray());
    }
}
