namespace Xmig.Formats.Libxc;

/// <summary>Domain Header <c>type</c> (v2 spec §3.2). 3 (old PVH) and 4 (ARM) are withdrawn.</summary>
public enum DomainType : uint
{
    /// <summary>Reserved.</summary>
    None = 0,

    /// <summary>x86 PV.</summary>
    X86Pv = 1,

    /// <summary>x86 HVM (also PVH guests).</summary>
    X86Hvm = 2,
}
