using System.Buffers.Binary;
using Xmig.Domains;

namespace Xmig.Extract;

/// <summary>
/// One vCPU's registers in the layouts an ELF core carries them: the 27 words of x86-64 <c>user_regs_struct</c> (the
/// <c>pr_reg</c> of NT_PRSTATUS) and the 512-octet FXSAVE image (NT_FPREGSET).
/// </summary>
internal sealed record VcpuRegisters(int Vcpu, ulong[] Gregs, byte[] Fxsave);

/// <summary>
/// Reads each online vCPU's registers out of the state blobs a stream carries: for HVM the CPU entry (type 2) of the
/// HVM context (<c>struct hvm_hw_cpu</c>, v2-stream.md §3.5.8; layout in <see cref="Domains.Kvm.HvmHwCpu"/>), for PV
/// the vCPU's BASIC context (<c>vcpu_guest_context</c>, v2-stream.md §3.5.5; layout in <see cref="PvVcpuLayout"/>).
/// A vCPU whose record is missing or too short is left out.
/// </summary>
internal static class GuestRegisters
{
    /// <summary>Words in x86-64 <c>user_regs_struct</c>.</summary>
    public const int GregCount = 27;

    public const int FxsaveSize = 512;

    // user_regs_struct word indices (x86-64, <sys/user.h>).
    private const int R15 = 0, R14 = 1, R13 = 2, R12 = 3, Rbp = 4, Rbx = 5, R11 = 6, R10 = 7, R9 = 8, R8 = 9, Rax = 10,
        Rcx = 11, Rdx = 12, Rsi = 13, Rdi = 14, OrigRax = 15, Rip = 16, Cs = 17, Eflags = 18, Rsp = 19, Ss = 20,
        FsBase = 21, GsBase = 22, Ds = 23, Es = 24, Fs = 25, Gs = 26;

    // struct hvm_hw_cpu: rax rbx rcx rdx rbp rsi rdi rsp r8 … r15 at 512, rip 640, rflags 648, u32 selectors
    // (cs ds es fs gs ss …) at 736, u64 bases (cs ds es fs gs …) at 808.
    private const int HvmGpr = 512, HvmRip = 640, HvmRflags = 648, HvmSel = 736, HvmBase = 808;
    private const int HvmMinimum = HvmBase + (5 * 8);

    // vcpu_guest_context (x86-64): flags 512, cpu_user_regs at 520 (r15 … rdi in user_regs_struct order, then
    // error_code/entry_vector, rip, cs, rflags, rsp, ss, es, ds, fs, gs, 8 octets each), fs_base 5144,
    // gs_base_kernel 5152, gs_base_user 5160.
    private const int Pv64Flags = 512, Pv64Regs = 520, Pv64FsBase = 5144, Pv64GsKernel = 5152, Pv64GsUser = 5160;

    // vcpu_guest_context (x86-32): cpu_user_regs at 516: ebx ecx edx esi edi ebp eax, error_code/entry_vector, eip,
    // cs, eflags, esp, ss, es, ds, fs, gs (4 octets each).
    private const int Pv32Regs = 516;

    private const ulong VgcfInKernel = 1 << 2;

    /// <summary>The registers of every online vCPU that has them, ascending vCPU id.</summary>
    public static List<VcpuRegisters> Read(IDomain domain)
    {
        var list = new List<VcpuRegisters>();
        for (var vcpu = 0; vcpu <= domain.MaxVcpuId; vcpu++)
        {
            if (!domain.IsVcpuOnline(vcpu))
            {
                continue;
            }

            var regs = domain.GuestType == GuestType.Hvm
                ? FromHvm(domain.HvmContext, vcpu)
                : FromPv(domain.GetVcpuContext(vcpu, VcpuContextKind.Basic), domain.GuestWidth, vcpu);
            if (regs != null)
            {
                list.Add(regs);
            }
        }

        return list;
    }

    private static VcpuRegisters? FromHvm(ReadOnlySpan<byte> context, int vcpu)
    {
        if (vcpu > ushort.MaxValue || !HvmContextBlob.TryFindEntry(context, HvmContextBlob.TypeCpu, (ushort)vcpu, out var cpu) || cpu.Length < HvmMinimum)
        {
            return null;
        }

        var g = new ulong[GregCount];
        ReadOnlySpan<int> order = [Rax, Rbx, Rcx, Rdx, Rbp, Rsi, Rdi, Rsp, R8, R9, R10, R11, R12, R13, R14, R15];
        for (var i = 0; i < order.Length; i++)
        {
            g[order[i]] = U64(cpu, HvmGpr + (i * 8));
        }

        g[OrigRax] = ulong.MaxValue;
        g[Rip] = U64(cpu, HvmRip);
        g[Eflags] = U64(cpu, HvmRflags);
        ReadOnlySpan<int> selectors = [Cs, Ds, Es, Fs, Gs, Ss];
        for (var i = 0; i < selectors.Length; i++)
        {
            g[selectors[i]] = BinaryPrimitives.ReadUInt32LittleEndian(cpu[(HvmSel + (i * 4))..]) & 0xFFFF;
        }

        g[FsBase] = U64(cpu, HvmBase + (3 * 8));
        g[GsBase] = U64(cpu, HvmBase + (4 * 8));
        return new VcpuRegisters(vcpu, g, cpu[..FxsaveSize].ToArray());
    }

    private static VcpuRegisters? FromPv(ReadOnlySpan<byte> basic, int width, int vcpu)
    {
        var g = new ulong[GregCount];
        if (width == 8)
        {
            if (basic.Length < PvVcpuLayout.BasicSize64)
            {
                return null;
            }

            for (var i = R15; i <= Rdi; i++)
            {
                g[i] = U64(basic, Pv64Regs + (i * 8));
            }

            g[OrigRax] = ulong.MaxValue;
            g[Rip] = U64(basic, Pv64Regs + 128);
            g[Cs] = U64(basic, Pv64Regs + 136) & 0xFFFF;
            g[Eflags] = U64(basic, Pv64Regs + 144);
            g[Rsp] = U64(basic, Pv64Regs + 152);
            g[Ss] = U64(basic, Pv64Regs + 160) & 0xFFFF;
            g[Es] = U64(basic, Pv64Regs + 168) & 0xFFFF;
            g[Ds] = U64(basic, Pv64Regs + 176) & 0xFFFF;
            g[Fs] = U64(basic, Pv64Regs + 184) & 0xFFFF;
            g[Gs] = U64(basic, Pv64Regs + 192) & 0xFFFF;
            g[FsBase] = U64(basic, Pv64FsBase);
            var inKernel = (U64(basic, Pv64Flags) & VgcfInKernel) != 0;
            g[GsBase] = U64(basic, inKernel ? Pv64GsKernel : Pv64GsUser);
        }
        else
        {
            if (basic.Length < PvVcpuLayout.BasicSize32)
            {
                return null;
            }

            // 32-bit registers, zero-extended into the 64-bit set.
            ReadOnlySpan<int> order = [Rbx, Rcx, Rdx, Rsi, Rdi, Rbp, Rax];
            for (var i = 0; i < order.Length; i++)
            {
                g[order[i]] = U32(basic, Pv32Regs + (i * 4));
            }

            g[OrigRax] = ulong.MaxValue;
            g[Rip] = U32(basic, Pv32Regs + 32);
            g[Cs] = U32(basic, Pv32Regs + 36) & 0xFFFF;
            g[Eflags] = U32(basic, Pv32Regs + 40);
            g[Rsp] = U32(basic, Pv32Regs + 44);
            g[Ss] = U32(basic, Pv32Regs + 48) & 0xFFFF;
            g[Es] = U32(basic, Pv32Regs + 52) & 0xFFFF;
            g[Ds] = U32(basic, Pv32Regs + 56) & 0xFFFF;
            g[Fs] = U32(basic, Pv32Regs + 60) & 0xFFFF;
            g[Gs] = U32(basic, Pv32Regs + 64) & 0xFFFF;
        }

        return new VcpuRegisters(vcpu, g, basic[..FxsaveSize].ToArray());
    }

    private static ulong U64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b[at..]);

    private static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
}
