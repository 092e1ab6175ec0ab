namespace Xmig.Domains;

/// <summary>The per-vCPU blobs of a PV guest (v2-stream.md §3.5.5). HVM vCPU state is inside the HVM context.</summary>
internal enum VcpuContextKind
{
    /// <summary><c>vcpu_guest_context</c> in the guest's ABI: 5168 octets (64-bit guest) or 2800 (32-bit guest).</summary>
    Basic = 0,

    /// <summary>The extended context (<c>XEN_DOMCTL_get_ext_vcpucontext</c>), at most 128 octets.</summary>
    Extended = 1,

    /// <summary>The <c>XEN_DOMCTL_getvcpuextstate</c> buffer: xcr0, xcr0_accum, XSAVE area (at least 16 octets).</summary>
    Xsave = 2,

    /// <summary>Array of <c>{u32 index, u32 reserved, u64 value}</c> MSR entries (multiple of 16 octets).</summary>
    Msrs = 3,
}

/// <summary>TSC state (<c>XEN_DOMCTL_{get,set}tscinfo</c>; v2-stream.md §3.5.7, legacy-stream.md §5.5.3).</summary>
internal readonly record struct TscInfo(uint Mode, uint Khz, ulong Nsec, uint Incarnation);

/// <summary>One key/value pair under the device model's xenstore directory (v2-stream.md §4.4).</summary>
internal readonly record struct XenstoreEntry(string Key, string Value);
