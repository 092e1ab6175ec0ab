using System.Buffers.Binary;

namespace Xmig.Domains.Kvm;

/// <summary>
/// Guest-physical layout of a KVM test guest. One memory slot from guest-physical 0 covers all of RAM (no holes),
/// so pfn <c>n</c> is file offset <c>n × 4096</c> of <c>memory.raw</c> and bit <c>n</c> of the slot's dirty log.
/// </summary>
/// <remarks>
/// <code>
/// 0x0000_1000  GDT: null, 64-bit code (0x08), data (0x10), 64-bit TSS (0x18, 16 octets)
/// 0x0000_2000  PML4            one entry → the PDPT
/// 0x0000_3000  PDPT            four entries → four page directories
/// 0x0000_4000  PD × 4          identity map of 0 … 4 GiB in 2 MiB pages
/// 0x0000_8000  mailbox page    the program's parameters and progress (<see cref="Mailbox"/>)
/// 0x0000_F000  top of stack    (the programs make no calls; set for a sane rsp)
/// 0x0001_0000  boot vCPU code
/// 0x0001_1000  other vCPUs' code (HLT)
/// 0x0010_0000  test area       the counter's pages, or the dirtier's working set, to the end of RAM
/// </code>
/// Every paging entry is written with its Accessed (and, for 2 MiB pages, Dirty) bit already set, so the processor
/// never writes the page tables: the dirty log then shows only what the program itself wrote.
/// </remarks>
internal static class GuestLayout
{
    public const ulong Gdt = 0x1000;
    public const ulong Pml4 = 0x2000;
    public const ulong Pdpt = 0x3000;
    public const ulong Pd = 0x4000;
    public const int PdCount = 4;
    public const ulong Mailbox = 0x8000;
    public const ulong StackTop = 0xF000;
    public const ulong BootCode = 0x10000;
    public const ulong ApCode = 0x11000;
    public const ulong AreaStart = 0x100000;

    /// <summary>The port a program reports its progress on: OUT of a u32 (sweeps completed).</summary>
    public const ushort ReportPort = 0xE0;

    /// <summary>The port the dirtier writes after each <see cref="PaceBatchPages"/> pages, so the backend can pace it.</summary>
    public const ushort PacePort = 0xE1;

    public const int PaceBatchPages = 16;

    /// <summary>Guest RAM bounds: room for the layout and a test area below the 4 GiB identity map.</summary>
    public const ulong MinMemory = 4UL << 20;
    public const ulong MaxMemory = 3UL << 30;

    public const ushort CodeSelector = 0x08;
    public const ushort DataSelector = 0x10;
    public const ushort TssSelector = 0x18;

    /// <summary>Mailbox fields (u64 each, little-endian, at these offsets in the mailbox page).</summary>
    public static class MailboxField
    {
        public const int Magic = 0;
        public const int Program = 8;
        public const int AreaStart = 16;
        public const int AreaEnd = 24;
        public const int Sweeps = 32;
        public const int RateMiBps = 40;
        public const int PagesWritten = 48;
    }

    /// <summary>"XMIGKVM1", little-endian.</summary>
    public const ulong MailboxMagic = 0x314D_564B_4749_4D58;

    /// <summary>Writes the GDT, page tables and mailbox into the first 1 MiB (<paramref name="low"/>, 1 MiB, zeroed).</summary>
    public static void WriteSystemArea(Span<byte> low, GuestProgramKind program, ulong areaEnd, ulong rateMiBps)
    {
        var gdt = low[(int)Gdt..];
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[8..], 0x00AF_9B00_0000_FFFF);   // code: L, P, DPL 0, exec/read, accessed
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[16..], 0x00CF_9300_0000_FFFF);  // data: G, D/B, P, read/write, accessed
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[24..], 0x0000_8B00_0000_0067);  // TSS: P, busy 64-bit TSS, limit 0x67
        BinaryPrimitives.WriteUInt64LittleEndian(low[(int)Pml4..], Pdpt | 0x23);    // P, RW, A
        for (var i = 0; i < PdCount; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(low[(int)(Pdpt + ((ulong)i * 8))..], (Pd + ((ulong)i * 0x1000)) | 0x23);
            for (var e = 0; e < 512; e++)
            {
                var address = (((ulong)i * 512) + (ulong)e) << 21;
                BinaryPrimitives.WriteUInt64LittleEndian(low[(int)(Pd + ((ulong)i * 0x1000) + ((ulong)e * 8))..], address | 0xE3); // P, RW, A, D, PS
            }
        }

        var mailbox = low[(int)Mailbox..];
        BinaryPrimitives.WriteUInt64LittleEndian(mailbox[MailboxField.Magic..], MailboxMagic);
        BinaryPrimitives.WriteUInt64LittleEndian(mailbox[MailboxField.Program..], (ulong)program);
        BinaryPrimitives.WriteUInt64LittleEndian(mailbox[MailboxField.AreaStart..], AreaStart);
        BinaryPrimitives.WriteUInt64LittleEndian(mailbox[MailboxField.AreaEnd..], areaEnd);
        BinaryPrimitives.WriteUInt64LittleEndian(mailbox[MailboxField.RateMiBps..], rateMiBps);
    }

    /// <summary>The vCPU state at power-on: 64-bit long mode, paging on (CR3 at the PML4), flat segments.</summary>
    public static KvmCpuState InitialState(int vcpu)
    {
        var state = new KvmCpuState();
        state.Regs.Rip = vcpu == 0 ? BootCode : ApCode;
        state.Regs.Rsp = StackTop;
        state.Regs.Rflags = 0x2;
        var code = new KvmNative.Segment { Base = 0, Limit = 0xFFFF_FFFF, Selector = CodeSelector, Type = 0xB, Present = 1, S = 1, L = 1, G = 1 };
        var data = new KvmNative.Segment { Base = 0, Limit = 0xFFFF_FFFF, Selector = DataSelector, Type = 0x3, Present = 1, S = 1, Db = 1, G = 1 };
        ref var s = ref state.Sregs;
        s.Cs = code;
        s.Ds = data;
        s.Es = data;
        s.Fs = data;
        s.Gs = data;
        s.Ss = data;
        s.Tr = new KvmNative.Segment { Base = 0, Limit = 0x67, Selector = TssSelector, Type = 0xB, Present = 1 };
        s.Ldt = new KvmNative.Segment { Type = 0x2, Unusable = 1 };
        s.Gdt = new KvmNative.Dtable { Base = Gdt, Limit = 0x27 };
        s.Idt = new KvmNative.Dtable { Base = 0, Limit = 0 };
        s.Cr0 = 0x8005_0033;   // PG, AM, WP, NE, ET, MP, PE
        s.Cr3 = Pml4;
        s.Cr4 = 0x620;         // OSXMMEXCPT, OSFXSR, PAE
        s.Efer = 0x500;        // LMA, LME
        s.ApicBase = 0xFEE0_0800 | (vcpu == 0 ? 0x100UL : 0);
        state.Fpu.Fcw = 0x37F;
        state.Fpu.Mxcsr = 0x1F80;
        state.SetMsr(KvmCpuState.MsrPat, 0x0007_0406_0007_0406);
        return state;
    }
}
