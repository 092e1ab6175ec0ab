using System.Buffers.Binary;
using System.Numerics;

namespace Xmig.Domains;

/// <summary>
/// Field offsets of the PV guest ABI structures a simulated PV domain fills in (legacy-stream.md §6.2–§6.4,
/// v2-stream.md §3.5.5–§3.5.6): <c>vcpu_guest_context</c> for 32-bit (PAE) and 64-bit guests, the extended
/// context, the XSAVE buffer and the shared-info page. Fields not named here are left as seeded noise or zero.
/// </summary>
internal static class PvVcpuLayout
{
    public const int BasicSize64 = 5168;
    public const int BasicSize32 = 2800;
    public const int ExtendedSize = 128;
    public const int XsaveAreaSize = 832; // legacy FXSAVE region 512, XSAVE header 64, AVX state 256

    // vcpu_guest_context, x86_64 layout
    private const int Flags64 = 512;
    private const int UserRegs64 = 520;
    private const int Rdx64 = 616;
    private const int UserRegsEnd64 = 720;
    private const int GdtEnts64 = 4960;
    private const int CtrlReg1_64 = 4992;
    private const int CtrlReg3_64 = 5008;
    private const int VmAssist64 = 5136;

    // vcpu_guest_context, x86_32 layout
    private const int Flags32 = 512;
    private const int UserRegs32 = 516;
    private const int Edx32 = 524;
    private const int UserRegsEnd32 = 584;
    private const int GdtEnts32 = 2704;
    private const int CtrlReg3_32 = 2728;
    private const int VmAssist32 = 2796;

    // FXSAVE image at the start of the context
    private const int Fcw = 0;
    private const int Mxcsr = 24;

    private const ulong VgcfI387Valid = 1 << 0;
    private const ulong VgcfInKernel = 1 << 2;
    private const ulong VgcfOnline = 1 << 5;
    private const ulong VmAssistWritablePagetables = 1 << 2;
    private const ulong VmAssistPaeExtendedCr3 = 1 << 3;

    /// <summary>Fills a BASIC context: registers from the seed, flags, cr3 (folded top-level pfn) and, for vCPU 0, the start-info pfn in edx.</summary>
    public static void Fill(Span<byte> basic, int width, int vcpu, ulong startInfoPfn, ulong topTablePfn, ulong seed)
    {
        basic.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(basic[Fcw..], 0x037F);
        BinaryPrimitives.WriteUInt32LittleEndian(basic[Mxcsr..], 0x1F80);
        var prng = new Prng(seed);
        var flags = VgcfI387Valid | VgcfInKernel | VgcfOnline;
        if (width == 8)
        {
            prng.Fill(basic[UserRegs64..UserRegsEnd64]);
            BinaryPrimitives.WriteUInt64LittleEndian(basic[Flags64..], flags);
            BinaryPrimitives.WriteUInt64LittleEndian(basic[Rdx64..], vcpu == 0 ? startInfoPfn : 0);
            BinaryPrimitives.WriteUInt64LittleEndian(basic[GdtEnts64..], 0);
            BinaryPrimitives.WriteUInt64LittleEndian(basic[CtrlReg1_64..], 0);
            BinaryPrimitives.WriteUInt64LittleEndian(basic[CtrlReg3_64..], topTablePfn << 12);
            BinaryPrimitives.WriteUInt64LittleEndian(basic[VmAssist64..], VmAssistWritablePagetables);
        }
        else
        {
            prng.Fill(basic[UserRegs32..UserRegsEnd32]);
            BinaryPrimitives.WriteUInt32LittleEndian(basic[Flags32..], (uint)flags);
            BinaryPrimitives.WriteUInt32LittleEndian(basic[Edx32..], vcpu == 0 ? (uint)startInfoPfn : 0);
            BinaryPrimitives.WriteUInt32LittleEndian(basic[GdtEnts32..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(basic[CtrlReg3_32..], BitOperations.RotateLeft((uint)topTablePfn, 12));
            BinaryPrimitives.WriteUInt32LittleEndian(basic[VmAssist32..], (uint)(VmAssistWritablePagetables | VmAssistPaeExtendedCr3));
        }
    }

    /// <summary>The 128-octet extended context: vcpu id, valid size, then (zero) syscall/sysenter callbacks and vMCE state.</summary>
    public static byte[] Extended(int vcpu)
    {
        var ext = new byte[ExtendedSize];
        BinaryPrimitives.WriteUInt32LittleEndian(ext, (uint)vcpu);
        BinaryPrimitives.WriteUInt32LittleEndian(ext.AsSpan(4), 56);
        BinaryPrimitives.WriteUInt64LittleEndian(ext.AsSpan(32), 0x0000000000000A09UL); // vMCE caps
        return ext;
    }

    /// <summary>The XSAVE buffer: xcr0 and xcr0_accum (x87, SSE, AVX), then the XSAVE area.</summary>
    public static byte[] Xsave(ulong seed)
    {
        var buffer = new byte[16 + XsaveAreaSize];
        var span = buffer.AsSpan();
        BinaryPrimitives.WriteUInt64LittleEndian(span, 7);
        BinaryPrimitives.WriteUInt64LittleEndian(span[8..], 7);
        var area = span[16..];
        new Prng(seed).Fill(area[160..512]); // xmm registers
        BinaryPrimitives.WriteUInt16LittleEndian(area[Fcw..], 0x037F);
        BinaryPrimitives.WriteUInt32LittleEndian(area[Mxcsr..], 0x1F80);
        BinaryPrimitives.WriteUInt32LittleEndian(area[28..], 0xFFFF); // mxcsr_mask
        BinaryPrimitives.WriteUInt64LittleEndian(area[512..], 7);     // xstate_bv
        new Prng(seed + 1).Fill(area[576..]);                          // ymm upper halves
        return buffer;
    }

    /// <summary>The shared-info page in the guest's layout: vcpu_info with upcalls masked, all event channels masked, arch.max_pfn.</summary>
    public static byte[] SharedInfo(int width, int vcpus, ulong p2mSize)
    {
        var page = new byte[4096];
        var span = page.AsSpan();
        for (var v = 0; v < Math.Min(vcpus, 32); v++)
        {
            span[(v * 64) + 1] = 1; // evtchn_upcall_mask
        }

        if (width == 8)
        {
            span.Slice(2560, 512).Fill(0xFF);                                   // evtchn_mask
            BinaryPrimitives.WriteUInt64LittleEndian(span[3088..], p2mSize);     // arch.max_pfn
            BinaryPrimitives.WriteUInt64LittleEndian(span[3096..], 0);           // pfn_to_mfn_frame_list_list (zeroed by the sender)
        }
        else
        {
            span.Slice(2176, 128).Fill(0xFF);
            BinaryPrimitives.WriteUInt32LittleEndian(span[2316..], (uint)p2mSize);
            BinaryPrimitives.WriteUInt32LittleEndian(span[2320..], 0);
        }

        return page;
    }
}
