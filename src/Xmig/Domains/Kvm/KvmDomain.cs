using System.Buffers.Binary;
using System.Diagnostics;
using System.Numerics;

namespace Xmig.Domains.Kvm;

/// <summary>
/// A real guest under KVM behind <see cref="IDomain"/>. The domain directory is a simulated domain's directory
/// (<see cref="DomainDirectory"/>: <c>memory.raw</c>, bitmaps, <c>hvm-context.bin</c>, <c>domain.json</c>) plus
/// <c>kvm.json</c> (<see cref="KvmDescription"/>), so <c>xmig domain digest</c> and <c>cmp</c> work on it unchanged.
/// Guest RAM is <c>memory.raw</c> itself, mapped shared and registered as KVM memory slot 0 at guest-physical 0; the
/// vCPUs' state lives in the directory as Xen's HVM context (<see cref="KvmHvmContext"/>).
/// </summary>
/// <remarks>
/// <para>A domain opens paused, its vCPU threads parked. <see cref="Pause"/> returns only once no vCPU is inside
/// <c>KVM_RUN</c> (<see cref="KvmVcpu"/>). Disposing pauses the guest and writes its vCPU state back to the directory,
/// so a later <see cref="Open"/> resumes it where it stopped.</para>
/// <para>Dirty tracking: KVM's log (<see cref="KvmVm"/>) sees only the guest's writes, so the pages this backend writes
/// itself (<see cref="WritePage"/>) are kept in a bitmap of their own and ORed in, as Firecracker does.</para>
/// <para>Frames: all of RAM is populated (type NOTAB); the p2m cannot grow (the slot has a fixed size).</para>
/// </remarks>
internal sealed unsafe class KvmDomain : IDomain
{
    public const int MaxVcpus = 16;

    private readonly SimulatedDomain _store;
    private readonly KvmVm _vm;
    private readonly NativeBitmap _written;
    private readonly object _control = new();
    private byte[] _hvmContext;
    private bool _hvmContextCurrent;
    private volatile bool _paused = true;
    private volatile bool _logDirty;
    private long _lastReport = -1;
    private long _paceNext;
    private bool _disposed;

    private KvmDomain(SimulatedDomain store, KvmCpuState[] states, bool useClearDirtyLog)
    {
        _store = store;
        _hvmContext = store.HvmContext.ToArray();
        _written = new NativeBitmap(store.P2mSize);
        _vm = new KvmVm(store.Memory.PagePointer(0), store.P2mSize, useClearDirtyLog);
        try
        {
            var mailbox = store.P2mSize > GuestLayout.Mailbox / GuestPage.Size ? store.GetPage(GuestLayout.Mailbox / GuestPage.Size) : default;
            var rate = mailbox.IsEmpty ? 0 : BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.RateMiBps..]);
            ProgramKind = mailbox.IsEmpty ? 0 : (GuestProgramKind)BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.Program..]);
            var batchTicks = rate == 0 ? 0 : (long)(Stopwatch.Frequency * (double)(GuestLayout.PaceBatchPages * GuestPage.Size) / (rate << 20));
            foreach (var state in states)
            {
                var vcpu = _vm.AddVcpu();
                vcpu.SetState(state);
                vcpu.Report = (_, value) => Interlocked.Exchange(ref _lastReport, value);
                if (batchTicks > 0)
                {
                    vcpu.Pace = _ => Pace(batchTicks);
                }

                vcpu.Start();
            }

            var khz = _vm.TscKhz();
            var tsc = store.TscInfo;
            store.TscInfo = tsc with { Khz = khz };
        }
        catch
        {
            _vm.Dispose();
            _written.Dispose();
            throw;
        }
    }

    /// <summary>The domain directory.</summary>
    public string Directory => _store.Directory;

    /// <summary>The program in the guest's mailbox (0 when there is none).</summary>
    public GuestProgramKind ProgramKind { get; }

    /// <summary>True when KVM_CLEAR_DIRTY_LOG is in use.</summary>
    public bool ManualDirtyProtect => _vm.ManualDirtyProtect;

    /// <summary>Sweeps completed, as the guest keeps it in its mailbox.</summary>
    public ulong Sweeps => BinaryPrimitives.ReadUInt64LittleEndian(_store.GetPage(GuestLayout.Mailbox / GuestPage.Size)[GuestLayout.MailboxField.Sweeps..]);

    /// <summary>The last sweep count the guest reported on its port (low 32 bits), or −1 before its first report here.</summary>
    public long LastReportedSweeps => Interlocked.Read(ref _lastReport);

    /// <summary>What stopped a vCPU for good, or null while every vCPU is healthy.</summary>
    public Exception? Fault => _vm.Vcpus.Select(v => v.Fault).FirstOrDefault(f => f != null);

    // ---- Creating and opening ----

    /// <summary>
    /// Creates a KVM domain directory at <paramref name="target"/> (which must not exist, or be empty) running
    /// <paramref name="program"/>, built beside it and renamed into place; returns it opened and paused.
    /// </summary>
    public static KvmDomain Create(string target, GuestProgram program, ulong memoryBytes, int vcpus)
    {
        var problem = Validate(program, memoryBytes, vcpus);
        if (problem != null)
        {
            throw new ArgumentException(problem);
        }

        var working = DomainDirectory.CreateWorkingDirectory(target);
        try
        {
            var pages = memoryBytes / GuestPage.Size;
            using (var store = SimulatedDomain.CreateEmpty(working, GuestType.Hvm, 8, pages))
            {
                store.GrowP2m(pages);
                store.MemoryBytes = memoryBytes;
                var low = new byte[GuestLayout.AreaStart];
                var areaEnd = program.Kind == GuestProgramKind.Counter ? memoryBytes : GuestLayout.AreaStart + program.WorkingSetBytes;
                GuestLayout.WriteSystemArea(low, program.Kind, areaEnd, program.RateMiBps);
                program.AssembleBoot().CopyTo(low.AsSpan((int)GuestLayout.BootCode));
                GuestProgram.AssembleAp().CopyTo(low.AsSpan((int)GuestLayout.ApCode));
                var zero = new byte[GuestPage.Size];
                for (var pfn = 0UL; pfn < pages; pfn++)
                {
                    var data = pfn < GuestLayout.AreaStart / GuestPage.Size ? low.AsSpan((int)(pfn * GuestPage.Size), GuestPage.Size) : zero;
                    store.WritePage(pfn, PageType.NoTab, data);
                }

                var states = Enumerable.Range(0, vcpus).Select(GuestLayout.InitialState).ToArray();
                store.SetHvmContext(KvmHvmContext.Build(states, 0, 0));
                store.Save();
            }

            KvmDescription.Write(working, program.ToString());
            DomainDirectory.Commit(working, target);
        }
        catch
        {
            DomainDirectory.Discard(working);
            throw;
        }

        return Open(target);
    }

    /// <summary>Null when the parameters make a guest, else what is wrong.</summary>
    public static string? Validate(GuestProgram program, ulong memoryBytes, int vcpus)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (memoryBytes % GuestPage.Size != 0 || memoryBytes < GuestLayout.MinMemory || memoryBytes > GuestLayout.MaxMemory)
        {
            return $"memory {ByteSize.Format(memoryBytes)} is not a multiple of 4 KiB in {ByteSize.Format(GuestLayout.MinMemory)} … {ByteSize.Format(GuestLayout.MaxMemory)}";
        }

        if (vcpus < 1 || vcpus > MaxVcpus)
        {
            return $"vcpus {vcpus} is not in 1 … {MaxVcpus}";
        }

        if (program.Kind == GuestProgramKind.Dirty && GuestLayout.AreaStart + program.WorkingSetBytes > memoryBytes)
        {
            return $"working set {ByteSize.Format(program.WorkingSetBytes)} does not fit above 1 MiB in {ByteSize.Format(memoryBytes)}";
        }

        return null;
    }

    /// <summary>True when <paramref name="directory"/> holds a KVM domain (its <c>kvm.json</c>).</summary>
    public static bool IsKvmDirectory(string directory) => File.Exists(Path.Combine(directory, KvmDescription.FileName));

    /// <summary>
    /// Opens a KVM domain directory: checks it as a simulated domain directory, reads the vCPU state from its HVM
    /// context, builds the VM and its vCPUs. The guest is paused until <see cref="Unpause"/>.
    /// </summary>
    /// <param name="directory">The domain directory.</param>
    /// <param name="useClearDirtyLog">Use <c>KVM_CLEAR_DIRTY_LOG</c> where the kernel offers it (the default).</param>
    public static KvmDomain Open(string directory, bool useClearDirtyLog = true)
    {
        KvmDescription.Read(directory);
        var store = SimulatedDomain.Open(directory, writable: true);
        try
        {
            if (store.GuestType != GuestType.Hvm)
            {
                throw new InvalidDomainException(directory, "a KVM domain is an HVM guest");
            }

            KvmCpuState[] states;
            try
            {
                states = KvmHvmContext.Parse(store.HvmContext);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDomainException(directory, $"{DomainDirectory.HvmContextFile}: {e.Message}", e);
            }

            return new KvmDomain(store, states, useClearDirtyLog);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Turns a domain directory restored from a KVM guest's stream into a KVM domain directory (adds <c>kvm.json</c>
    /// after checking that its HVM context holds vCPU state KVM can load).
    /// </summary>
    public static void Adopt(string directory)
    {
        string program;
        using (var store = SimulatedDomain.Open(directory))
        {
            try
            {
                KvmHvmContext.Parse(store.HvmContext);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDomainException(directory, $"not a KVM guest's state: {e.Message}", e);
            }

            program = DescribeProgram(store);
        }

        KvmDescription.Write(directory, program);
    }

    /// <summary>The program named by the guest's mailbox (<c>counter</c>, <c>dirty:WSS:RATE</c>), or <c>unknown</c>.</summary>
    internal static string DescribeProgram(IDomain domain)
    {
        var pfn = GuestLayout.Mailbox / GuestPage.Size;
        if (pfn >= domain.P2mSize)
        {
            return "unknown";
        }

        var mailbox = domain.GetPage(pfn);
        if (BinaryPrimitives.ReadUInt64LittleEndian(mailbox) != GuestLayout.MailboxMagic)
        {
            return "unknown";
        }

        var kind = (GuestProgramKind)BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.Program..]);
        var start = BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.AreaStart..]);
        var end = BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.AreaEnd..]);
        var rate = BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.RateMiBps..]);
        return kind switch
        {
            GuestProgramKind.Counter => "counter",
            GuestProgramKind.Dirty when end > start => new GuestProgram(kind, end - start, rate).ToString(),
            _ => "unknown",
        };
    }

    /// <summary>Pauses the guest (if running) and writes its vCPU state and the domain's state to the directory.</summary>
    public void Persist()
    {
        lock (_control)
        {
            var wasRunning = !_paused;
            Pause();
            _store.SetHvmContext(HvmContext);
            _store.Save();
            if (wasRunning)
            {
                Unpause();
            }
        }
    }

    // ---- IDomain: memory ----

    public GuestType GuestType => GuestType.Hvm;

    public int GuestWidth => 8;

    public ulong P2mSize => _store.P2mSize;

    /// <summary>A KVM guest's RAM is its one memory slot, fixed at creation.</summary>
    public ulong MemoryBytes => _store.P2mSize * GuestPage.Size;

    public ulong MaxP2mSize => _store.P2mSize;

    public void GrowP2m(ulong size)
    {
        if (size > P2mSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a KVM guest's memory is fixed at {P2mSize} frames");
        }
    }

    public void GetPageTypes(ulong firstPfn, Span<PageType> types) => _store.GetPageTypes(firstPfn, types);

    public ReadOnlySpan<byte> GetPage(ulong pfn) => _store.GetPage(pfn);

    public void ReadPage(ulong pfn, Span<byte> destination) => _store.ReadPage(pfn, destination);

    public void WritePage(ulong pfn, PageType type, ReadOnlySpan<byte> data)
    {
        GrowP2m(pfn + 1);
        _store.WritePage(pfn, type, data);
        if (_logDirty)
        {
            _written.SetAtomic(pfn);
        }
    }

    // ---- IDomain: vCPUs (HVM: state lives in the HVM context) ----

    public int MaxVcpuId => _vm.Vcpus.Count - 1;

    public bool IsVcpuOnline(int vcpu) => vcpu >= 0 && vcpu < _vm.Vcpus.Count;

    public ReadOnlySpan<byte> GetVcpuContext(int vcpu, VcpuContextKind kind) => [];

    public void SetVcpuContext(int vcpu, VcpuContextKind kind, ReadOnlySpan<byte> context) =>
        throw new InvalidOperationException("HVM vCPU state lives in the HVM context");

    /// <summary>
    /// The vCPUs' state as Xen's HVM context. While paused it is read from KVM (once per pause); while running it is
    /// the state of the last pause.
    /// </summary>
    public ReadOnlySpan<byte> HvmContext
    {
        get
        {
            lock (_control)
            {
                if (_paused && !_hvmContextCurrent)
                {
                    var states = _vm.Vcpus.Select(v => v.GetState()).ToArray();
                    _hvmContext = KvmHvmContext.Build(states, _store.TscInfo.Khz, CpuidSignature());
                    _hvmContextCurrent = true;
                }

                return _hvmContext;
            }
        }
    }

    /// <summary>Loads vCPU state from an HVM context (the domain must be paused; the vCPU count must match).</summary>
    public void SetHvmContext(ReadOnlySpan<byte> context)
    {
        lock (_control)
        {
            if (!_paused)
            {
                throw new InvalidOperationException("set the HVM context of a paused domain");
            }

            KvmCpuState[] states;
            try
            {
                states = KvmHvmContext.Parse(context);
            }
            catch (InvalidDataException e)
            {
                throw new ArgumentException(e.Message, nameof(context), e);
            }

            if (states.Length != _vm.Vcpus.Count)
            {
                throw new ArgumentException($"HVM context describes {states.Length} vCPUs, the domain has {_vm.Vcpus.Count}", nameof(context));
            }

            for (var i = 0; i < states.Length; i++)
            {
                _vm.Vcpus[i].SetState(states[i]);
            }

            _hvmContext = context.ToArray();
            _hvmContextCurrent = false;
            _store.SetHvmContext(context);
        }
    }

    public ulong GetHvmParam(uint index) => _store.GetHvmParam(index);

    public void SetHvmParam(uint index, ulong value) => _store.SetHvmParam(index, value);

    // ---- IDomain: PV state (none) ----

    public ReadOnlySpan<ulong> P2mFrames => [];

    public void SetP2mFrames(ReadOnlySpan<ulong> frames) => throw new InvalidOperationException("an HVM guest has no p2m frames");

    public ReadOnlySpan<byte> SharedInfo => [];

    public void SetSharedInfo(ReadOnlySpan<byte> page) => throw new InvalidOperationException("an HVM guest has no shared-info record");

    // ---- IDomain: both ----

    public TscInfo TscInfo
    {
        get => _store.TscInfo;
        set => _store.TscInfo = value;
    }

    public ReadOnlySpan<byte> CpuidPolicy => _store.CpuidPolicy;

    public void SetCpuidPolicy(ReadOnlySpan<byte> policy) => _store.SetCpuidPolicy(policy);

    public ReadOnlySpan<byte> MsrPolicy => _store.MsrPolicy;

    public void SetMsrPolicy(ReadOnlySpan<byte> policy) => _store.SetMsrPolicy(policy);

    public ReadOnlySpan<byte> EmulatorContext => _store.EmulatorContext;

    public void SetEmulatorContext(ReadOnlySpan<byte> context) => _store.SetEmulatorContext(context);

    public IReadOnlyList<XenstoreEntry> EmulatorXenstore => _store.EmulatorXenstore;

    public void SetEmulatorXenstore(IReadOnlyList<XenstoreEntry> entries) => _store.SetEmulatorXenstore(entries);

    // ---- IDomain: control ----

    public bool IsPaused => _paused;

    /// <summary>Returns once no vCPU is inside <c>KVM_RUN</c>.</summary>
    public void Pause()
    {
        lock (_control)
        {
            foreach (var vcpu in _vm.Vcpus)
            {
                vcpu.Pause();
            }

            _paused = true;
        }
    }

    public void Unpause()
    {
        lock (_control)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _hvmContextCurrent = false;
            _paused = false;
            foreach (var vcpu in _vm.Vcpus)
            {
                vcpu.Unpause();
            }
        }
    }

    /// <summary>Not throttled: a KVM guest would need its vCPUs put to sleep for a share of each timeslice, which this backend does not do yet.</summary>
    public int ThrottlePercent => 0;

    public bool SetThrottle(int percent) => percent == 0;

    public bool LogDirty => _logDirty;

    public void EnableLogDirty()
    {
        _written.ClearAll();
        _vm.SetLogDirty(true);
        _logDirty = true;
    }

    public void DisableLogDirty()
    {
        _logDirty = false;
        _vm.SetLogDirty(false);
    }

    /// <summary>KVM's dirty log for the slot, ORed with the frames this backend wrote; both cleared.</summary>
    public long ReadAndClearDirty(Span<ulong> bitmap)
    {
        if (!_logDirty)
        {
            throw new InvalidOperationException("log-dirty mode is off");
        }

        var words = (int)NativeBitmap.WordsFor(P2mSize);
        if (bitmap.Length < words)
        {
            throw new ArgumentException($"dirty bitmap needs {words} words, got {bitmap.Length}", nameof(bitmap));
        }

        var target = bitmap[..words];
        _vm.TakeDirtyLog(target);
        var own = _written.Words;
        long count = 0;
        for (var i = 0; i < words; i++)
        {
            target[i] |= Interlocked.Exchange(ref own[i], 0);
            count += BitOperations.PopCount(target[i]);
        }

        return count;
    }

    public void Dispose()
    {
        lock (_control)
        {
            if (_disposed)
            {
                return;
            }

            Pause();
            _disposed = true;
            try
            {
                if (Fault == null)
                {
                    _store.SetHvmContext(HvmContext);
                    _store.Save();
                }
            }
            finally
            {
                _vm.Dispose();
                _store.Dispose();
                _written.Dispose();
            }
        }
    }

    private TimeSpan Pace(long batchTicks)
    {
        // A token bucket of one batch per batchTicks; after a pause it restarts rather than catching up in a burst.
        var now = Stopwatch.GetTimestamp();
        var next = Interlocked.Read(ref _paceNext);
        if (next < now - (Stopwatch.Frequency / 20))
        {
            next = now;
        }

        next += batchTicks;
        Interlocked.Exchange(ref _paceNext, next);
        return next > now ? Stopwatch.GetElapsedTime(now, next) : TimeSpan.Zero;
    }

    private uint CpuidSignature()
    {
        foreach (var leaf in _vm.SupportedCpuid)
        {
            if (leaf.Function == 1)
            {
                return leaf.Eax;
            }
        }

        return 0;
    }
}
