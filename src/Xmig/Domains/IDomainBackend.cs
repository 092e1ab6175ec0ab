namespace Xmig.Domains;

/// <summary>What a backend's domains can hold: the bounds a restore checks a stream against before it asks for more.</summary>
/// <param name="MaxP2mSize">Largest p2m in frames a domain of this backend can grow to.</param>
/// <param name="MaxVcpuId">Largest vCPU id it supports.</param>
internal sealed record DomainLimits(ulong MaxP2mSize, int MaxVcpuId)
{
    /// <summary>
    /// Xen's own bounds: 2^28 frames (1 TiB of guest-physical space, the legacy format's 28-bit pfns) and
    /// vCPU ids below <c>XC_SR_MAX_VCPUS</c> (4096).
    /// </summary>
    public static DomainLimits Xen { get; } = new(1UL << 28, 4095);
}

/// <summary>
/// Makes the domains a restore fills, so that engines never know which backend they drive (simulated, KVM, a test
/// backend). A backend instance is bound to where its domains live (a working directory, a VM manager).
/// </summary>
internal interface IDomainBackend
{
    /// <summary>Short name for messages (<c>simulated</c>, <c>kvm</c>).</summary>
    string Name { get; }

    DomainLimits Limits { get; }

    /// <summary>
    /// A new, empty, paused domain of <paramref name="type"/> and <paramref name="guestWidth"/> octets per word, whose
    /// p2m can grow to <paramref name="maxP2mSize"/> frames (at most <see cref="DomainLimits.MaxP2mSize"/>).
    /// </summary>
    IDomain CreateEmpty(GuestType type, int guestWidth, ulong maxP2mSize);

    /// <summary>A restore into <paramref name="domain"/> completed: make it durable (persist its description and state).</summary>
    void Complete(IDomain domain);
}
