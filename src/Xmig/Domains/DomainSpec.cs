namespace Xmig.Domains;

/// <summary>What <c>xmig domain create</c> builds: guest type, RAM, vCPUs, content seed and (PV) guest width.</summary>
internal sealed record DomainSpec(GuestType Type, ulong MemoryBytes, int Vcpus, ulong Seed, int GuestWidth = 8)
{
    public const ulong MinMemory = 16UL << 20;
    public const ulong MaxMemory = 16UL << 30;
    public const int MaxVcpus = 128;

    /// <summary>Guest RAM of the simulated host; no domain may be larger than its memory bound.</summary>
    public const ulong MachineMemory = 24UL << 30;

    /// <summary>Returns null when the spec can be built, else why not.</summary>
    public string? Validate()
    {
        if (Type is not (GuestType.Pv or GuestType.Hvm))
        {
            return $"unknown guest type {Type}";
        }

        if (MemoryBytes < MinMemory || MemoryBytes > MaxMemory)
        {
            return $"memory {ByteSize.Format(MemoryBytes)} is outside {ByteSize.Format(MinMemory)} … {ByteSize.Format(MaxMemory)}";
        }

        if (MemoryBytes % GuestPage.Size != 0)
        {
            return $"memory {MemoryBytes} is not a multiple of the 4096-octet page";
        }

        if (Vcpus < 1 || Vcpus > MaxVcpus)
        {
            return $"vcpus {Vcpus} is outside 1 … {MaxVcpus}";
        }

        if (GuestWidth is not (4 or 8))
        {
            return $"guest width {GuestWidth * 8} is not 32 or 64";
        }

        if (Type == GuestType.Hvm && GuestWidth != 8)
        {
            return "guest width applies to PV guests only";
        }

        return null;
    }
}
