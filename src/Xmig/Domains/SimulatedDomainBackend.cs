namespace Xmig.Domains;

/// <summary>Simulated domains in one directory (a restore's working directory): the backend of <c>xmig restore</c>.</summary>
internal sealed class SimulatedDomainBackend(string directory) : IDomainBackend
{
    /// <summary>What a simulated domain holds: <see cref="SimulatedDomain.P2mLimit"/> frames, vCPU ids up to <see cref="SimulatedDomain.MaxVcpuLimit"/>.</summary>
    public static DomainLimits SimulatedLimits { get; } = new(SimulatedDomain.P2mLimit, SimulatedDomain.MaxVcpuLimit);

    public string Name => "simulated";

    public DomainLimits Limits => SimulatedLimits;

    public IDomain CreateEmpty(GuestType type, int guestWidth, ulong maxP2mSize) =>
        SimulatedDomain.CreateEmpty(directory, type, guestWidth, maxP2mSize);

    public void Complete(IDomain domain) => ((SimulatedDomain)domain).Save();
}
