using Xmig.Domains;

namespace Xmig.Fuzz;

/// <summary>
/// An <see cref="IDomain"/> held entirely in managed memory, for fuzzing restore without files and for writing small
/// seed saves. Only frames that were written take memory (one 4096-octet array each), so a hostile p2m size costs
/// nothing; it enforces the same contract as <see cref="SimulatedDomain"/> (limits, defined types, data lengths).
/// </summary>
internal sealed class InMemoryDomain(GuestType type, int guestWidth, ulong maxP2mSize) : IDomain
{
    private const int PageSize = GuestPage.Size;

    private readonly Dictionary<ulong, byte[]> _pages = [];
    private readonly Dictionary<ulong, PageType> _types = [];
    private readonly List<byte[][]> _vcpus = [];
    private readonly ulong[] _hvmParams = new ulong[HvmParam.Count];
    private readonly HashSet<ulong> _dirty = [];
    private byte[] _hvmContext = [];
    private int _hvmVcpus;
    private ulong[] _p2mFrames = [];
    private byte[] _sharedInfo = [];
    private byte[] _cpuidPolicy = [];
    private byte[] _msrPolicy = [];
    private byte[] _emulatorContext = [];
    private List<XenstoreEntry> _xenstore = [];
    private ulong _p2mSize;

    public GuestType GuestType { get; } = type;

    public int GuestWidth { get; } = guestWidth;

    public ulong P2mSize => _p2mSize;

    public ulong MemoryBytes => _p2mSize * 4096;

    public ulong MaxP2mSize { get; } = Math.Min(maxP2mSize, SimulatedDomain.P2mLimit);

    /// <summary>Frames that hold page data.</summary>
    public int PopulatedPages => _pages.Count;

    public void GrowP2m(ulong size)
    {
        if (size > MaxP2mSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"p2m size beyond this domain's limit of {MaxP2mSize} frames");
        }

        _p2mSize = Math.Max(_p2mSize, size);
    }

    public void GetPageTypes(ulong firstPfn, Span<PageType> types)
    {
        if (firstPfn > _p2mSize || (ulong)types.Length > _p2mSize - firstPfn)
        {
            throw new ArgumentOutOfRangeException(nameof(firstPfn), firstPfn, $"range of {types.Length} frames beyond p2m size {_p2mSize}");
        }

        for (var i = 0; i < types.Length; i++)
        {
            types[i] = _types.TryGetValue(firstPfn + (ulong)i, out var t) ? t : PageType.XTab;
        }
    }

    public ReadOnlySpan<byte> GetPage(ulong pfn)
    {
        CheckPfn(pfn);
        return _pages.TryGetValue(pfn, out var page) ? page : new byte[PageSize];
    }

    public void ReadPage(ulong pfn, Span<byte> destination) => GetPage(pfn).CopyTo(destination);

    public void WritePage(ulong pfn, PageType type, ReadOnlySpan<byte> data)
    {
        if (!type.IsDefined())
        {
            throw new ArgumentException($"page type 0x{(byte)type:X} is not defined", nameof(type));
        }

        if (type == PageType.XTab)
        {
            return;
        }

        if (type.HasData() ? data.Length != PageSize : !data.IsEmpty)
        {
            throw new ArgumentException($"page type {type} needs {(type.HasData() ? PageSize : 0)} octets, got {data.Length}", nameof(data));
        }

        if (pfn >= MaxP2mSize)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"pfn beyond this domain's limit of {MaxP2mSize} frames");
        }

        GrowP2m(pfn + 1);
        if (type.HasData())
        {
            if (!_pages.TryGetValue(pfn, out var page))
            {
                _pages[pfn] = page = new byte[PageSize];
            }

            data.CopyTo(page);
        }
        else
        {
            _pages.Remove(pfn);
        }

        _types[pfn] = type;
        if (LogDirty)
        {
            _dirty.Add(pfn);
        }
    }

    public int MaxVcpuId => GuestType == GuestType.Hvm ? _hvmVcpus - 1 : _vcpus.Count - 1;

    public bool IsVcpuOnline(int vcpu) => GuestType == GuestType.Hvm
        ? vcpu >= 0 && vcpu < _hvmVcpus
        : vcpu >= 0 && vcpu < _vcpus.Count && _vcpus[vcpu][(int)VcpuContextKind.Basic].Length > 0;

    public ReadOnlySpan<byte> GetVcpuContext(int vcpu, VcpuContextKind kind)
    {
        CheckKind(kind);
        return vcpu >= 0 && vcpu < _vcpus.Count ? _vcpus[vcpu][(int)kind] : [];
    }

    public void SetVcpuContext(int vcpu, VcpuContextKind kind, ReadOnlySpan<byte> context)
    {
        CheckKind(kind);
        ArgumentOutOfRangeException.ThrowIfNegative(vcpu);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(vcpu, SimulatedDomain.MaxVcpuLimit);
        if (GuestType != GuestType.Pv)
        {
            throw new InvalidOperationException("HVM vCPU state lives in the HVM context");
        }

        while (_vcpus.Count <= vcpu)
        {
            _vcpus.Add([[], [], [], []]);
        }

        _vcpus[vcpu][(int)kind] = context.ToArray();
    }

    public ReadOnlySpan<byte> HvmContext => _hvmContext;

    public void SetHvmContext(ReadOnlySpan<byte> context)
    {
        _hvmContext = context.ToArray();
        _hvmVcpus = HvmContextBlob.CountVcpus(context);
    }

    public ulong GetHvmParam(uint index) => index < HvmParam.Count ? _hvmParams[index] : 0;

    public void SetHvmParam(uint index, ulong value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, HvmParam.Count);
        _hvmParams[index] = value;
    }

    public ReadOnlySpan<ulong> P2mFrames => _p2mFrames;

    public void SetP2mFrames(ReadOnlySpan<ulong> frames) => _p2mFrames = frames.ToArray();

    public ReadOnlySpan<byte> SharedInfo => _sharedInfo;

    public void SetSharedInfo(ReadOnlySpan<byte> page)
    {
        if (!page.IsEmpty && page.Length != PageSize)
        {
            throw new ArgumentException($"shared info is {PageSize} octets, got {page.Length}", nameof(page));
        }

        _sharedInfo = page.ToArray();
    }

    public TscInfo TscInfo { get; set; }

    public ReadOnlySpan<byte> CpuidPolicy => _cpuidPolicy;

    public void SetCpuidPolicy(ReadOnlySpan<byte> policy) => _cpuidPolicy = policy.ToArray();

    public ReadOnlySpan<byte> MsrPolicy => _msrPolicy;

    public void SetMsrPolicy(ReadOnlySpan<byte> policy) => _msrPolicy = policy.ToArray();

    public ReadOnlySpan<byte> EmulatorContext => _emulatorContext;

    public void SetEmulatorContext(ReadOnlySpan<byte> context) => _emulatorContext = context.ToArray();

    public IReadOnlyList<XenstoreEntry> EmulatorXenstore => _xenstore;

    public void SetEmulatorXenstore(IReadOnlyList<XenstoreEntry> entries) => _xenstore = [.. entries];

    public bool IsPaused { get; private set; }

    public void Pause() => IsPaused = true;

    public void Unpause() => IsPaused = false;

    public int ThrottlePercent { get; private set; }

    public bool SetThrottle(int percent)
    {
        ThrottlePercent = percent;
        return true;
    }

    public bool LogDirty { get; private set; }

    public void EnableLogDirty()
    {
        LogDirty = true;
        _dirty.Clear();
    }

    public void DisableLogDirty()
    {
        LogDirty = false;
        _dirty.Clear();
    }

    public long ReadAndClearDirty(Span<ulong> bitmap)
    {
        if (!LogDirty)
        {
            throw new InvalidOperationException("log-dirty mode is off");
        }

        bitmap[..(int)((_p2mSize + 63) / 64)].Clear();
        foreach (var pfn in _dirty)
        {
            bitmap[(int)(pfn / 64)] |= 1UL << (int)(pfn % 64);
        }

        long count = _dirty.Count;
        _dirty.Clear();
        return count;
    }

    public void Dispose()
    {
    }

    private void CheckPfn(ulong pfn)
    {
        if (pfn >= _p2mSize)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"pfn beyond p2m size {_p2mSize}");
        }
    }

    private static void CheckKind(VcpuContextKind kind)
    {
        if ((uint)kind > (uint)VcpuContextKind.Msrs)
        {
            throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }
}
