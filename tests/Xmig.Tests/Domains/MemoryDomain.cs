using System.Numerics;
using Xmig.Domains;

namespace Xmig.Tests.Domains;

/// <summary>
/// A test backend that is not <see cref="SimulatedDomain"/>: memory is one growing byte array holding the frames that
/// carry data (a slot per frame), with its own types, dirty bitmap and state blobs. Nothing touches disk. It proves the
/// engines need nothing beyond <see cref="IDomain"/> and <see cref="IDomainBackend"/>.
/// </summary>
internal sealed class MemoryDomain : IDomain
{
    private const int PageSize = 4096;
    private static readonly byte[] Zeros = new byte[PageSize];

    private readonly Dictionary<ulong, int> _slots = [];
    private readonly Dictionary<ulong, PageType> _types = [];
    private readonly ulong[] _dirty;
    private readonly ulong[] _hvmParams = new ulong[HvmParam.Count];
    private readonly List<byte[][]> _vcpus = [];
    private byte[] _memory = new byte[16 * PageSize];
    private int _usedSlots;
    private ulong _p2mSize;
    private byte[] _hvmContext = [];
    private ulong[] _p2mFrames = [];
    private byte[] _sharedInfo = [];
    private byte[] _cpuid = [];
    private byte[] _msr = [];
    private byte[] _emulator = [];
    private XenstoreEntry[] _xenstore = [];

    public MemoryDomain(GuestType type, int guestWidth, ulong maxP2mSize, ulong p2mSize = 0)
    {
        GuestType = type;
        GuestWidth = guestWidth;
        MaxP2mSize = maxP2mSize;
        _p2mSize = p2mSize;
        _dirty = new ulong[(maxP2mSize + 63) / 64];
    }

    public GuestType GuestType { get; }

    public int GuestWidth { get; }

    public ulong MemoryBytes { get; set; }

    public ulong P2mSize => _p2mSize;

    public ulong MaxP2mSize { get; }

    public bool IsPaused { get; private set; }

    public bool LogDirty { get; private set; }

    /// <summary>Pause and unpause calls, to check the engines pair them.</summary>
    public int Pauses { get; private set; }

    public bool Disposed { get; private set; }

    /// <summary>A copy of <paramref name="source"/>: every frame, its type and every state blob. Running, log-dirty off.</summary>
    public static MemoryDomain CopyOf(IDomain source)
    {
        var copy = new MemoryDomain(source.GuestType, source.GuestWidth, source.P2mSize, source.P2mSize) { MemoryBytes = source.MemoryBytes };
        var types = new PageType[1024];
        for (ulong first = 0; first < source.P2mSize; first += 1024)
        {
            var n = (int)Math.Min(1024, source.P2mSize - first);
            source.GetPageTypes(first, types.AsSpan(0, n));
            for (var i = 0; i < n; i++)
            {
                var pfn = first + (ulong)i;
                if (types[i] != PageType.XTab)
                {
                    copy.WritePage(pfn, types[i], types[i].HasData() ? source.GetPage(pfn) : default);
                }
            }
        }

        for (var v = 0; v <= source.MaxVcpuId && source.GuestType == GuestType.Pv; v++)
        {
            foreach (var kind in Enum.GetValues<VcpuContextKind>())
            {
                var context = source.GetVcpuContext(v, kind);
                if (!context.IsEmpty)
                {
                    copy.SetVcpuContext(v, kind, context);
                }
            }
        }

        copy.SetHvmContext(source.HvmContext);
        for (uint p = 0; p < HvmParam.Count; p++)
        {
            copy.SetHvmParam(p, source.GetHvmParam(p));
        }

        copy.SetP2mFrames(source.P2mFrames);
        copy.SetSharedInfo(source.SharedInfo);
        copy.TscInfo = source.TscInfo;
        copy.SetCpuidPolicy(source.CpuidPolicy);
        copy.SetMsrPolicy(source.MsrPolicy);
        copy.SetEmulatorContext(source.EmulatorContext);
        copy.SetEmulatorXenstore(source.EmulatorXenstore);
        return copy;
    }

    /// <summary>The running guest writes into its own memory (marking the frame dirty); refused while paused.</summary>
    public void GuestWrite(ulong pfn, int offset, ReadOnlySpan<byte> data)
    {
        if (IsPaused)
        {
            throw new InvalidOperationException("a paused guest does not write");
        }

        data.CopyTo(Slot(pfn, allocate: false)[offset..]);
        MarkDirty(pfn);
    }

    /// <summary>The first frame at or after <paramref name="pfn"/> that holds data.</summary>
    public ulong NextPopulated(ulong pfn)
    {
        for (var p = pfn; p < _p2mSize; p++)
        {
            if (_slots.ContainsKey(p))
            {
                return p;
            }
        }

        return _slots.Keys.Min();
    }

    public void GrowP2m(ulong size)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxP2mSize);
        _p2mSize = Math.Max(_p2mSize, size);
    }

    public void GetPageTypes(ulong firstPfn, Span<PageType> types)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstPfn + (ulong)types.Length, _p2mSize);
        for (var i = 0; i < types.Length; i++)
        {
            types[i] = _types.TryGetValue(firstPfn + (ulong)i, out var t) ? t : PageType.XTab;
        }
    }

    public ReadOnlySpan<byte> GetPage(ulong pfn)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pfn, _p2mSize);
        return _slots.ContainsKey(pfn) ? Slot(pfn, allocate: false) : Zeros;
    }

    public void ReadPage(ulong pfn, Span<byte> destination) => GetPage(pfn).CopyTo(destination);

    public void WritePage(ulong pfn, PageType type, ReadOnlySpan<byte> data)
    {
        if (type == PageType.XTab)
        {
            return;
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pfn, MaxP2mSize);
        GrowP2m(pfn + 1);
        _types[pfn] = type;
        if (type.HasData())
        {
            data.CopyTo(Slot(pfn, allocate: true));
        }

        MarkDirty(pfn);
    }

    public int MaxVcpuId => GuestType == GuestType.Hvm ? HvmContextBlob.CountVcpus(_hvmContext) - 1 : _vcpus.Count - 1;

    public bool IsVcpuOnline(int vcpu) => vcpu >= 0 && vcpu <= MaxVcpuId
        && (GuestType == GuestType.Hvm || _vcpus[vcpu][(int)VcpuContextKind.Basic].Length > 0);

    public ReadOnlySpan<byte> GetVcpuContext(int vcpu, VcpuContextKind kind) =>
        vcpu >= 0 && vcpu < _vcpus.Count ? _vcpus[vcpu][(int)kind] : [];

    public void SetVcpuContext(int vcpu, VcpuContextKind kind, ReadOnlySpan<byte> context)
    {
        while (_vcpus.Count <= vcpu)
        {
            _vcpus.Add([[], [], [], []]);
        }

        _vcpus[vcpu][(int)kind] = context.ToArray();
    }

    public ReadOnlySpan<byte> HvmContext => _hvmContext;

    public void SetHvmContext(ReadOnlySpan<byte> context) => _hvmContext = context.ToArray();

    public ulong GetHvmParam(uint index) => index < HvmParam.Count ? _hvmParams[index] : 0;

    public void SetHvmParam(uint index, ulong value) => _hvmParams[index] = value;

    public ReadOnlySpan<ulong> P2mFrames => _p2mFrames;

    public void SetP2mFrames(ReadOnlySpan<ulong> frames) => _p2mFrames = frames.ToArray();

    public ReadOnlySpan<byte> SharedInfo => _sharedInfo;

    public void SetSharedInfo(ReadOnlySpan<byte> page) => _sharedInfo = page.ToArray();

    public TscInfo TscInfo { get; set; }

    public ReadOnlySpan<byte> CpuidPolicy => _cpuid;

    public void SetCpuidPolicy(ReadOnlySpan<byte> policy) => _cpuid = policy.ToArray();

    public ReadOnlySpan<byte> MsrPolicy => _msr;

    public void SetMsrPolicy(ReadOnlySpan<byte> policy) => _msr = policy.ToArray();

    public ReadOnlySpan<byte> EmulatorContext => _emulator;

    public void SetEmulatorContext(ReadOnlySpan<byte> context) => _emulator = context.ToArray();

    public IReadOnlyList<XenstoreEntry> EmulatorXenstore => _xenstore;

    public void SetEmulatorXenstore(IReadOnlyList<XenstoreEntry> entries) => _xenstore = [.. entries];

    public void Pause()
    {
        IsPaused = true;
        Pauses++;
    }

    public void Unpause() => IsPaused = false;

    public int ThrottlePercent { get; private set; }

    public bool SetThrottle(int percent)
    {
        ThrottlePercent = percent;
        return true;
    }

    public void EnableLogDirty()
    {
        Array.Clear(_dirty);
        LogDirty = true;
    }

    public void DisableLogDirty() => LogDirty = false;

    public long ReadAndClearDirty(Span<ulong> bitmap)
    {
        if (!LogDirty)
        {
            throw new InvalidOperationException("log-dirty mode is off");
        }

        var words = (int)((_p2mSize + 63) / 64);
        long count = 0;
        for (var w = 0; w < words; w++)
        {
            bitmap[w] = _dirty[w];
            count += BitOperations.PopCount(_dirty[w]);
            _dirty[w] = 0;
        }

        return count;
    }

    public void Dispose() => Disposed = true;

    private void MarkDirty(ulong pfn)
    {
        if (LogDirty)
        {
            _dirty[pfn / 64] |= 1UL << (int)(pfn % 64);
        }
    }

    private Span<byte> Slot(ulong pfn, bool allocate)
    {
        if (!_slots.TryGetValue(pfn, out var slot))
        {
            if (!allocate)
            {
                throw new ArgumentException($"pfn 0x{pfn:X} holds no data", nameof(pfn));
            }

            slot = _usedSlots++;
            _slots[pfn] = slot;
            if ((long)_usedSlots * PageSize > _memory.Length)
            {
                Array.Resize(ref _memory, _memory.Length * 2);
            }
        }

        return _memory.AsSpan(slot * PageSize, PageSize);
    }
}

/// <summary>Makes <see cref="MemoryDomain"/>s for a restore and remembers the last one completed.</summary>
internal sealed class MemoryDomainBackend : IDomainBackend
{
    public string Name => "memory";

    public DomainLimits Limits { get; init; } = new(1UL << 24, 127);

    public MemoryDomain? Completed { get; private set; }

    public IDomain CreateEmpty(GuestType type, int guestWidth, ulong maxP2mSize) => new MemoryDomain(type, guestWidth, maxP2mSize);

    public void Complete(IDomain domain) => Completed = (MemoryDomain)domain;
}
