namespace Xmig.Domains.Kvm;

/// <summary>
/// Everything the backend reads from and writes to one vCPU: <c>KVM_GET/SET_REGS</c>, <c>SREGS</c>, <c>FPU</c> and the
/// MSRs of <see cref="Msrs"/>. It maps one-to-one onto Xen's <c>hvm_hw_cpu</c> (<see cref="HvmHwCpu"/>) plus the LAPIC
/// base and PAT, which Xen keeps in its LAPIC and MTRR entries.
/// </summary>
internal sealed class KvmCpuState
{
    public const uint MsrTsc = 0x10;
    public const uint MsrSysenterCs = 0x174;
    public const uint MsrSysenterEsp = 0x175;
    public const uint MsrSysenterEip = 0x176;
    public const uint MsrPat = 0x277;
    public const uint MsrStar = 0xC000_0081;
    public const uint MsrLstar = 0xC000_0082;
    public const uint MsrCstar = 0xC000_0083;
    public const uint MsrSyscallMask = 0xC000_0084;
    public const uint MsrKernelGsBase = 0xC000_0102;
    public const uint MsrTscAux = 0xC000_0103;

    /// <summary>MSRs carried, in the order read; TSC_AUX last (absent without RDTSCP, and then left out).</summary>
    public static readonly uint[] Msrs =
    [
        MsrTsc, MsrSysenterCs, MsrSysenterEsp, MsrSysenterEip, MsrPat, MsrStar, MsrLstar, MsrCstar, MsrSyscallMask,
        MsrKernelGsBase, MsrTscAux,
    ];

    public KvmNative.Regs Regs;
    public KvmNative.Sregs Sregs;
    public KvmNative.Fpu Fpu;

    /// <summary>Values of <see cref="Msrs"/>, same order.</summary>
    public ulong[] MsrValues { get; } = new ulong[Msrs.Length];

    public ulong Msr(uint index) => MsrValues[Array.IndexOf(Msrs, index)];

    public void SetMsr(uint index, ulong value) => MsrValues[Array.IndexOf(Msrs, index)] = value;

    public KvmCpuState Clone()
    {
        var copy = new KvmCpuState { Regs = Regs, Sregs = Sregs, Fpu = Fpu };
        MsrValues.CopyTo(copy.MsrValues, 0);
        return copy;
    }
}
