using System.Runtime.InteropServices;

namespace Xmig.Domains.Kvm;

/// <summary>
/// The libc calls and the <c>/dev/kvm</c> ioctl ABI (Linux <c>include/uapi/linux/kvm.h</c>, x86-64) that the KVM
/// backend uses. No native helper library: every call is a P/Invoke into libc, every structure a blittable struct
/// whose size is checked against the ioctl number that encodes it.
/// </summary>
internal static unsafe partial class KvmNative
{
    private const string Libc = "libc";

    public const int ORdWr = 2;
    public const int OCloExec = 0x80000;
    public const int ProtRead = 1;
    public const int ProtWrite = 2;
    public const int MapShared = 1;
    public const int Eintr = 4;
    public const int Eagain = 11;

    // ---- ioctl numbers: _IOC(dir, 0xAE, nr, size) = dir << 30 | size << 16 | 0xAE << 8 | nr ----
    public const nuint KvmGetApiVersion = 0xAE00;
    public const nuint KvmCreateVm = 0xAE01;
    public const nuint KvmCheckExtension = 0xAE03;
    public const nuint KvmGetVcpuMmapSize = 0xAE04;
    public const nuint KvmGetSupportedCpuid = 0xC008AE05;
    public const nuint KvmCreateVcpu = 0xAE41;
    public const nuint KvmGetDirtyLog = 0x4010AE42;
    public const nuint KvmSetUserMemoryRegion = 0x4020AE46;
    public const nuint KvmSetTssAddr = 0xAE47;
    public const nuint KvmRun = 0xAE80;
    public const nuint KvmGetRegs = 0x8090AE81;
    public const nuint KvmSetRegs = 0x4090AE82;
    public const nuint KvmGetSregs = 0x8138AE83;
    public const nuint KvmSetSregs = 0x4138AE84;
    public const nuint KvmGetMsrs = 0xC008AE88;
    public const nuint KvmSetMsrs = 0x4008AE89;
    public const nuint KvmGetFpu = 0x81A0AE8C;
    public const nuint KvmSetFpu = 0x41A0AE8D;
    public const nuint KvmSetCpuid2 = 0x4008AE90;
    public const nuint KvmEnableCap = 0x4068AEA3;
    public const nuint KvmGetTscKhz = 0xAEA3;
    public const nuint KvmClearDirtyLog = 0xC018AEC0;

    public const int KvmApiVersion = 12;
    public const uint KvmCapManualDirtyLogProtect2 = 168;
    public const uint KvmDirtyLogManualProtectEnable = 1;
    public const uint KvmMemLogDirtyPages = 1;

    // ---- kvm_run ----
    public const int RunImmediateExit = 1;
    public const int RunExitReason = 8;
    public const int RunExit = 32;
    public const uint ExitIo = 2;
    public const uint ExitHlt = 5;
    public const uint ExitMmio = 6;
    public const uint ExitShutdown = 8;
    public const uint ExitFailEntry = 9;
    public const uint ExitInternalError = 17;

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nuint argument);

    [LibraryImport(Libc, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport(Libc, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    [LibraryImport(Libc, EntryPoint = "sigaction", SetLastError = true)]
    public static partial int Sigaction(int signal, SigactionStruct* action, SigactionStruct* old);

    [LibraryImport(Libc, EntryPoint = "pthread_sigmask")]
    public static partial int PthreadSigmask(int how, SigSet* set, SigSet* old);

    [LibraryImport(Libc, EntryPoint = "tgkill", SetLastError = true)]
    public static partial int Tgkill(int tgid, int tid, int signal);

    [LibraryImport(Libc, EntryPoint = "gettid")]
    public static partial int Gettid();

    [LibraryImport(Libc, EntryPoint = "getpid")]
    public static partial int Getpid();

    [LibraryImport(Libc, EntryPoint = "__libc_current_sigrtmax")]
    public static partial int SigRtMax();

    /// <summary>Runs an ioctl, retrying on EINTR unless <paramref name="interruptible"/>; throws <see cref="KvmException"/> on failure.</summary>
    public static int Check(int fd, nuint request, void* argument, string what)
    {
        while (true)
        {
            var r = Ioctl(fd, request, argument);
            if (r >= 0)
            {
                return r;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Eintr)
            {
                throw new KvmException(what, errno);
            }
        }
    }

    public static int Check(int fd, nuint request, nuint argument, string what)
    {
        while (true)
        {
            var r = Ioctl(fd, request, argument);
            if (r >= 0)
            {
                return r;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Eintr)
            {
                throw new KvmException(what, errno);
            }
        }
    }

    /// <summary>glibc's <c>struct sigaction</c> on x86-64: handler, 1024-bit mask, flags, restorer.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SigactionStruct
    {
        public nint Handler;
        public SigSet Mask;
        public int Flags;
        public nint Restorer;
    }

    /// <summary>glibc's <c>sigset_t</c>: 1024 bits.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    public struct SigSet
    {
        private fixed ulong _words[16];

        public void Add(int signal) => _words[(signal - 1) / 64] |= 1UL << ((signal - 1) % 64);
    }

    /// <summary><c>struct kvm_userspace_memory_region</c> (32 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UserspaceMemoryRegion
    {
        public uint Slot;
        public uint Flags;
        public ulong GuestPhysAddr;
        public ulong MemorySize;
        public ulong UserspaceAddr;
    }

    /// <summary><c>struct kvm_dirty_log</c> (16 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct DirtyLog
    {
        public uint Slot;
        public uint Padding;
        public void* Bitmap;
    }

    /// <summary><c>struct kvm_clear_dirty_log</c> (24 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ClearDirtyLog
    {
        public uint Slot;
        public uint NumPages;
        public ulong FirstPage;
        public void* Bitmap;
    }

    /// <summary><c>struct kvm_enable_cap</c> (104 octets).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 104)]
    public struct EnableCap
    {
        public uint Cap;
        public uint Flags;
        public ulong Arg0;
    }

    /// <summary><c>struct kvm_regs</c> (144 octets), in the kernel's order.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Regs
    {
        public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
        public ulong R8, R9, R10, R11, R12, R13, R14, R15;
        public ulong Rip, Rflags;
    }

    /// <summary><c>struct kvm_segment</c> (24 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Segment
    {
        public ulong Base;
        public uint Limit;
        public ushort Selector;
        public byte Type;
        public byte Present, Dpl, Db, S, L, G, Avl;
        public byte Unusable;
        public byte Padding;
    }

    /// <summary><c>struct kvm_dtable</c> (16 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Dtable
    {
        public ulong Base;
        public ushort Limit;
        public ushort Pad0, Pad1, Pad2;
    }

    /// <summary><c>struct kvm_sregs</c> (312 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Sregs
    {
        public Segment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
        public Dtable Gdt, Idt;
        public ulong Cr0, Cr2, Cr3, Cr4, Cr8;
        public ulong Efer;
        public ulong ApicBase;
        public fixed ulong InterruptBitmap[4];
    }

    /// <summary><c>struct kvm_fpu</c> (416 octets): the FXSAVE image, rearranged.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Fpu
    {
        public fixed byte Fpr[128];
        public ushort Fcw;
        public ushort Fsw;
        public byte Ftwx;
        public byte Pad1;
        public ushort LastOpcode;
        public ulong LastIp;
        public ulong LastDp;
        public fixed byte Xmm[256];
        public uint Mxcsr;
        public uint Pad2;
    }

    /// <summary>One <c>struct kvm_msr_entry</c> (16 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsrEntry
    {
        public uint Index;
        public uint Reserved;
        public ulong Data;
    }

    /// <summary>One <c>struct kvm_cpuid_entry2</c> (40 octets).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CpuidEntry2
    {
        public uint Function;
        public uint Index;
        public uint Flags;
        public uint Eax, Ebx, Ecx, Edx;
        public uint Padding0, Padding1, Padding2;
    }

    static KvmNative()
    {
        System.Diagnostics.Debug.Assert(sizeof(Regs) == 144);
        System.Diagnostics.Debug.Assert(sizeof(Sregs) == 312);
        System.Diagnostics.Debug.Assert(sizeof(Fpu) == 416);
    }
}

/// <summary>A KVM or libc call failed; the message names the call and the errno.</summary>
internal sealed class KvmException : IOException
{
    public KvmException(string what, int errno)
        : base($"{what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Errno = errno;
    }

    public KvmException(string message)
        : base(message)
    {
    }

    public int Errno { get; }
}
