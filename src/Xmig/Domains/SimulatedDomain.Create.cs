using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using Microsoft.Win32.SafeHandles;

namespace Xmig.Domains;

/// <summary>Building a simulated domain: an empty one (restore target) or one with realistic content from a seed.</summary>
internal sealed partial class SimulatedDomain
{
    // HVM guest-physical layout, as Xen's HVM domain builder lays it out with libxl's defaults.
    internal const ulong HvmVgaHoleStart = 0xA0;
    internal const ulong HvmVgaHoleEnd = 0xC0;
    internal const ulong HvmLowMemEnd = 0xF0000;          // 0xF0000000: start of the MMIO hole
    internal const ulong HvmHighMemStart = 0x100000;      // 4 GiB
    internal const ulong HvmSpecialRegionEnd = 0xFF000;   // special pages end here
    internal const ulong HvmSpecialPages = 8;             // paging, access, sharing, bufioreq, xenstore, ioreq, ident-pt, console
    internal const ulong HvmIoreqServerPages = 8;
    internal const ulong HvmSpecialStart = HvmSpecialRegionEnd - HvmSpecialPages;
    internal const ulong HvmIoreqServerStart = HvmSpecialStart - HvmIoreqServerPages;

    /// <summary>
    /// Creates an empty domain in <paramref name="directory"/> (which must exist and be empty): no frames, no state.
    /// The memory file is a hole of <paramref name="maxP2mSize"/> frames, cut down to <see cref="P2mSize"/> on save.
    /// </summary>
    public static SimulatedDomain CreateEmpty(string directory, GuestType type, int guestWidth, ulong maxP2mSize)
    {
        if (maxP2mSize == 0 || maxP2mSize > P2mLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(maxP2mSize), maxP2mSize, $"p2m size must be 1 … {P2mLimit}");
        }

        if (guestWidth is not (4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(guestWidth), guestWidth, "guest width is 4 or 8 octets");
        }

        var path = Path.Combine(directory, DomainDirectory.MemoryFile);
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            stream.SetLength((long)(maxP2mSize * GuestPage.Size));
        }

        var memory = GuestMemory.Map(path, maxP2mSize, writable: true);
        try
        {
            return new SimulatedDomain(directory, type, guestWidth, 0, maxP2mSize, memory);
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Builds a domain of <paramref name="spec"/> in <paramref name="directory"/> (which must exist and be empty) and
    /// persists it. Content is deterministic in the seed: zero pages, repeated pages, random pages, and for PV guests
    /// page tables, the p2m frames and the start-info page.
    /// </summary>
    public static SimulatedDomain Create(string directory, DomainSpec spec)
    {
        var problem = spec.Validate();
        if (problem != null)
        {
            throw new ArgumentException(problem, nameof(spec));
        }

        var ramPages = spec.MemoryBytes / GuestPage.Size;
        var p2mSize = spec.Type == GuestType.Hvm ? HvmP2mSize(ramPages) : ramPages;
        var domain = CreateEmpty(directory, spec.Type, spec.GuestWidth, p2mSize);
        try
        {
            domain.GrowP2m(p2mSize);
            domain.Seed = spec.Seed;
            domain.MemoryBytes = spec.MemoryBytes;
            using (var writer = new PageRunWriter(Path.Combine(directory, DomainDirectory.MemoryFile)))
            {
                var content = new ContentGenerator(spec.Seed);
                if (spec.Type == GuestType.Hvm)
                {
                    domain.BuildHvm(spec, ramPages, writer, content);
                }
                else
                {
                    domain.BuildPv(spec, ramPages, writer, content);
                }
            }

            domain.BuildCommonState(spec);
            domain.Save();
            return domain;
        }
        catch
        {
            domain.Dispose();
            throw;
        }
    }

    /// <summary>RAM runs of an HVM guest with <paramref name="ramPages"/> pages: below the VGA hole, up to the MMIO hole, above 4 GiB.</summary>
    internal static IEnumerable<(ulong Start, ulong Count)> HvmRamRuns(ulong ramPages)
    {
        var first = Math.Min(ramPages, HvmVgaHoleStart);
        yield return (0, first);
        var remaining = ramPages - first;
        var low = Math.Min(remaining, HvmLowMemEnd - HvmVgaHoleEnd);
        if (low > 0)
        {
            yield return (HvmVgaHoleEnd, low);
        }

        remaining -= low;
        if (remaining > 0)
        {
            yield return (HvmHighMemStart, remaining);
        }
    }

    private static ulong HvmP2mSize(ulong ramPages)
    {
        var high = ramPages > HvmVgaHoleStart + (HvmLowMemEnd - HvmVgaHoleEnd) ? ramPages - HvmVgaHoleStart - (HvmLowMemEnd - HvmVgaHoleEnd) : 0;
        return high > 0 ? HvmHighMemStart + high : HvmSpecialRegionEnd;
    }

    private void BuildHvm(DomainSpec spec, ulong ramPages, PageRunWriter writer, ContentGenerator content)
    {
        foreach (var (start, count) in HvmRamRuns(ramPages))
        {
            for (var pfn = start; pfn < start + count; pfn++)
            {
                content.WriteGeneric(pfn, writer);
                SetPopulated(pfn, PageType.NoTab);
            }
        }

        // Special pages and ioreq-server pages: populated, zero (the receiver clears them anyway).
        for (var pfn = HvmIoreqServerStart; pfn < HvmSpecialRegionEnd; pfn++)
        {
            SetPopulated(pfn, PageType.NoTab);
        }

        var special = (ulong index) => HvmSpecialStart + index;
        SetHvmParam(HvmParam.StorePfn, special(4));
        SetHvmParam(HvmParam.IoreqPfn, special(5));
        SetHvmParam(HvmParam.BufioreqPfn, special(3));
        SetHvmParam(HvmParam.PagingRingPfn, special(0));
        SetHvmParam(HvmParam.MonitorRingPfn, special(1));
        SetHvmParam(HvmParam.SharingRingPfn, special(2));
        SetHvmParam(HvmParam.ConsolePfn, special(7));
        SetHvmParam(HvmParam.IdentPt, special(6) << 12);
        SetHvmParam(HvmParam.AcpiIoportsLocation, 1);
        SetHvmParam(HvmParam.IoreqServerPfn, HvmIoreqServerStart);
        SetHvmParam(HvmParam.NrIoreqServerPages, HvmIoreqServerPages);
        SetHvmParam(HvmParam.Vm86TssSized, (0x80UL << 32) | 0xFC000000UL);

        var tscKhz = TscKhz(spec.Seed);
        SetHvmContext(HvmContextBlob.Build(spec.Vcpus, spec.Seed, tscKhz));

        // The device model: QEMU upstream's state file starts with "QEVM" and its version (3), big-endian.
        var dm = new byte[8192 + (int)(spec.Seed % 4096)];
        new Prng(Prng.Mix(spec.Seed, 0x51454D55)).Fill(dm);
        "QEVM"u8.CopyTo(dm);
        BinaryPrimitives.WriteUInt32BigEndian(dm.AsSpan(4), 3);
        SetEmulatorContext(dm);
        var vram = (HvmP2mSize(ramPages) << 12).ToString("x", CultureInfo.InvariantCulture);
        SetEmulatorXenstore(
        [
            new($"physmap/{vram}/start_addr", "f0000000"),
            new($"physmap/{vram}/size", "800000"),
            new($"physmap/{vram}/name", "vga.vram"),
        ]);
    }

    private void BuildPv(DomainSpec spec, ulong ramPages, PageRunWriter writer, ContentGenerator content)
    {
        var width = spec.GuestWidth;
        var fpp = (ulong)(GuestPage.Size / width);
        var frames = (ramPages + fpp - 1) / fpp;
        var kernelStart = Math.Min(0x1000UL, ramPages / 8);
        var kernelPages = Math.Min(2048UL, ramPages / 8);
        var p2mStart = kernelStart + kernelPages;
        var startInfo = p2mStart + frames;
        var xenstore = startInfo + 1;
        var console = startInfo + 2;
        var tablesStart = startInfo + 3;

        // Page tables mapping the kernel, the p2m and the boot structures: 64-bit guests L4 → L3 → L2 → L1s,
        // 32-bit PAE guests L3 → L2 → L1s. The top level is pinned.
        var mappedEnd = tablesStart + 3 + ((tablesStart + 3 - kernelStart) / 512) + 2;
        var l1Count = (mappedEnd - kernelStart + 511) / 512;
        var levels = width == 8 ? 4 : 3;
        var tablesEnd = tablesStart + (ulong)(levels - 1) + l1Count;
        if (tablesEnd > ramPages)
        {
            throw new ArgumentException($"memory {ByteSize.Format(spec.MemoryBytes)} is too small for the PV layout", nameof(spec));
        }

        for (var pfn = 0UL; pfn < ramPages; pfn++)
        {
            if (pfn >= kernelStart && pfn < tablesEnd)
            {
                if (pfn < p2mStart)
                {
                    content.WriteRandom(pfn, writer.Page(pfn));
                }

                continue;
            }

            content.WriteGeneric(pfn, writer);
            SetPopulated(pfn, PageType.NoTab);
        }

        for (var pfn = kernelStart; pfn < tablesEnd; pfn++)
        {
            SetPopulated(pfn, PageType.NoTab);
        }

        // The guest's p2m: one entry per pfn, a (fake) machine frame; entries past the end are invalid (all ones).
        var mfnBase = 0x100000UL + ((spec.Seed & 0xFFF) << 8);
        var p2mFrames = new ulong[frames];
        for (var f = 0UL; f < frames; f++)
        {
            p2mFrames[f] = p2mStart + f;
            var page = writer.Page(p2mStart + f);
            for (var e = 0; e < (int)fpp; e++)
            {
                var pfn = (f * fpp) + (ulong)e;
                var mfn = pfn < ramPages ? mfnBase + pfn : ulong.MaxValue;
                if (width == 8)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(page[(e * 8)..], mfn);
                }
                else
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(page[(e * 4)..], (uint)mfn);
                }
            }
        }

        SetP2mFrames(p2mFrames);

        // start_info: magic, nr_pages, and the xenstore / console frames (as pfns, the canonical form).
        {
            var page = writer.Page(startInfo);
            page.Clear();
            (width == 8 ? "xen-3.0-x86_64"u8 : "xen-3.0-x86_32p"u8).CopyTo(page);
            WriteWord(page[32..], width, ramPages);
            WriteWord(page[(32 + (3 * width))..], width, xenstore);
            WriteWord(page[(32 + (5 * width))..], width, console);
        }

        SetPopulated(startInfo, PageType.NoTab);
        SetPopulated(xenstore, PageType.NoTab);
        SetPopulated(console, PageType.NoTab);

        var top = tablesStart;
        var firstL1 = tablesStart + (ulong)(levels - 1);
        if (levels == 4)
        {
            var l3 = tablesStart + 1;
            var l2 = tablesStart + 2;
            WriteTable(writer.Page(top), [(0, l3), (511, l3)]);
            WriteTable(writer.Page(l3), [(0, l2)]);
            WriteTable(writer.Page(l2), Enumerable.Range(0, (int)l1Count).Select(i => (i, firstL1 + (ulong)i)).ToArray());
            SetPopulated(top, PageType.L4TabPinned);
            SetPopulated(l3, PageType.L3Tab);
            SetPopulated(l2, PageType.L2Tab);
        }
        else
        {
            var l2 = tablesStart + 1;
            WriteTable(writer.Page(top), [(3, l2)], flags: 0x1);
            WriteTable(writer.Page(l2), Enumerable.Range(0, (int)l1Count).Select(i => (i, firstL1 + (ulong)i)).ToArray());
            SetPopulated(top, PageType.L3TabPinned);
            SetPopulated(l2, PageType.L2Tab);
        }

        for (var i = 0UL; i < l1Count; i++)
        {
            var first = kernelStart + (i * 512);
            var count = (int)Math.Min(512UL, ramPages - Math.Min(ramPages, first));
            WriteTable(writer.Page(firstL1 + i), Enumerable.Range(0, count).Select(e => (e, first + (ulong)e)).ToArray(), flags: 0x63);
            SetPopulated(firstL1 + i, PageType.L1Tab);
        }

        // vCPUs: BASIC (vcpu_guest_context), EXTENDED, XSAVE. No PV MSRs in use (a legacy sender would refuse them).
        var basicSize = width == 8 ? PvVcpuLayout.BasicSize64 : PvVcpuLayout.BasicSize32;
        for (var vcpu = 0; vcpu < spec.Vcpus; vcpu++)
        {
            var basic = new byte[basicSize];
            PvVcpuLayout.Fill(basic, width, vcpu, startInfo, top, Prng.Mix(spec.Seed, 0x56435055, (ulong)vcpu));
            SetVcpuContext(vcpu, VcpuContextKind.Basic, basic);
            SetVcpuContext(vcpu, VcpuContextKind.Extended, PvVcpuLayout.Extended(vcpu));
            SetVcpuContext(vcpu, VcpuContextKind.Xsave, PvVcpuLayout.Xsave(Prng.Mix(spec.Seed, 0x58534156, (ulong)vcpu)));
        }

        SetSharedInfo(PvVcpuLayout.SharedInfo(width, spec.Vcpus, ramPages));
    }

    private void BuildCommonState(DomainSpec spec)
    {
        TscInfo = new TscInfo(0, TscKhz(spec.Seed), Prng.Mix(spec.Seed, 0x54534321) >> 20, 1);

        // CPUID policy: leaves as xen_cpuid_leaf_t {leaf, subleaf, a, b, c, d}; 0xFFFFFFFF = no subleaf.
        (uint Leaf, uint Sub, uint A, uint B, uint C, uint D)[] leaves =
        [
            (0x0, ~0u, 0xD, 0x756E6547, 0x6C65746E, 0x49656E69), // "GenuineIntel"
            (0x1, ~0u, 0x000906EA, 0x00010800, 0xF6FA3203, 0x1F8BFBFF),
            (0x7, 0x0, 0x0, 0x009C27AB, 0x0, 0xBC000400),
            (0xD, 0x0, 0x7, 0x340, 0x340, 0x0),
            (0xD, 0x1, 0x1, 0x0, 0x0, 0x0),
            (0x80000000, ~0u, 0x80000008, 0x0, 0x0, 0x0),
            (0x80000001, ~0u, 0x0, 0x0, 0x121, 0x2C100800),
            (0x80000007, ~0u, 0x0, 0x0, 0x0, 0x100),
            (0x80000008, ~0u, 0x3027, 0x0, 0x0, 0x0),
        ];
        var cpuid = new byte[leaves.Length * 24];
        for (var i = 0; i < leaves.Length; i++)
        {
            var e = cpuid.AsSpan(i * 24);
            BinaryPrimitives.WriteUInt32LittleEndian(e, leaves[i].Leaf);
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], leaves[i].Sub);
            BinaryPrimitives.WriteUInt32LittleEndian(e[8..], leaves[i].A);
            BinaryPrimitives.WriteUInt32LittleEndian(e[12..], leaves[i].B);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], leaves[i].C);
            BinaryPrimitives.WriteUInt32LittleEndian(e[20..], leaves[i].D);
        }

        SetCpuidPolicy(cpuid);

        // MSR policy: xen_msr_entry_t {idx, flags (0), val}: PLATFORM_INFO and ARCH_CAPABILITIES.
        var msr = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(msr, 0xCE);
        BinaryPrimitives.WriteUInt64LittleEndian(msr.AsSpan(8), 0x80000000UL);
        BinaryPrimitives.WriteUInt32LittleEndian(msr.AsSpan(16), 0x10A);
        BinaryPrimitives.WriteUInt64LittleEndian(msr.AsSpan(24), 0x0C000029UL);
        SetMsrPolicy(msr);
    }

    private static uint TscKhz(ulong seed) => 2_000_000 + (uint)(seed % 1000 * 1000);

    private static void WriteWord(Span<byte> destination, int width, ulong value)
    {
        if (width == 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(destination, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)value);
        }
    }

    /// <summary>A page table in canonical form (v2-stream.md §3.7): each present entry's frame field holds a pfn.</summary>
    private static void WriteTable(Span<byte> page, (int Slot, ulong Pfn)[] entries, ulong flags = 0x67)
    {
        page.Clear();
        foreach (var (slot, pfn) in entries)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(page[(slot * 8)..], (pfn << 12) | flags);
        }
    }

    /// <summary>
    /// Writes runs of consecutive non-zero pages into the sparse memory file with one positioned write per run;
    /// zero pages are never written (they stay holes).
    /// </summary>
    private sealed class PageRunWriter : IDisposable
    {
        private const int RunPages = 256;
        private readonly SafeFileHandle _handle;
        private readonly byte[] _buffer = ArrayPool<byte>.Shared.Rent(RunPages * GuestPage.Size);
        private ulong _runStart;
        private int _runPages;

        public PageRunWriter(string path)
        {
            _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        }

        /// <summary>The buffer for frame <paramref name="pfn"/>'s contents (undefined until filled; must be filled).</summary>
        public Span<byte> Page(ulong pfn)
        {
            if (_runPages > 0 && (pfn != _runStart + (ulong)_runPages || _runPages == RunPages))
            {
                Flush();
            }

            if (_runPages == 0)
            {
                _runStart = pfn;
            }

            return _buffer.AsSpan(_runPages++ * GuestPage.Size, GuestPage.Size);
        }

        public void Dispose()
        {
            Flush();
            _handle.Dispose();
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        private void Flush()
        {
            if (_runPages > 0)
            {
                RandomAccess.Write(_handle, _buffer.AsSpan(0, _runPages * GuestPage.Size), (long)(_runStart * GuestPage.Size));
                _runPages = 0;
            }
        }
    }

    /// <summary>
    /// Deterministic page contents: memory is seen in 2 MiB regions that are free (all zero), busy (random, as file
    /// cache or heap) or mixed (zero pages, copies of a few repeated pages, random pages).
    /// </summary>
    private sealed class ContentGenerator
    {
        private const int Templates = 16;
        private readonly ulong _seed;
        private readonly byte[] _templates = new byte[Templates * GuestPage.Size];

        public ContentGenerator(ulong seed)
        {
            _seed = seed;
            for (var t = 0; t < Templates; t++)
            {
                var page = _templates.AsSpan(t * GuestPage.Size, GuestPage.Size);
                var prng = new Prng(Prng.Mix(seed, 0x54454D50, (ulong)t));
                if (t % 4 == 0)
                {
                    // A pattern page, as a filled buffer or a table of pointers.
                    BinaryPrimitives.WriteUInt64LittleEndian(page, prng.Next());
                    for (var i = 8; i < GuestPage.Size; i *= 2)
                    {
                        page[..i].CopyTo(page[i..]);
                    }
                }
                else
                {
                    prng.Fill(page);
                }
            }
        }

        public void WriteGeneric(ulong pfn, PageRunWriter writer)
        {
            var region = Prng.Mix(_seed, pfn >> 9, 0x52454749) % 100;
            var page = Prng.Mix(_seed, pfn, 0x50414745);
            var pick = page % 100;
            if (region < 40)
            {
                return; // free memory
            }

            if (region < 75)
            {
                // busy: mostly random, a few repeated
                if (pick < 5)
                {
                    WriteTemplate(page, writer.Page(pfn));
                }
                else
                {
                    WriteRandom(pfn, writer.Page(pfn));
                }

                return;
            }

            if (pick < 35)
            {
                return;
            }

            if (pick < 65)
            {
                WriteTemplate(page, writer.Page(pfn));
            }
            else
            {
                WriteRandom(pfn, writer.Page(pfn));
            }
        }

        public void WriteRandom(ulong pfn, Span<byte> page) => new Prng(Prng.Mix(_seed, pfn, 0x52414E44)).Fill(page);

        private void WriteTemplate(ulong pick, Span<byte> page) =>
            _templates.AsSpan((int)(BitOperations.RotateRight(pick, 17) % Templates) * GuestPage.Size, GuestPage.Size).CopyTo(page);
    }
}
