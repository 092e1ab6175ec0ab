using System.Runtime.InteropServices;

namespace Xmig.Domains;

/// <summary>
/// A guest without a hypervisor: memory is a memory-mapped sparse file in a domain directory
/// (<see cref="DomainDirectory"/>), state blobs are held in memory and persisted beside it. A dirtying workload
/// (<see cref="DirtyingWorkload"/>) can run on its own thread while the domain is not paused; its writes go
/// through <see cref="GuestWrite"/>, the same path that marks log-dirty bits.
/// </summary>
/// <remarks>
/// Per-frame metadata is native memory sized to <see cref="MaxP2mSize"/>: a populated bitmap (frames holding page
/// data, zero pages included), a dirty bitmap, and one type octet per frame. Nothing is allocated per page.
/// </remarks>
internal sealed unsafe partial class SimulatedDomain : IDomain
{
    /// <summary>Largest p2m a simulated domain supports: 2^28 frames (1 TiB of guest-physical space; the legacy pfn limit).</summary>
    public const ulong P2mLimit = 1UL << 28;

    /// <summary>Largest vCPU id supported (Xen's <c>XC_SR_MAX_VCPUS</c> − 1).</summary>
    public const int MaxVcpuLimit = 4095;


    private readonly object _runLock = new();
    private readonly NativeBitmap _populated;
    private readonly NativeBitmap _dirty;
    private readonly ulong[] _hvmParams = new ulong[HvmParam.Count];
    private readonly List<byte[][]> _vcpus = [];
    private GuestMemory _memory;
    private byte* _types;
    private ulong _p2mSize;
    private ulong _growLimit;
    private byte[] _hvmContext = [];
    private ulong[] _p2mFrames = [];
    private byte[] _sharedInfo = [];
    private byte[] _cpuidPolicy = [];
    private byte[] _msrPolicy = [];
    private byte[] _emulatorContext = [];
    private XenstoreEntry[] _xenstore = [];
    private int _hvmVcpus;
    private volatile bool _paused;
    private volatile bool _logDirty;
    private DirtyingWorkload? _workload;
    private volatile int _throttle;

    private SimulatedDomain(string directory, GuestType type, int guestWidth, ulong p2mSize, ulong maxP2mSize, GuestMemory memory)
    {
        Directory = directory;
        GuestType = type;
        GuestWidth = guestWidth;
        _p2mSize = p2mSize;
        _growLimit = maxP2mSize;
        _memory = memory;
        _populated = new NativeBitmap(maxP2mSize);
        _dirty = new NativeBitmap(maxP2mSize);
        _types = (byte*)NativeMemory.AllocZeroed((nuint)maxP2mSize);
    }

    /// <summary>The domain directory this domain lives in.</summary>
    public string Directory { get; private set; }

    public GuestType GuestType { get; }

    public int GuestWidth { get; }

    public ulong P2mSize => _p2mSize;

    public ulong MaxP2mSize => _growLimit;

    ulong IDomain.MemoryBytes => MemoryBytes > 0 ? MemoryBytes : _p2mSize * GuestPage.Size;

    /// <summary>Seed the content was generated from (informational; 0 for restored domains).</summary>
    public ulong Seed { get; internal set; }

    /// <summary>Guest RAM requested at creation, in octets (informational).</summary>
    public ulong MemoryBytes { get; internal set; }

    /// <summary>Number of frames holding page data.</summary>
    public ulong PopulatedPages => _populated.PopCount();

    /// <summary>Whether memory writes are allowed (false for a domain opened read-only).</summary>
    public bool Writable => _memory.Writable;

    /// <summary>The running workload, if any.</summary>
    public DirtyingWorkload? Workload => _workload;

    internal NativeBitmap Populated => _populated;

    internal GuestMemory Memory => _memory;

    internal object RunLock => _runLock;

    // ---- Memory ----

    public void GrowP2m(ulong size)
    {
        if (size > MaxP2mSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"p2m size beyond this domain's limit of {MaxP2mSize} frames");
        }

        if (size > _p2mSize)
        {
            _p2mSize = size;
        }
    }

    public void GetPageTypes(ulong firstPfn, Span<PageType> types)
    {
        if (firstPfn > _p2mSize || (ulong)types.Length > _p2mSize - firstPfn)
        {
            throw new ArgumentOutOfRangeException(nameof(firstPfn), firstPfn, $"range of {types.Length} frames beyond p2m size {_p2mSize}");
        }

        for (var i = 0; i < types.Length; i++)
        {
            var pfn = firstPfn + (ulong)i;
            types[i] = TypeOf(pfn);
        }
    }

    public ReadOnlySpan<byte> GetPage(ulong pfn)
    {
        CheckPfn(pfn);
        return _memory.Page(pfn);
    }

    public void ReadPage(ulong pfn, Span<byte> destination)
    {
        CheckPfn(pfn);
        _memory.Page(pfn).CopyTo(destination);
    }

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

        if (type.HasData() ? data.Length != GuestPage.Size : !data.IsEmpty)
        {
            throw new ArgumentException($"page type {type} needs {(type.HasData() ? GuestPage.Size : 0)} octets, got {data.Length}", nameof(data));
        }

        if (pfn >= MaxP2mSize)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"pfn beyond this domain's limit of {MaxP2mSize} frames");
        }

        if (!_memory.Writable)
        {
            throw new InvalidOperationException("the domain is open read-only");
        }

        if (type.HasData())
        {
            StorePages(pfn, type, data);
            return;
        }

        // XALLOC: allocated, no data yet; BROKEN: the frame is gone. Neither holds page data.
        GrowP2m(pfn + 1);
        if (_populated.Get(pfn))
        {
            _memory.Page(pfn).Clear();
            _populated.Clear(pfn);
        }

        _types[pfn] = (byte)type;
        if (_logDirty)
        {
            _dirty.SetAtomic(pfn);
        }
    }

    /// <summary>
    /// <see cref="IDomainMemory.WritePages"/>: the same effect as <see cref="WritePage"/> per frame, but each run of
    /// frames with data goes to the file in one write (a restore's pages arrive in runs of up to 1024).
    /// </summary>
    public void WritePages(ulong firstPfn, PageType type, ReadOnlySpan<byte> data)
    {
        var count = (ulong)(data.Length >> GuestPage.Shift);
        if (!type.IsDefined() || !type.HasData() || (data.Length & (GuestPage.Size - 1)) != 0 || count == 0 || firstPfn + count - 1 >= MaxP2mSize || !_memory.Writable)
        {
            // Every refusal is WritePage's own, with its message, at the frame it concerns.
            for (ulong i = 0; i < Math.Max(count, 1); i++)
            {
                WritePage(firstPfn + i, type, data.Length == 0 ? data : data.Slice((int)(i << GuestPage.Shift), Math.Min(GuestPage.Size, data.Length - (int)(i << GuestPage.Shift))));
            }

            return;
        }

        StorePages(firstPfn, type, data);
    }

    /// <summary>
    /// Stores checked frames of a data-carrying type from <paramref name="firstPfn"/> on: each run of non-zero frames in
    /// one write. Zeros only clear a frame that is not already zero: a fresh frame is a hole in the sparse file, and
    /// writing zeros into it would only allocate disk.
    /// </summary>
    private void StorePages(ulong firstPfn, PageType type, ReadOnlySpan<byte> data)
    {
        var count = (ulong)(data.Length >> GuestPage.Shift);
        GrowP2m(firstPfn + count);
        var run = -1;
        for (var i = 0; i < (int)count; i++)
        {
            var pfn = firstPfn + (ulong)i;
            var page = data.Slice(i << GuestPage.Shift, GuestPage.Size);
            if (page.ContainsAnyExcept((byte)0))
            {
                run = run < 0 ? i : run;
            }
            else
            {
                Flush(data, firstPfn, ref run, i);
                if (_populated.Get(pfn) && _memory.Page(pfn).ContainsAnyExcept((byte)0))
                {
                    _memory.Page(pfn).Clear();
                }
            }

            _populated.Set(pfn);
            _types[pfn] = (byte)type;
            if (_logDirty)
            {
                _dirty.SetAtomic(pfn);
            }
        }

        Flush(data, firstPfn, ref run, (int)count);

        void Flush(ReadOnlySpan<byte> pages, ulong first, ref int from, int to)
        {
            if (from >= 0)
            {
                _memory.Write(first + (ulong)from, pages[(from << GuestPage.Shift)..(to << GuestPage.Shift)]);
                from = -1;
            }
        }
    }

    /// <summary>
    /// A guest write into its own memory: the only path by which a running guest changes a page. Marks the frame
    /// dirty (lock-free) when log-dirty mode is on. The frame must hold page data.
    /// </summary>
    public void GuestWrite(ulong pfn, int offset, ReadOnlySpan<byte> data)
    {
        CheckPfn(pfn);
        data.CopyTo(_memory.Page(pfn)[offset..]);
        if (_logDirty)
        {
            _dirty.SetAtomic(pfn);
        }
    }

    /// <summary>True when frame <paramref name="pfn"/> holds page data.</summary>
    public bool IsPopulated(ulong pfn) => pfn < _p2mSize && _populated.Get(pfn);

    // ---- vCPUs ----

    public int MaxVcpuId => GuestType == GuestType.Hvm ? _hvmVcpus - 1 : _vcpus.Count - 1;

    public bool IsVcpuOnline(int vcpu)
    {
        if (vcpu < 0)
        {
            return false;
        }

        return GuestType == GuestType.Hvm
            ? vcpu < _hvmVcpus
            : vcpu < _vcpus.Count && _vcpus[vcpu][(int)VcpuContextKind.Basic].Length > 0;
    }

    public ReadOnlySpan<byte> GetVcpuContext(int vcpu, VcpuContextKind kind)
    {
        CheckKind(kind);
        return vcpu >= 0 && vcpu < _vcpus.Count ? _vcpus[vcpu][(int)kind] : [];
    }

    public void SetVcpuContext(int vcpu, VcpuContextKind kind, ReadOnlySpan<byte> context)
    {
        CheckKind(kind);
        ArgumentOutOfRangeException.ThrowIfNegative(vcpu);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(vcpu, MaxVcpuLimit);
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

    // ---- HVM ----

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

    // ---- PV ----

    public ReadOnlySpan<ulong> P2mFrames => _p2mFrames;

    public void SetP2mFrames(ReadOnlySpan<ulong> frames) => _p2mFrames = frames.ToArray();

    public ReadOnlySpan<byte> SharedInfo => _sharedInfo;

    public void SetSharedInfo(ReadOnlySpan<byte> page)
    {
        if (!page.IsEmpty && page.Length != GuestPage.Size)
        {
            throw new ArgumentException($"shared info is {GuestPage.Size} octets, got {page.Length}", nameof(page));
        }

        _sharedInfo = page.ToArray();
    }

    // ---- Both ----

    public TscInfo TscInfo { get; set; }

    public ReadOnlySpan<byte> CpuidPolicy => _cpuidPolicy;

    public void SetCpuidPolicy(ReadOnlySpan<byte> policy) => _cpuidPolicy = policy.ToArray();

    public ReadOnlySpan<byte> MsrPolicy => _msrPolicy;

    public void SetMsrPolicy(ReadOnlySpan<byte> policy) => _msrPolicy = policy.ToArray();

    public ReadOnlySpan<byte> EmulatorContext => _emulatorContext;

    public void SetEmulatorContext(ReadOnlySpan<byte> context) => _emulatorContext = context.ToArray();

    public IReadOnlyList<XenstoreEntry> EmulatorXenstore => _xenstore;

    public void SetEmulatorXenstore(IReadOnlyList<XenstoreEntry> entries) => _xenstore = [.. entries];

    // ---- Control ----

    public bool IsPaused => _paused;

    public void Pause()
    {
        _paused = true;

        // The workload writes only while holding the run lock and re-checks the flag under it, so once we
        // have held the lock no guest write is in flight and none can start.
        lock (_runLock)
        {
        }
    }

    public void Unpause()
    {
        _paused = false;
        _workload?.Wake();
    }

    /// <summary>The simulated guest honours a throttle by dirtying at (100 − percent) % of its workload's rate.</summary>
    public int ThrottlePercent => _throttle;

    public bool SetThrottle(int percent)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(percent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 99);
        _throttle = percent;
        return true;
    }

    public bool LogDirty => _logDirty;

    public void EnableLogDirty()
    {
        _dirty.ClearAll();
        _logDirty = true;
    }

    public void DisableLogDirty() => _logDirty = false;

    public long ReadAndClearDirty(Span<ulong> bitmap)
    {
        if (!_logDirty)
        {
            throw new InvalidOperationException("log-dirty mode is off");
        }

        var words = NativeBitmap.WordsFor(_p2mSize);
        if ((ulong)bitmap.Length < words)
        {
            throw new ArgumentException($"dirty bitmap needs {words} words, got {bitmap.Length}", nameof(bitmap));
        }

        return _dirty.ReadAndClear(bitmap[..(int)words]);
    }

    // ---- Workload ----

    /// <summary>Starts a dirtying workload on its own thread (replacing any running one). It writes only while the domain is not paused.</summary>
    public void StartWorkload(WorkloadSpec spec, ulong seed)
    {
        StopWorkload();
        if (spec.Kind == WorkloadKind.Idle)
        {
            return;
        }

        if (!_memory.Writable)
        {
            throw new InvalidOperationException("the domain is open read-only");
        }

        _workload = new DirtyingWorkload(this, spec, seed);
        _workload.Start();
    }

    public void StopWorkload()
    {
        _workload?.Dispose();
        _workload = null;
    }

    public void Dispose()
    {
        StopWorkload();
        _memory.Dispose();
        _populated.Dispose();
        _dirty.Dispose();
        if (_types != null)
        {
            NativeMemory.Free(_types);
            _types = null;
        }
    }

    internal Span<byte> TypesSpan(ulong count) => new(_types, checked((int)count));

    internal PageType TypeOf(ulong pfn)
    {
        if (_populated.Get(pfn))
        {
            return (PageType)_types[pfn];
        }

        var stored = (PageType)_types[pfn];
        return stored is PageType.XAlloc or PageType.Broken ? stored : PageType.XTab;
    }

    internal void SetPopulated(ulong pfn, PageType type)
    {
        _populated.Set(pfn);
        _types[pfn] = (byte)type;
    }

    internal bool IsPausedForWorkload => _paused;

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
