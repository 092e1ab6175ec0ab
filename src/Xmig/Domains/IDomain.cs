namespace Xmig.Domains;

/// <summary>
/// What a hypervisor gives a save/restore engine about one guest, and nothing more. The save side reads
/// memory and state while the guest runs, pauses it, and tracks what it dirties; the restore side populates
/// a new, paused guest. A simulated guest implements it (<see cref="SimulatedDomain"/>); a guest under
/// libxenctrl (<c>xc_get_pfn_type_batch</c>, <c>xenforeignmemory_map</c>, <c>XEN_DOMCTL_*context</c>,
/// <c>xc_shadow_control</c>) or under KVM (<c>KVM_GET_DIRTY_LOG</c>, vCPU ioctls) can implement it without
/// any change to the engines.
/// </summary>
/// <remarks>
/// <para>Threading: an engine calls a domain from one thread at a time. The guest itself may keep running
/// (and writing its memory) on other threads until <see cref="Pause"/> returns; page contents read while it
/// runs may be torn, which is what log-dirty tracking is for.</para>
/// <para>State blobs (contexts, policies, shared info) are opaque octets in Xen's own layouts; the engine
/// carries them without interpreting them. Getters return the current value (empty when there is none);
/// setters replace it. On restore, an engine calls the setters when it commits state, not as records
/// arrive.</para>
/// </remarks>
internal interface IDomain : IDomainMemory, IDomainState, IDomainControl, IDisposable
{
    /// <summary>PV or HVM.</summary>
    GuestType GuestType { get; }

    /// <summary>Guest word size in octets: 4 or 8 for PV guests (X86_PV_INFO <c>guest_width</c>); 8 for HVM.</summary>
    int GuestWidth { get; }

    /// <summary>Guest RAM in octets (xl's <c>max_memkb</c> × 1024); for a domain that does not know it, <see cref="IDomainMemory.P2mSize"/> × 4096.</summary>
    ulong MemoryBytes { get; }
}

/// <summary>Guest memory and its log-dirty tracking: what a pre-copy pass reads and a restore writes.</summary>
internal interface IDomainMemory
{
    // ---- Memory map ----

    /// <summary>Number of guest frames the p2m covers (Xen's max_pfn + 1). Frames are numbered 0 … P2mSize − 1.</summary>
    ulong P2mSize { get; }

    /// <summary>
    /// The largest <see cref="P2mSize"/> this domain can grow to (the memory bound of a restore).
    /// </summary>
    ulong MaxP2mSize { get; }

    /// <summary>
    /// Grows <see cref="P2mSize"/> to at least <paramref name="size"/> (a PV stream declares it; HVM grows as pages
    /// arrive). Never shrinks. Throws <see cref="ArgumentOutOfRangeException"/> beyond <see cref="MaxP2mSize"/>.
    /// </summary>
    void GrowP2m(ulong size);

    /// <summary>
    /// Types of the frames <paramref name="firstPfn"/> … <paramref name="firstPfn"/> + <paramref name="types"/>.Length − 1
    /// (the range must lie below <see cref="P2mSize"/>). Absent frames are <see cref="PageType.XTab"/>; a frame
    /// holds page data exactly when its type <see cref="PageTypeExtensions.HasData"/>.
    /// </summary>
    void GetPageTypes(ulong firstPfn, Span<PageType> types);

    /// <summary>
    /// A read-only view of one frame's 4096 octets, straight from guest memory (no copy). Valid until the domain is
    /// disposed. While the guest runs, the contents may change under the reader. An absent frame reads as zeros.
    /// </summary>
    ReadOnlySpan<byte> GetPage(ulong pfn);

    /// <summary>Copies one frame into <paramref name="destination"/> (at least 4096 octets).</summary>
    void ReadPage(ulong pfn, Span<byte> destination);

    /// <summary>
    /// Populates frame <paramref name="pfn"/> with type <paramref name="type"/> and, for types that carry data, writes
    /// <paramref name="data"/> (exactly 4096 octets; empty for the others). <see cref="PageType.XTab"/> changes
    /// nothing. Grows <see cref="P2mSize"/> when needed; throws <see cref="ArgumentOutOfRangeException"/> beyond
    /// <see cref="MaxP2mSize"/>. Marks the frame dirty when log-dirty mode is on.
    /// </summary>
    void WritePage(ulong pfn, PageType type, ReadOnlySpan<byte> data);

    /// <summary>
    /// <see cref="WritePage"/> for <paramref name="data"/>.Length / 4096 consecutive frames from
    /// <paramref name="firstPfn"/>, all of <paramref name="type"/> (one that carries data): the restore path's bulk form,
    /// which a backend can turn into one write per run instead of one per page.
    /// </summary>
    void WritePages(ulong firstPfn, PageType type, ReadOnlySpan<byte> data)
    {
        for (var i = 0; i < data.Length >> GuestPage.Shift; i++)
        {
            WritePage(firstPfn + (ulong)i, type, data.Slice(i << GuestPage.Shift, GuestPage.Size));
        }
    }

    // ---- Log-dirty ----

    /// <summary>True while log-dirty mode is on.</summary>
    bool LogDirty { get; }

    /// <summary>Turns log-dirty mode on with an empty dirty bitmap (restarting it if it was already on).</summary>
    void EnableLogDirty();

    void DisableLogDirty();

    /// <summary>
    /// Atomically takes the dirty bitmap: copies it into <paramref name="bitmap"/> (bit <c>pfn % 64</c> of word
    /// <c>pfn / 64</c>; at least ⌈<see cref="P2mSize"/>/64⌉ words; words beyond are left alone) and clears it.
    /// Allocates nothing. Returns the number of dirty frames. Requires log-dirty mode.
    /// </summary>
    long ReadAndClearDirty(Span<ulong> bitmap);
}

/// <summary>vCPU, HVM, PV and device-model state: opaque blobs in Xen's layouts, read at the end of a checkpoint and set when a restore commits.</summary>
internal interface IDomainState
{
    // ---- vCPUs ----

    /// <summary>Highest vCPU id of the domain (the vCPU set is 0 … MaxVcpuId), or −1 when there is none yet.</summary>
    int MaxVcpuId { get; }

    /// <summary>True when vCPU <paramref name="vcpu"/> is online (its state is part of a save).</summary>
    bool IsVcpuOnline(int vcpu);

    /// <summary>A PV vCPU's context blob of the given kind (empty when the vCPU has none of that kind).</summary>
    ReadOnlySpan<byte> GetVcpuContext(int vcpu, VcpuContextKind kind);

    /// <summary>Sets a PV vCPU's context blob; a non-empty BASIC context brings the vCPU online.</summary>
    void SetVcpuContext(int vcpu, VcpuContextKind kind, ReadOnlySpan<byte> context);

    // ---- HVM state ----

    /// <summary>The HVM save blob (<c>XEN_DOMCTL_gethvmcontext</c>), which also holds the HVM vCPUs' state. Empty for PV.</summary>
    ReadOnlySpan<byte> HvmContext { get; }

    void SetHvmContext(ReadOnlySpan<byte> context);

    /// <summary>Value of HVM parameter <paramref name="index"/> (0 when unset), as <c>xc_hvm_param_get</c>.</summary>
    ulong GetHvmParam(uint index);

    void SetHvmParam(uint index, ulong value);

    // ---- PV state ----

    /// <summary>The pfns of the frames holding the guest's own p2m table (X86_PV_P2M_FRAMES). Empty for HVM.</summary>
    ReadOnlySpan<ulong> P2mFrames { get; }

    void SetP2mFrames(ReadOnlySpan<ulong> frames);

    /// <summary>The 4096-octet shared-info page in the guest's ABI (SHARED_INFO). Empty for HVM.</summary>
    ReadOnlySpan<byte> SharedInfo { get; }

    void SetSharedInfo(ReadOnlySpan<byte> page);

    // ---- Both guest types ----

    TscInfo TscInfo { get; set; }

    /// <summary>Serialised CPUID policy: an array of 24-octet <c>xen_cpuid_leaf_t</c> (empty when unknown).</summary>
    ReadOnlySpan<byte> CpuidPolicy { get; }

    void SetCpuidPolicy(ReadOnlySpan<byte> policy);

    /// <summary>Serialised MSR policy: an array of 16-octet <c>xen_msr_entry_t</c> (empty when unknown).</summary>
    ReadOnlySpan<byte> MsrPolicy { get; }

    void SetMsrPolicy(ReadOnlySpan<byte> policy);

    // ---- Device model (HVM) ----

    /// <summary>The emulator's own save blob (for QEMU upstream, its device-state file). Empty when there is none.</summary>
    ReadOnlySpan<byte> EmulatorContext { get; }

    void SetEmulatorContext(ReadOnlySpan<byte> context);

    /// <summary>Key/value pairs under the device model's xenstore directory, in order (EMULATOR_XENSTORE_DATA).</summary>
    IReadOnlyList<XenstoreEntry> EmulatorXenstore { get; }

    void SetEmulatorXenstore(IReadOnlyList<XenstoreEntry> entries);
}

/// <summary>Running and stopping the guest.</summary>
internal interface IDomainControl
{
    bool IsPaused { get; }

    /// <summary>Stops the guest; when it returns, no guest write is in flight.</summary>
    void Pause();

    void Unpause();

    /// <summary>The share of the guest's CPU time taken away, in percent (QEMU's <c>cpu-throttle-percentage</c>; 0: none).</summary>
    int ThrottlePercent { get; }

    /// <summary>
    /// Takes <paramref name="percent"/> (0 … 99) of the guest's CPU time away, so that it dirties memory more slowly
    /// (auto-converge); 0 lifts the throttle. Returns false, changing nothing, when this backend cannot throttle.
    /// </summary>
    bool SetThrottle(int percent);
}
