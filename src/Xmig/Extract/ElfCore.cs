using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Xmig.Domains;

namespace Xmig.Extract;

/// <summary>
/// Guest memory as an ELF64 core file (<c>ET_CORE</c>, <c>EM_X86_64</c>), the shape <c>crash</c> and <c>gdb</c> read
/// from QEMU's <c>dump-guest-memory</c>: one <c>PT_LOAD</c> per run of consecutive frames holding page data
/// (<c>p_paddr</c> = <c>p_vaddr</c> = the guest-physical address), and one <c>PT_NOTE</c> with an NT_PRSTATUS and an
/// NT_FPREGSET note per vCPU whose registers the domain carries (<see cref="GuestRegisters"/>).
/// </summary>
/// <remarks>
/// <code>
/// 0       ELF header (64)
/// 64      program headers (56 each): PT_NOTE (when there are registers), then PT_LOAD × runs
/// …       notes: per vCPU "CORE" NT_PRSTATUS (336: elf_prstatus, pr_pid = vCPU + 1), "CORE" NT_FPREGSET (512: FXSAVE)
/// …       (with 0xFFFF runs or more: one section header whose sh_info holds the count, e_phnum = PN_XNUM)
/// 4 KiB   segment data, each run page-aligned, zero pages left as holes
/// </code>
/// </remarks>
internal static class ElfCore
{
    public const int HeaderSize = 64;
    public const int ProgramHeaderSize = 56;
    public const int SectionHeaderSize = 64;
    public const ushort EtCore = 4;
    public const ushort EmX86_64 = 62;
    public const uint PtLoad = 1;
    public const uint PtNote = 4;
    public const uint NtPrstatus = 1;
    public const uint NtFpregset = 2;
    public const int PrstatusSize = 336;
    public const int PrstatusPidOffset = 32;
    public const int PrstatusRegOffset = 112;
    public const ushort PnXnum = 0xFFFF;

    private const uint PfRwx = 7;
    private static readonly byte[] CoreName = Encoding.ASCII.GetBytes("CORE\0");

    /// <summary>What <see cref="Write"/> wrote.</summary>
    public readonly record struct Summary(long Runs, ulong Pages, int Vcpus, long Bytes);

    /// <summary>Writes <paramref name="domain"/>'s memory and registers as an ELF core into <paramref name="output"/> (empty, seekable).</summary>
    public static Summary Write(SimulatedDomain domain, SafeFileHandle output)
    {
        var runs = CountRuns(domain, out var pages);
        var registers = GuestRegisters.Read(domain);
        var notes = BuildNotes(registers);
        var extended = runs + (notes.Length > 0 ? 1 : 0) >= PnXnum;
        var phnum = runs + (notes.Length > 0 ? 1 : 0);
        long at = HeaderSize + (phnum * ProgramHeaderSize);
        var notesOffset = at;
        at += notes.Length;
        var shoff = extended ? Align(at, 8) : 0;
        at = extended ? shoff + SectionHeaderSize : at;
        var dataOffset = Align(at, GuestPage.Size);

        Span<byte> header = stackalloc byte[HeaderSize];
        WriteHeader(header, extended ? PnXnum : (ushort)phnum, shoff, extended);
        RandomAccess.Write(output, header, 0);
        if (extended)
        {
            Span<byte> section = stackalloc byte[SectionHeaderSize];
            section.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(section[44..], checked((uint)phnum)); // sh_info
            RandomAccess.Write(output, section, shoff);
        }

        RandomAccess.Write(output, notes, notesOffset);

        // Program headers, batched; then each run's pages at its page-aligned offset.
        const int Batch = 512;
        var buffer = ArrayPool<byte>.Shared.Rent(Batch * ProgramHeaderSize);
        using var copier = new PageCopier(domain);
        try
        {
            long phAt = HeaderSize;
            var used = 0;
            if (notes.Length > 0)
            {
                WriteProgramHeader(buffer.AsSpan(0, ProgramHeaderSize), PtNote, 4, notesOffset, 0, 0, notes.Length, notes.Length, 4);
                used = ProgramHeaderSize;
            }

            var segment = dataOffset;
            ForEachRun(domain, (start, end) =>
            {
                var bytes = (long)((end - start) << GuestPage.Shift);
                var address = start << GuestPage.Shift;
                WriteProgramHeader(buffer.AsSpan(used, ProgramHeaderSize), PtLoad, PfRwx, segment, address, address, bytes, bytes, GuestPage.Size);
                used += ProgramHeaderSize;
                if (used == Batch * ProgramHeaderSize)
                {
                    RandomAccess.Write(output, buffer.AsSpan(0, used), phAt);
                    phAt += used;
                    used = 0;
                }

                copier.CopyRun(start, end, output, segment);
                segment += bytes;
            });
            RandomAccess.Write(output, buffer.AsSpan(0, used), phAt);
            RandomAccess.SetLength(output, segment);
            return new Summary(runs, pages, registers.Count, segment);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Calls <paramref name="run"/> for each run [start, end) of consecutive frames holding page data.</summary>
    public static void ForEachRun(SimulatedDomain domain, Action<ulong, ulong> run)
    {
        var populated = domain.Populated;
        var size = domain.P2mSize;
        for (var start = populated.NextSet(0); start < size;)
        {
            var end = populated.NextClear(start);
            end = Math.Min(end, size);
            run(start, end);
            start = end >= size ? size : populated.NextSet(end);
        }
    }

    private static long CountRuns(SimulatedDomain domain, out ulong pages)
    {
        long runs = 0;
        ulong count = 0;
        ForEachRun(domain, (start, end) =>
        {
            runs++;
            count += end - start;
        });
        pages = count;
        return runs;
    }

    private static byte[] BuildNotes(List<VcpuRegisters> registers)
    {
        var noteSize = (12 + Pad4(CoreName.Length)) * 2 + PrstatusSize + GuestRegisters.FxsaveSize;
        var notes = new byte[registers.Count * noteSize];
        var at = 0;
        foreach (var r in registers)
        {
            var prstatus = new byte[PrstatusSize];
            BinaryPrimitives.WriteInt32LittleEndian(prstatus.AsSpan(PrstatusPidOffset), r.Vcpu + 1);
            for (var i = 0; i < r.Gregs.Length; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(prstatus.AsSpan(PrstatusRegOffset + (i * 8)), r.Gregs[i]);
            }

            at += WriteNote(notes.AsSpan(at), NtPrstatus, prstatus);
            at += WriteNote(notes.AsSpan(at), NtFpregset, r.Fxsave);
        }

        return notes;
    }

    // Elf64_Nhdr: u32 namesz, u32 descsz, u32 type; name and desc each padded to 4 octets.
    private static int WriteNote(Span<byte> span, uint type, ReadOnlySpan<byte> desc)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)CoreName.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], type);
        CoreName.CopyTo(span[12..]);
        var at = 12 + Pad4(CoreName.Length);
        desc.CopyTo(span[at..]);
        return at + Pad4(desc.Length);
    }

    // Elf64_Ehdr.
    private static void WriteHeader(Span<byte> h, ushort phnum, long shoff, bool extended)
    {
        h.Clear();
        h[0] = 0x7F;
        h[1] = (byte)'E';
        h[2] = (byte)'L';
        h[3] = (byte)'F';
        h[4] = 2; // ELFCLASS64
        h[5] = 1; // ELFDATA2LSB
        h[6] = 1; // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], EtCore);
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], EmX86_64);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], HeaderSize); // e_phoff
        BinaryPrimitives.WriteUInt64LittleEndian(h[40..], (ulong)shoff);
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], ProgramHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], phnum);
        BinaryPrimitives.WriteUInt16LittleEndian(h[58..], extended ? (ushort)SectionHeaderSize : (ushort)0);
        BinaryPrimitives.WriteUInt16LittleEndian(h[60..], extended ? (ushort)1 : (ushort)0);
    }

    // Elf64_Phdr.
    private static void WriteProgramHeader(Span<byte> p, uint type, uint flags, long offset, ulong vaddr, ulong paddr, long filesz, long memsz, long align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], (ulong)offset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], (ulong)filesz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], (ulong)memsz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[48..], (ulong)align);
    }

    private static int Pad4(int n) => (n + 3) & ~3;

    private static long Align(long n, long to) => (n + to - 1) / to * to;
}

/// <summary>Guest memory as a raw image: frame <c>n</c> at offset <c>n × 4096</c>, <c>p2m_size × 4096</c> octets, holes for absent and zero pages.</summary>
internal static class RawImage
{
    public static long Write(SimulatedDomain domain, SafeFileHandle output)
    {
        var length = checked((long)(domain.P2mSize << GuestPage.Shift));
        using var copier = new PageCopier(domain);
        ElfCore.ForEachRun(domain, (start, end) => copier.CopyRun(start, end, output, (long)(start << GuestPage.Shift)));
        RandomAccess.SetLength(output, length);
        return length;
    }
}
