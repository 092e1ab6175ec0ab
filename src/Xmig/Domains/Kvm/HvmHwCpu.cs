using System.Buffers.Binary;

namespace Xmig.Domains.Kvm;

/// <summary>
/// Xen's <c>struct hvm_hw_cpu</c> (<c>public/arch-x86/hvm/save.h</c>, HVM save type CPU = 2), the body of a CPU entry
/// of the HVM context (v2-stream.md §3.5.8), and its mapping from and to a KVM vCPU's state.
/// </summary>
/// <remarks>
/// <code>
///    0  fpu_regs[512]   FXSAVE image: fcw, fsw, ftw (abridged), fop, fip, fdp, mxcsr, mxcsr_mask, st0-7, xmm0-15
///  512  rax rbx rcx rdx rbp rsi rdi rsp r8 … r15       (u64 each; note rbp before rsi, unlike kvm_regs)
///  640  rip rflags                                      656  cr0 cr2 cr3 cr4     688  dr0 dr1 dr2 dr3 dr6 dr7
///  736  u32 {cs,ds,es,fs,gs,ss,tr,ldtr}_sel             768  u32 {…}_limit, idtr_limit, gdtr_limit
///  808  u64 {cs,ds,es,fs,gs,ss,tr,ldtr,idtr,gdtr}_base  888  u32 {cs,…,ldtr}_arbytes
///  920  sysenter_cs sysenter_esp sysenter_eip            944  shadow_gs
///  952  msr_flags msr_lstar msr_star msr_cstar msr_syscall_mask msr_efer msr_tsc_aux
/// 1008  tsc   1016 u32 pending_event   1020 u32 error_code   1024 u32 flags   1028 u32 pad0      (1032 octets)
/// </code>
/// <c>arbytes</c> is Xen's packed segment attribute: type (bits 0–3), s (4), dpl (5–6), p (7), avl (8), l (9),
/// db (10), g (11). A KVM segment marked unusable is written with p = 0 and read back as unusable.
/// Not carried (the test guests do not use them): debug registers (written as their reset values), CR8/TPR, pending
/// events (written as none), XSAVE state beyond the legacy FXSAVE area.
/// </remarks>
internal static class HvmHwCpu
{
    public const int Size = 1032;

    /// <summary>The size before <c>flags</c> was added (still accepted on input).</summary>
    public const int SizeWithoutFlags = 1024;

    public const uint FlagFpuInitialised = 1;

    private const int Gpr = 512;
    private const int Rip = 640;
    private const int Cr = 656;
    private const int Dr = 688;
    private const int Sel = 736;
    private const int Limit = 768;
    private const int IdtrLimit = 800;
    private const int GdtrLimit = 804;
    private const int Base = 808;
    private const int IdtrBase = 872;
    private const int GdtrBase = 880;
    private const int Arbytes = 888;
    private const int Sysenter = 920;
    private const int ShadowGs = 944;
    private const int MsrFlags = 952;
    private const int Tsc = 1008;
    private const int Flags = 1024;

    public static void Write(KvmCpuState state, Span<byte> body)
    {
        if (body.Length < Size)
        {
            throw new ArgumentException($"hvm_hw_cpu is {Size} octets", nameof(body));
        }

        body[..Size].Clear();
        WriteFxsave(ref state.Fpu, body);
        ref var r = ref state.Regs;
        ReadOnlySpan<ulong> gprs = [r.Rax, r.Rbx, r.Rcx, r.Rdx, r.Rbp, r.Rsi, r.Rdi, r.Rsp, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15];
        for (var i = 0; i < gprs.Length; i++)
        {
            U64(body, Gpr + (i * 8), gprs[i]);
        }

        U64(body, Rip, r.Rip);
        U64(body, Rip + 8, r.Rflags);
        ref var s = ref state.Sregs;
        U64(body, Cr, s.Cr0);
        U64(body, Cr + 8, s.Cr2);
        U64(body, Cr + 16, s.Cr3);
        U64(body, Cr + 24, s.Cr4);
        U64(body, Dr + 32, 0xFFFF_0FF0); // dr6
        U64(body, Dr + 40, 0x400);       // dr7
        ReadOnlySpan<KvmNative.Segment> segments = [s.Cs, s.Ds, s.Es, s.Fs, s.Gs, s.Ss, s.Tr, s.Ldt];
        for (var i = 0; i < segments.Length; i++)
        {
            var seg = segments[i];
            U32(body, Sel + (i * 4), seg.Selector);
            U32(body, Limit + (i * 4), seg.Limit);
            U64(body, Base + (i * 8), seg.Base);
            U32(body, Arbytes + (i * 4), PackAttributes(seg));
        }

        U32(body, IdtrLimit, s.Idt.Limit);
        U32(body, GdtrLimit, s.Gdt.Limit);
        U64(body, IdtrBase, s.Idt.Base);
        U64(body, GdtrBase, s.Gdt.Base);
        U64(body, Sysenter, state.Msr(KvmCpuState.MsrSysenterCs));
        U64(body, Sysenter + 8, state.Msr(KvmCpuState.MsrSysenterEsp));
        U64(body, Sysenter + 16, state.Msr(KvmCpuState.MsrSysenterEip));
        U64(body, ShadowGs, state.Msr(KvmCpuState.MsrKernelGsBase));
        U64(body, MsrFlags + 8, state.Msr(KvmCpuState.MsrLstar));
        U64(body, MsrFlags + 16, state.Msr(KvmCpuState.MsrStar));
        U64(body, MsrFlags + 24, state.Msr(KvmCpuState.MsrCstar));
        U64(body, MsrFlags + 32, state.Msr(KvmCpuState.MsrSyscallMask));
        U64(body, MsrFlags + 40, s.Efer);
        U64(body, MsrFlags + 48, state.Msr(KvmCpuState.MsrTscAux));
        U64(body, Tsc, state.Msr(KvmCpuState.MsrTsc));
        U32(body, Flags, FlagFpuInitialised);
    }

    /// <summary>Reads a CPU entry body into <paramref name="state"/> (its LAPIC base and PAT are left as they are).</summary>
    public static void Read(ReadOnlySpan<byte> body, KvmCpuState state)
    {
        if (body.Length is not (Size or SizeWithoutFlags))
        {
            throw new InvalidDataException($"CPU entry is {body.Length} octets, expected {Size} or {SizeWithoutFlags}");
        }

        ReadFxsave(body, ref state.Fpu);
        ref var r = ref state.Regs;
        r.Rax = R64(body, Gpr);
        r.Rbx = R64(body, Gpr + 8);
        r.Rcx = R64(body, Gpr + 16);
        r.Rdx = R64(body, Gpr + 24);
        r.Rbp = R64(body, Gpr + 32);
        r.Rsi = R64(body, Gpr + 40);
        r.Rdi = R64(body, Gpr + 48);
        r.Rsp = R64(body, Gpr + 56);
        r.R8 = R64(body, Gpr + 64);
        r.R9 = R64(body, Gpr + 72);
        r.R10 = R64(body, Gpr + 80);
        r.R11 = R64(body, Gpr + 88);
        r.R12 = R64(body, Gpr + 96);
        r.R13 = R64(body, Gpr + 104);
        r.R14 = R64(body, Gpr + 112);
        r.R15 = R64(body, Gpr + 120);
        r.Rip = R64(body, Rip);
        r.Rflags = R64(body, Rip + 8);
        ref var s = ref state.Sregs;
        s.Cr0 = R64(body, Cr);
        s.Cr2 = R64(body, Cr + 8);
        s.Cr3 = R64(body, Cr + 16);
        s.Cr4 = R64(body, Cr + 24);
        s.Cs = ReadSegment(body, 0);
        s.Ds = ReadSegment(body, 1);
        s.Es = ReadSegment(body, 2);
        s.Fs = ReadSegment(body, 3);
        s.Gs = ReadSegment(body, 4);
        s.Ss = ReadSegment(body, 5);
        s.Tr = ReadSegment(body, 6);
        s.Ldt = ReadSegment(body, 7);
        s.Idt = new KvmNative.Dtable { Base = R64(body, IdtrBase), Limit = (ushort)R32(body, IdtrLimit) };
        s.Gdt = new KvmNative.Dtable { Base = R64(body, GdtrBase), Limit = (ushort)R32(body, GdtrLimit) };
        s.Efer = R64(body, MsrFlags + 40);
        state.SetMsr(KvmCpuState.MsrSysenterCs, R64(body, Sysenter));
        state.SetMsr(KvmCpuState.MsrSysenterEsp, R64(body, Sysenter + 8));
        state.SetMsr(KvmCpuState.MsrSysenterEip, R64(body, Sysenter + 16));
        state.SetMsr(KvmCpuState.MsrKernelGsBase, R64(body, ShadowGs));
        state.SetMsr(KvmCpuState.MsrLstar, R64(body, MsrFlags + 8));
        state.SetMsr(KvmCpuState.MsrStar, R64(body, MsrFlags + 16));
        state.SetMsr(KvmCpuState.MsrCstar, R64(body, MsrFlags + 24));
        state.SetMsr(KvmCpuState.MsrSyscallMask, R64(body, MsrFlags + 32));
        state.SetMsr(KvmCpuState.MsrTscAux, R64(body, MsrFlags + 48));
        state.SetMsr(KvmCpuState.MsrTsc, R64(body, Tsc));
    }

    private static uint PackAttributes(KvmNative.Segment s) =>
        (s.Type & 0xFu) | ((s.S & 1u) << 4) | ((s.Dpl & 3u) << 5) | ((s.Unusable != 0 ? 0u : s.Present & 1u) << 7)
        | ((s.Avl & 1u) << 8) | ((s.L & 1u) << 9) | ((s.Db & 1u) << 10) | ((s.G & 1u) << 11);

    private static KvmNative.Segment ReadSegment(ReadOnlySpan<byte> body, int i)
    {
        var attr = R32(body, Arbytes + (i * 4));
        var present = (byte)((attr >> 7) & 1);
        return new KvmNative.Segment
        {
            Selector = (ushort)R32(body, Sel + (i * 4)),
            Limit = R32(body, Limit + (i * 4)),
            Base = R64(body, Base + (i * 8)),
            Type = (byte)(attr & 0xF),
            S = (byte)((attr >> 4) & 1),
            Dpl = (byte)((attr >> 5) & 3),
            Present = present,
            Avl = (byte)((attr >> 8) & 1),
            L = (byte)((attr >> 9) & 1),
            Db = (byte)((attr >> 10) & 1),
            G = (byte)((attr >> 11) & 1),
            Unusable = (byte)(present ^ 1),
        };
    }

    // FXSAVE layout (64-bit form): 0 fcw, 2 fsw, 4 ftw, 6 fop, 8 fip, 16 fdp, 24 mxcsr, 28 mxcsr_mask, 32 st0-7, 160 xmm0-15.
    private static unsafe void WriteFxsave(ref KvmNative.Fpu f, Span<byte> area)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(area, f.Fcw);
        BinaryPrimitives.WriteUInt16LittleEndian(area[2..], f.Fsw);
        area[4] = f.Ftwx;
        BinaryPrimitives.WriteUInt16LittleEndian(area[6..], f.LastOpcode);
        U64(area, 8, f.LastIp);
        U64(area, 16, f.LastDp);
        U32(area, 24, f.Mxcsr);
        U32(area, 28, 0xFFFF);
        fixed (byte* fpr = f.Fpr)
        fixed (byte* xmm = f.Xmm)
        {
            new ReadOnlySpan<byte>(fpr, 128).CopyTo(area[32..]);
            new ReadOnlySpan<byte>(xmm, 256).CopyTo(area[160..]);
        }
    }

    private static unsafe void ReadFxsave(ReadOnlySpan<byte> area, ref KvmNative.Fpu f)
    {
        f.Fcw = BinaryPrimitives.ReadUInt16LittleEndian(area);
        f.Fsw = BinaryPrimitives.ReadUInt16LittleEndian(area[2..]);
        f.Ftwx = area[4];
        f.LastOpcode = BinaryPrimitives.ReadUInt16LittleEndian(area[6..]);
        f.LastIp = R64(area, 8);
        f.LastDp = R64(area, 16);
        f.Mxcsr = R32(area, 24);
        fixed (byte* fpr = f.Fpr)
        fixed (byte* xmm = f.Xmm)
        {
            area.Slice(32, 128).CopyTo(new Span<byte>(fpr, 128));
            area.Slice(160, 256).CopyTo(new Span<byte>(xmm, 256));
        }
    }

    private static void U64(Span<byte> b, int at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[at..], v);

    private static void U32(Span<byte> b, int at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[at..], v);

    private static ulong R64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b[at..]);

    private static uint R32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
}
