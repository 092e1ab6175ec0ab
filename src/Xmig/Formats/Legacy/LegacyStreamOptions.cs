namespace Xmig.Formats.Legacy;

/// <summary>What the reader does with the HVM device-model record after the HVM context (§6.5, §6.6).</summary>
internal enum LegacyDeviceModelHandling
{
    /// <summary>Read it as the last part of every HVM tail, as libxc does; a missing or unknown signature is an error.</summary>
    Required,

    /// <summary>Read it if one of the three signatures follows, otherwise end the tail without it.</summary>
    IfPresent,

    /// <summary>Do not read it: the tail ends after the HVM context (Xen's converter with <c>--skip-qemu</c>).</summary>
    Leave,
}

/// <summary>
/// What a legacy reader must be told from outside (legacy-stream.md §1): the saving toolstack's word width
/// <c>W</c> and the guest type, plus the limits applied to every length the format leaves unbounded (§11).
/// </summary>
internal sealed record LegacyStreamOptions
{
    /// <summary>Saver refuses guests above this (pfns must fit in 28 bits, legacy-stream.md §4.1).</summary>
    public const ulong MaxP2mSizeLimit = 0x0FFF_FFFF;

    public LegacyStreamOptions(int width, GuestType guest)
    {
        if (width is not (4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "toolstack word width must be 4 or 8 octets");
        }

        Width = width;
        Guest = guest;
    }

    /// <summary>Octets in a toolstack <c>unsigned long</c>: 4 (32-bit tools) or 8 (64-bit tools).</summary>
    public int Width { get; }

    public GuestType Guest { get; }

    /// <summary>HVM only: how the device-model record is treated.</summary>
    public LegacyDeviceModelHandling DeviceModel { get; init; } = LegacyDeviceModelHandling.Required;

    /// <summary>Largest accepted <c>p2m_size</c> (the sender's own limit).</summary>
    public ulong MaxP2mSize { get; init; } = MaxP2mSizeLimit;

    /// <summary>Largest accepted extended-info total length.</summary>
    public uint MaxExtendedInfoLength { get; init; } = 64 * 1024;

    /// <summary>Largest accepted <c>xcnt</c> (per-vCPU xsave record size).</summary>
    public uint MaxXsaveRecordSize { get; init; } = 1024 * 1024;

    /// <summary>Largest accepted TOOLSTACK chunk payload.</summary>
    public uint MaxToolstackLength { get; init; } = 16 * 1024 * 1024;

    /// <summary>Largest accepted COMPRESSED_DATA payload (the sender stages at most 8192 pages of ≤ 4105 octets).</summary>
    public ulong MaxCompressedDataLength { get; init; } = 8192UL * 4105;

    /// <summary>Largest accepted HVM context.</summary>
    public uint MaxHvmContextLength { get; init; } = 64 * 1024 * 1024;

    /// <summary>Largest accepted device-model record (also bounds a <c>QemuDeviceModelRecord</c> read to end of stream).</summary>
    public long MaxDeviceModelLength { get; init; } = 256L * 1024 * 1024;

    /// <summary>Largest accepted TMEM or TMEM_EXTRA chunk, in octets (it carries no length; it is parsed).</summary>
    public long MaxTmemLength { get; init; } = 1L << 32;

    /// <summary>Number of octets in an <c>unsigned long</c> of the saving toolstack.</summary>
    public bool IsPv => Guest == GuestType.Pv;
}
