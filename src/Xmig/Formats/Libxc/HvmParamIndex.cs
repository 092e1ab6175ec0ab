namespace Xmig.Formats.Libxc;

/// <summary>HVM parameter indices carried in HVM_PARAMS (v2 spec §3.5.9; <c>public/hvm/params.h</c>).</summary>
public enum HvmParamIndex : ulong
{
    StorePfn = 1,
    StoreEvtchn = 2,
    PaeEnabled = 4,
    IoreqPfn = 5,
    BufioreqPfn = 6,
    Viridian = 9,
    IdentPt = 12,
    Vm86Tss = 15,
    ConsolePfn = 17,
    ConsoleEvtchn = 18,
    AcpiIoportsLocation = 19,
    PagingRingPfn = 27,
    MonitorRingPfn = 28,
    SharingRingPfn = 29,
    IoreqServerPfn = 32,
    NrIoreqServerPages = 33,
    VmGenerationIdAddr = 34,
    X87FipWidth = 36,
    Vm86TssSized = 37,
    McaCap = 38,
}
