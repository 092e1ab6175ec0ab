using System.Runtime.InteropServices;

namespace Xmig.Domains.Kvm;

/// <summary>
/// One vCPU: its file descriptor, its mmap'd <c>struct kvm_run</c>, and the thread that calls <c>KVM_RUN</c>.
/// </summary>
/// <remarks>
/// <para><b>Pause that really stops.</b> <see cref="Pause"/> sets <c>kvm_run.immediate_exit</c> and sends the thread
/// <see cref="KickSignal"/> with <c>tgkill</c> until the thread reports itself parked. A thread already inside
/// <c>KVM_RUN</c> leaves it with EINTR (the signal has a handler and no <c>SA_RESTART</c>); a thread about to enter
/// it returns at once because of <c>immediate_exit</c>. After an I/O exit the thread enters <c>KVM_RUN</c> once more
/// (with <c>immediate_exit</c> set) before parking, so that the kernel completes the instruction and the registers
/// read afterwards are the guest's consistent state. <see cref="Pause"/> returns only when the thread is parked,
/// that is outside <c>KVM_RUN</c>: no guest write is in flight.</para>
/// <para><b>The signal.</b> A real-time signal, <c>SIGRTMAX − 3</c>: .NET's runtime uses <c>SIGRTMIN</c> (thread
/// activation) and the classic signals, not the top of the real-time range. Its handler is libc's own
/// <c>getpid</c>: a native function that is async-signal-safe, ignores its argument and has no effect, so no managed
/// code runs in signal context. (An ignored signal would not interrupt <c>KVM_RUN</c>; the default action would kill
/// the process.)</para>
/// <para>A vCPU that executes HLT (an AP of the test programs) stays halted: it counts as parked and is not run again.</para>
/// </remarks>
internal sealed unsafe class KvmVcpu : IDisposable
{
    private const ushort ReportPort = GuestLayout.ReportPort;
    private static readonly object SignalLock = new();
    private static int _signal;

    private readonly KvmVm _vm;
    private readonly object _gate = new();
    private byte* _run;
    private Thread? _thread;
    private int _tid;
    private bool _pauseRequested = true;
    private bool _parked;
    private bool _halted;
    private bool _stop;
    private bool _needsCompletion;
    private Exception? _fault;

    public KvmVcpu(KvmVm vm, int id, int fd)
    {
        _vm = vm;
        Id = id;
        Fd = fd;
        _run = (byte*)KvmNative.Mmap(null, vm.VcpuMmapSize, KvmNative.ProtRead | KvmNative.ProtWrite, KvmNative.MapShared, fd, 0);
        if (_run == (byte*)-1)
        {
            _run = null;
            throw new KvmException("mmap kvm_run", Marshal.GetLastPInvokeError());
        }

        SetCpuid(vm.SupportedCpuid);
    }

    public int Id { get; }

    public int Fd { get; }

    /// <summary>The signal that kicks a vCPU out of <c>KVM_RUN</c>.</summary>
    public static int KickSignal
    {
        get
        {
            InstallSignalHandler();
            return _signal;
        }
    }

    /// <summary>Called on the vCPU thread for each OUT to <see cref="GuestLayout.ReportPort"/> with the value written.</summary>
    public Action<KvmVcpu, uint>? Report { get; set; }

    /// <summary>
    /// Called on the vCPU thread for each OUT to <see cref="GuestLayout.PacePort"/>; returns how long to hold the vCPU
    /// (a pause cuts the wait short).
    /// </summary>
    public Func<uint, TimeSpan>? Pace { get; set; }

    /// <summary>Number of I/O exits seen.</summary>
    public long IoExits { get; private set; }

    /// <summary>What stopped this vCPU for good (an unexpected exit or a failed ioctl), or null.</summary>
    public Exception? Fault
    {
        get
        {
            lock (_gate)
            {
                return _fault;
            }
        }
    }

    public bool Halted
    {
        get
        {
            lock (_gate)
            {
                return _halted;
            }
        }
    }

    /// <summary>Starts the vCPU thread, parked (paused).</summary>
    public void Start()
    {
        InstallSignalHandler();
        _thread = new Thread(Loop) { IsBackground = true, Name = $"kvm-vcpu{Id}" };
        _thread.Start();
        lock (_gate)
        {
            while (!_parked)
            {
                Monitor.Wait(_gate);
            }
        }
    }

    /// <summary>Returns once the thread is outside <c>KVM_RUN</c> and will not enter it until <see cref="Unpause"/>.</summary>
    public void Pause()
    {
        lock (_gate)
        {
            _pauseRequested = true;
            Volatile.Write(ref _run[KvmNative.RunImmediateExit], 1);
            Monitor.PulseAll(_gate); // cuts a pacing wait short
            if (_thread == null)
            {
                return;
            }
        }

        var pid = KvmNative.Getpid();
        while (true)
        {
            int tid;
            lock (_gate)
            {
                if (_parked)
                {
                    return;
                }

                tid = _tid;
            }

            KvmNative.Tgkill(pid, tid, _signal);
            lock (_gate)
            {
                if (_parked)
                {
                    return;
                }

                Monitor.Wait(_gate, 1);
            }
        }
    }

    public void Unpause()
    {
        lock (_gate)
        {
            Volatile.Write(ref _run[KvmNative.RunImmediateExit], 0);
            _pauseRequested = false;
            Monitor.PulseAll(_gate);
        }
    }

    // ---- State (only while paused) ----

    public KvmCpuState GetState()
    {
        var state = new KvmCpuState();
        fixed (KvmNative.Regs* regs = &state.Regs)
        {
            KvmNative.Check(Fd, KvmNative.KvmGetRegs, regs, "KVM_GET_REGS");
        }

        fixed (KvmNative.Sregs* sregs = &state.Sregs)
        {
            KvmNative.Check(Fd, KvmNative.KvmGetSregs, sregs, "KVM_GET_SREGS");
        }

        fixed (KvmNative.Fpu* fpu = &state.Fpu)
        {
            KvmNative.Check(Fd, KvmNative.KvmGetFpu, fpu, "KVM_GET_FPU");
        }

        var n = KvmCpuState.Msrs.Length;
        var buffer = stackalloc byte[8 + (n * sizeof(KvmNative.MsrEntry))];
        var entries = (KvmNative.MsrEntry*)(buffer + 8);
        *(ulong*)buffer = (ulong)n;
        for (var i = 0; i < n; i++)
        {
            entries[i] = new KvmNative.MsrEntry { Index = KvmCpuState.Msrs[i] };
        }

        var read = KvmNative.Check(Fd, KvmNative.KvmGetMsrs, buffer, "KVM_GET_MSRS");
        if (read < n - 1)
        {
            throw new KvmException($"KVM_GET_MSRS: MSR 0x{KvmCpuState.Msrs[read]:X} could not be read");
        }

        for (var i = 0; i < read; i++)
        {
            state.MsrValues[i] = entries[i].Data;
        }

        return state;
    }

    public void SetState(KvmCpuState state)
    {
        // Sregs first: they set the mode (EFER, CR0, CR4) the general registers are interpreted in.
        var sregs = state.Sregs;
        KvmNative.Check(Fd, KvmNative.KvmSetSregs, &sregs, "KVM_SET_SREGS");
        var regs = state.Regs;
        KvmNative.Check(Fd, KvmNative.KvmSetRegs, &regs, "KVM_SET_REGS");
        var fpu = state.Fpu;
        KvmNative.Check(Fd, KvmNative.KvmSetFpu, &fpu, "KVM_SET_FPU");
        var n = KvmCpuState.Msrs.Length;
        var buffer = stackalloc byte[8 + (n * sizeof(KvmNative.MsrEntry))];
        var entries = (KvmNative.MsrEntry*)(buffer + 8);
        *(ulong*)buffer = (ulong)n;
        for (var i = 0; i < n; i++)
        {
            entries[i] = new KvmNative.MsrEntry { Index = KvmCpuState.Msrs[i], Data = state.MsrValues[i] };
        }

        var written = KvmNative.Check(Fd, KvmNative.KvmSetMsrs, buffer, "KVM_SET_MSRS");
        if (written < n - 1 || (written == n - 1 && state.Msr(KvmCpuState.MsrTscAux) != 0))
        {
            throw new KvmException($"KVM_SET_MSRS: MSR 0x{KvmCpuState.Msrs[written]:X} was refused");
        }
    }

    public void Dispose()
    {
        if (_thread != null)
        {
            Pause();
            lock (_gate)
            {
                _stop = true;
                Monitor.PulseAll(_gate);
            }

            _thread.Join();
            _thread = null;
        }

        if (_run != null)
        {
            KvmNative.Munmap(_run, _vm.VcpuMmapSize);
            _run = null;
        }

        KvmNative.Close(Fd);
    }

    private void SetCpuid(KvmNative.CpuidEntry2[] entries)
    {
        var size = 8 + (entries.Length * sizeof(KvmNative.CpuidEntry2));
        var buffer = (byte*)NativeMemory.AllocZeroed((nuint)size);
        try
        {
            *(uint*)buffer = (uint)entries.Length;
            entries.AsSpan().CopyTo(new Span<KvmNative.CpuidEntry2>(buffer + 8, entries.Length));
            KvmNative.Check(Fd, KvmNative.KvmSetCpuid2, buffer, "KVM_SET_CPUID2");
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    private void Loop()
    {
        var mask = default(KvmNative.SigSet);
        mask.Add(_signal);
        if (KvmNative.PthreadSigmask(1 /* SIG_UNBLOCK */, &mask, null) != 0)
        {
            SetFault(new KvmException($"vCPU {Id}: pthread_sigmask failed"));
        }
        lock (_gate)
        {
            _tid = KvmNative.Gettid();
        }

        while (true)
        {
            lock (_gate)
            {
                if (_stop)
                {
                    break;
                }

                if ((_pauseRequested && !_needsCompletion) || _halted || _fault != null)
                {
                    _parked = true;
                    Monitor.PulseAll(_gate);
                    while (!_stop && (_pauseRequested || _halted || _fault != null))
                    {
                        Monitor.Wait(_gate);
                    }

                    _parked = false;
                    continue;
                }
            }

            var r = KvmNative.Ioctl(Fd, KvmNative.KvmRun, 0);
            if (r < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is KvmNative.Eintr or KvmNative.Eagain)
                {
                    _needsCompletion = false;
                    continue;
                }

                SetFault(new KvmException($"vCPU {Id}: KVM_RUN", errno));
                continue;
            }

            _needsCompletion = false;
            var reason = *(uint*)(_run + KvmNative.RunExitReason);
            switch (reason)
            {
                case KvmNative.ExitIo:
                    HandleIo();
                    break;
                case KvmNative.ExitHlt:
                    lock (_gate)
                    {
                        _halted = true;
                    }

                    break;
                default:
                    SetFault(new KvmException($"vCPU {Id}: unexpected exit reason {reason} at rip 0x{GetRip():X}"));
                    break;
            }
        }

        lock (_gate)
        {
            _parked = true;
            Monitor.PulseAll(_gate);
        }
    }

    private void HandleIo()
    {
        // kvm_run.io: u8 direction, u8 size, u16 port, u32 count, u64 data_offset
        var io = _run + KvmNative.RunExit;
        var direction = io[0];
        var size = io[1];
        var port = *(ushort*)(io + 2);
        var count = *(uint*)(io + 4);
        var data = _run + *(ulong*)(io + 8);
        IoExits++;
        _needsCompletion = true;
        if (direction == 0)
        {
            new Span<byte>(data, (int)(size * count)).Clear(); // IN reads zeros
            return;
        }

        if (port == ReportPort && size == 4)
        {
            Report?.Invoke(this, *(uint*)data);
        }
        else if (port == GuestLayout.PacePort && size == 4 && Pace != null)
        {
            var delay = Pace(*(uint*)data);
            if (delay >= TimeSpan.FromMilliseconds(1))
            {
                lock (_gate)
                {
                    if (!_pauseRequested && !_stop)
                    {
                        Monitor.Wait(_gate, delay);
                    }
                }
            }
        }
    }

    private ulong GetRip()
    {
        KvmNative.Regs regs;
        return KvmNative.Ioctl(Fd, KvmNative.KvmGetRegs, &regs) == 0 ? regs.Rip : 0;
    }

    private void SetFault(Exception e)
    {
        lock (_gate)
        {
            _fault ??= e;
        }
    }

    private static void InstallSignalHandler()
    {
        lock (SignalLock)
        {
            if (_signal != 0)
            {
                return;
            }

            var signal = KvmNative.SigRtMax() - 3;
            var libc = NativeLibrary.Load("libc.so.6");
            var action = new KvmNative.SigactionStruct { Handler = NativeLibrary.GetExport(libc, "getpid"), Flags = 0 };
            if (KvmNative.Sigaction(signal, &action, null) != 0)
            {
                throw new KvmException("sigaction", Marshal.GetLastPInvokeError());
            }

            _signal = signal;
        }
    }
}
