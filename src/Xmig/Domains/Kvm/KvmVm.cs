using System.Runtime.InteropServices;

namespace Xmig.Domains.Kvm;

/// <summary>
/// One KVM virtual machine: the VM file descriptor, one memory slot covering guest-physical 0 … <c>pages × 4096</c>
/// (slot 0, backed by the caller's shared mapping of the domain's memory file), and its vCPUs.
/// </summary>
/// <remarks>
/// <para>Dirty logging maps to the slot's <c>KVM_MEM_LOG_DIRTY_PAGES</c> flag: turning log-dirty on or off re-registers
/// the slot with the flag set or clear. Slot 0 starts at guest-physical 0, so bit <c>n</c> of KVM's per-slot bitmap is
/// pfn <c>n</c>, the layout <see cref="IDomain.ReadAndClearDirty"/> asks for.</para>
/// <para>Where the kernel offers <c>KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2</c>, it is enabled: <c>KVM_GET_DIRTY_LOG</c> then
/// only reads the bitmap, and <c>KVM_CLEAR_DIRTY_LOG</c> clears exactly the bits read and write-protects those pages
/// again, so a write between the two is never lost (the page is read after the clear). Without it,
/// <c>KVM_GET_DIRTY_LOG</c> reads and clears atomically.</para>
/// </remarks>
internal sealed unsafe class KvmVm : IDisposable
{
    private const int Slot = 0;

    private readonly int _kvm;
    private readonly List<KvmVcpu> _vcpus = [];
    private int _vm = -1;
    private bool _logDirty;

    /// <param name="memory">The guest RAM mapping (page aligned, <paramref name="pages"/> × 4096 octets).</param>
    /// <param name="pages">Frames in slot 0.</param>
    /// <param name="useClearDirtyLog">Use <c>KVM_CLEAR_DIRTY_LOG</c> when the kernel offers it (false: always the atomic
    /// <c>KVM_GET_DIRTY_LOG</c>).</param>
    public KvmVm(byte* memory, ulong pages, bool useClearDirtyLog = true)
    {
        Pages = pages;
        Memory = memory;
        _kvm = KvmNative.Open("/dev/kvm", KvmNative.ORdWr | KvmNative.OCloExec);
        if (_kvm < 0)
        {
            throw new KvmException("open /dev/kvm", Marshal.GetLastPInvokeError());
        }

        try
        {
            var version = KvmNative.Check(_kvm, KvmNative.KvmGetApiVersion, 0, "KVM_GET_API_VERSION");
            if (version != KvmNative.KvmApiVersion)
            {
                throw new KvmException($"/dev/kvm: API version {version}, expected {KvmNative.KvmApiVersion}");
            }

            VcpuMmapSize = (nuint)KvmNative.Check(_kvm, KvmNative.KvmGetVcpuMmapSize, 0, "KVM_GET_VCPU_MMAP_SIZE");
            _vm = KvmNative.Check(_kvm, KvmNative.KvmCreateVm, 0, "KVM_CREATE_VM");

            // Intel without unrestricted guest needs a TSS area for real mode; harmless elsewhere. Just below 4 GiB.
            KvmNative.Check(_vm, KvmNative.KvmSetTssAddr, 0xFFFB_D000, "KVM_SET_TSS_ADDR");
            var manual = KvmNative.Ioctl(_vm, KvmNative.KvmCheckExtension, KvmNative.KvmCapManualDirtyLogProtect2);
            if (useClearDirtyLog && manual > 0 && (manual & KvmNative.KvmDirtyLogManualProtectEnable) != 0)
            {
                var cap = new KvmNative.EnableCap { Cap = KvmNative.KvmCapManualDirtyLogProtect2, Arg0 = KvmNative.KvmDirtyLogManualProtectEnable };
                ManualDirtyProtect = KvmNative.Ioctl(_vm, KvmNative.KvmEnableCap, &cap) == 0;
            }

            SetRegion(logDirty: false);
            SupportedCpuid = ReadSupportedCpuid();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public ulong Pages { get; }

    public byte* Memory { get; }

    public nuint VcpuMmapSize { get; }

    /// <summary>True when <c>KVM_CLEAR_DIRTY_LOG</c> is in use (<c>KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2</c>).</summary>
    public bool ManualDirtyProtect { get; }

    public KvmNative.CpuidEntry2[] SupportedCpuid { get; }

    public IReadOnlyList<KvmVcpu> Vcpus => _vcpus;

    public bool LogDirty => _logDirty;

    public KvmVcpu AddVcpu()
    {
        var fd = KvmNative.Check(_vm, KvmNative.KvmCreateVcpu, (nuint)_vcpus.Count, "KVM_CREATE_VCPU");
        var vcpu = new KvmVcpu(this, _vcpus.Count, fd);
        _vcpus.Add(vcpu);
        return vcpu;
    }

    /// <summary>Sets or clears <c>KVM_MEM_LOG_DIRTY_PAGES</c> on the slot; setting it starts an empty log.</summary>
    public void SetLogDirty(bool on)
    {
        if (on && _logDirty)
        {
            SetRegion(logDirty: false); // restart: dropping the flag discards the old log
        }

        SetRegion(on);
        _logDirty = on;
    }

    /// <summary>
    /// Takes KVM's dirty bitmap for the slot into <paramref name="bitmap"/> (⌈pages/64⌉ words, overwritten) and clears
    /// it. Requires log-dirty on.
    /// </summary>
    public void TakeDirtyLog(Span<ulong> bitmap)
    {
        var words = (int)((Pages + 63) / 64);
        if (bitmap.Length < words)
        {
            throw new ArgumentException($"dirty bitmap needs {words} words", nameof(bitmap));
        }

        fixed (ulong* words0 = bitmap)
        {
            var log = new KvmNative.DirtyLog { Slot = Slot, Bitmap = words0 };
            KvmNative.Check(_vm, KvmNative.KvmGetDirtyLog, &log, "KVM_GET_DIRTY_LOG");
            if (ManualDirtyProtect)
            {
                var clear = new KvmNative.ClearDirtyLog { Slot = Slot, FirstPage = 0, NumPages = checked((uint)Pages), Bitmap = words0 };
                KvmNative.Check(_vm, KvmNative.KvmClearDirtyLog, &clear, "KVM_CLEAR_DIRTY_LOG");
            }
        }
    }

    public uint TscKhz()
    {
        if (_vcpus.Count == 0)
        {
            return 0;
        }

        var khz = KvmNative.Ioctl(_vcpus[0].Fd, KvmNative.KvmGetTscKhz, 0);
        return khz > 0 ? (uint)khz : 0;
    }

    public void Dispose()
    {
        foreach (var vcpu in _vcpus)
        {
            vcpu.Dispose();
        }

        _vcpus.Clear();
        if (_vm >= 0)
        {
            KvmNative.Close(_vm);
            _vm = -1;
        }

        if (_kvm >= 0)
        {
            KvmNative.Close(_kvm);
        }
    }

    private void SetRegion(bool logDirty)
    {
        var region = new KvmNative.UserspaceMemoryRegion
        {
            Slot = Slot,
            Flags = logDirty ? KvmNative.KvmMemLogDirtyPages : 0,
            GuestPhysAddr = 0,
            MemorySize = Pages * GuestPage.Size,
            UserspaceAddr = (ulong)Memory,
        };
        KvmNative.Check(_vm, KvmNative.KvmSetUserMemoryRegion, &region, "KVM_SET_USER_MEMORY_REGION");
    }

    private KvmNative.CpuidEntry2[] ReadSupportedCpuid()
    {
        const int Max = 256;
        var size = 8 + (Max * sizeof(KvmNative.CpuidEntry2));
        var buffer = (byte*)NativeMemory.AllocZeroed((nuint)size);
        try
        {
            *(uint*)buffer = Max;
            KvmNative.Check(_kvm, KvmNative.KvmGetSupportedCpuid, buffer, "KVM_GET_SUPPORTED_CPUID");
            var n = (int)*(uint*)buffer;
            return new ReadOnlySpan<KvmNative.CpuidEntry2>(buffer + 8, n).ToArray();
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }
}
