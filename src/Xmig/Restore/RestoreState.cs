using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;

namespace Xmig.Restore;

/// <summary>Creates the domain a restore fills: guest type, PV guest width, and its p2m bound in frames.</summary>
internal delegate IDomain DomainFactory(GuestType type, int guestWidth, ulong maxP2mSize);

/// <summary>
/// The domain being restored, whatever the stream kind: memory goes straight into the domain, state blobs are
/// stashed (a later copy replaces an earlier one) and applied to the domain only at completion, as Xen's
/// receiver does (v2-stream.md §3.5.5, §3.5.8, §6.5; legacy-stream.md §9.5).
/// </summary>
internal sealed class RestoreState
{
    private readonly DomainFactory _factory;
    private readonly RestoreOptions _options;
    private readonly Dictionary<(int Vcpu, VcpuContextKind Kind), byte[]> _vcpus = [];
    private readonly SortedDictionary<uint, ulong> _hvmParams = [];
    private byte[] _sharedInfo = [];
    private byte[] _hvmContext = [];
    private byte[] _cpuid = [];
    private byte[] _msr = [];
    private byte[] _emulatorContext = [];
    private ulong[] _p2mFrames = [];
    private List<XenstoreEntry> _xenstore = [];
    private TscInfo? _tsc;

    public RestoreState(DomainFactory factory, RestoreOptions options)
    {
        _factory = factory;
        _options = options;
    }

    /// <summary>The domain, once created.</summary>
    public IDomain? Domain { get; private set; }

    public GuestType? GuestType { get; private set; }

    /// <summary>PV guest width in octets once known (8 for HVM).</summary>
    public int GuestWidth { get; private set; }

    /// <summary>PV: the p2m size the stream declared (0 until declared). HVM: 0.</summary>
    public ulong DeclaredP2mSize { get; private set; }

    /// <summary>True after a VERIFY record: page data is compared with guest memory, never written.</summary>
    public bool VerifyMode { get; set; }

    public long VerifyMismatches { get; private set; }

    /// <summary>Things Xen's receiver would object to that do not stop a simulated restore.</summary>
    public List<string> Warnings { get; } = [];

    /// <summary>The p2m bound in frames: the declared size for PV, the memory bound otherwise.</summary>
    public ulong PfnLimit => DeclaredP2mSize > 0 ? DeclaredP2mSize : _options.MaxP2mSize;

    /// <summary>Fixes the guest type (from a Domain Header or the legacy options).</summary>
    public void SetGuestType(GuestType type)
    {
        GuestType = type;
        if (type == Xmig.GuestType.Hvm)
        {
            GuestWidth = 8;
            EnsureDomain();
        }
    }

    /// <summary>Fixes the PV guest width (X86_PV_INFO, legacy <c>vcpu</c> block) and creates the domain.</summary>
    public void SetGuestWidth(int width)
    {
        GuestWidth = width;
        EnsureDomain();
    }

    /// <summary>
    /// Declares the PV p2m size (X86_PV_P2M_FRAMES end + 1, legacy p2m_size). Returns null when accepted, else why not.
    /// </summary>
    public string? DeclareP2mSize(ulong size)
    {
        if (size == 0 || size > _options.MaxP2mSize)
        {
            return string.Create(CultureInfo.InvariantCulture, $"p2m size {size} frames is beyond the restore bound of {_options.MaxP2mSize} frames ({ByteSize.Format(_options.MaxGuestPhysicalBytes)})");
        }

        DeclaredP2mSize = Math.Max(DeclaredP2mSize, size);
        Domain?.GrowP2m(DeclaredP2mSize);
        return null;
    }

    /// <summary>
    /// Checks a pfn against the bound; returns null when it may be written, else why not (for the caller's record
    /// and offset).
    /// </summary>
    public string? CheckPfn(ulong pfn)
    {
        if (GuestType == Xmig.GuestType.Pv && DeclaredP2mSize == 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"pfn 0x{pfn:X} before the p2m size was declared (no X86_PV_P2M_FRAMES yet)");
        }

        var limit = PfnLimit;
        if (pfn >= limit)
        {
            return DeclaredP2mSize > 0
                ? string.Create(CultureInfo.InvariantCulture, $"pfn 0x{pfn:X} is beyond the declared p2m size 0x{limit:X}")
                : string.Create(CultureInfo.InvariantCulture, $"pfn 0x{pfn:X} is beyond the restore bound of 0x{limit:X} frames ({ByteSize.Format(_options.MaxGuestPhysicalBytes)}; see --max-memory)");
        }

        return null;
    }

    /// <summary>Writes one page (or, in verify mode, compares it). The pfn must have passed <see cref="CheckPfn"/>.</summary>
    public void WritePage(ulong pfn, PageType type, ReadOnlySpan<byte> data)
    {
        var domain = Domain ?? throw new InvalidOperationException("no domain yet");
        if (VerifyMode)
        {
            if (type.HasData() && pfn < domain.P2mSize && !domain.GetPage(pfn).SequenceEqual(data))
            {
                VerifyMismatches++;
            }

            return;
        }

        domain.WritePage(pfn, type, type.HasData() ? data : default);
    }

    /// <summary>
    /// <see cref="WritePage"/> for a run of consecutive frames of one data-carrying type (each pfn already checked).
    /// </summary>
    public void WritePages(ulong firstPfn, PageType type, ReadOnlySpan<byte> data)
    {
        var domain = Domain ?? throw new InvalidOperationException("no domain yet");
        if (VerifyMode)
        {
            for (var i = 0; i < data.Length >> GuestPage.Shift; i++)
            {
                WritePage(firstPfn + (ulong)i, type, data.Slice(i << GuestPage.Shift, GuestPage.Size));
            }

            return;
        }

        domain.WritePages(firstPfn, type, data);
    }

    // ---- Stashed state ----

    public void SetVcpuContext(int vcpu, VcpuContextKind kind, ReadOnlySpan<byte> context)
    {
        if (context.IsEmpty)
        {
            return; // v2-stream.md §1: empty contexts are tolerated and ignored
        }

        _vcpus[(vcpu, kind)] = context.ToArray();
    }

    public void SetSharedInfo(ReadOnlySpan<byte> page) => _sharedInfo = page.ToArray();

    public void SetTscInfo(TscInfo tsc) => _tsc = tsc;

    public void SetHvmContext(ReadOnlySpan<byte> context) => _hvmContext = context.ToArray();

    /// <summary>Sets an HVM parameter (PAE_ENABLED, obsolete, is dropped as Xen does).</summary>
    public void SetHvmParam(uint index, ulong value)
    {
        if (index != HvmParam.PaeEnabled)
        {
            _hvmParams[index] = value;
        }
    }

    public void SetCpuidPolicy(ReadOnlySpan<byte> policy) => _cpuid = policy.ToArray();

    public void SetMsrPolicy(ReadOnlySpan<byte> policy) => _msr = policy.ToArray();

    public void SetP2mFrames(ReadOnlySpan<ulong> frames) => _p2mFrames = frames.ToArray();

    public void SetEmulatorContext(ReadOnlySpan<byte> context) => _emulatorContext = context.ToArray();

    public void SetEmulatorXenstore(List<XenstoreEntry> entries) => _xenstore = entries;

    /// <summary>
    /// Stream completion (v2-stream.md §7 row 32; legacy-stream.md §9.5): checks what the guest cannot run without and
    /// applies the stashed state to the domain. Returns null on success, else what is missing.
    /// </summary>
    public string? Complete()
    {
        var domain = Domain;
        if (domain == null || GuestType == null)
        {
            return "the stream carries no domain (no memory and no state)";
        }

        if (domain.P2mSize == 0)
        {
            return "the stream carries no memory";
        }

        if (_tsc is { } tsc)
        {
            domain.TscInfo = tsc;
        }

        domain.SetCpuidPolicy(_cpuid);
        domain.SetMsrPolicy(_msr);
        if (GuestType == Xmig.GuestType.Hvm)
        {
            if (_hvmContext.Length == 0)
            {
                return "no HVM_CONTEXT: the HVM guest's vCPU state is missing";
            }

            domain.SetHvmContext(_hvmContext);
            foreach (var (index, value) in _hvmParams)
            {
                domain.SetHvmParam(index, value);
            }

            domain.SetEmulatorContext(_emulatorContext);
            domain.SetEmulatorXenstore(_xenstore);
            return null;
        }

        if (!_vcpus.ContainsKey((0, VcpuContextKind.Basic)))
        {
            return "vCPU 0 has no BASIC context";
        }

        if (_sharedInfo.Length == 0)
        {
            return "no SHARED_INFO";
        }

        // Xen writes its new p2m into these frames at completion, so it requires NOTAB frames below the p2m size.
        // A simulated domain keeps the stream's pages as they are, so a bad frame is reported, not fatal.
        Span<PageType> type = stackalloc PageType[1];
        foreach (var frame in _p2mFrames)
        {
            if (frame >= domain.P2mSize)
            {
                Warnings.Add(string.Create(CultureInfo.InvariantCulture, $"p2m frame pfn 0x{frame:X} is beyond p2m size 0x{domain.P2mSize:X} (Xen would refuse to complete)"));
                continue;
            }

            domain.GetPageTypes(frame, type);
            if (type[0] != PageType.NoTab)
            {
                Warnings.Add(string.Create(CultureInfo.InvariantCulture, $"p2m frame pfn 0x{frame:X} is {type[0]}, not a NOTAB page (Xen would refuse to complete)"));
            }
        }

        domain.SetP2mFrames(_p2mFrames);
        domain.SetSharedInfo(_sharedInfo);
        foreach (var ((vcpu, kind), context) in _vcpus.OrderBy(e => e.Key.Vcpu).ThenBy(e => e.Key.Kind))
        {
            domain.SetVcpuContext(vcpu, kind, context);
        }

        return null;
    }

    private void EnsureDomain()
    {
        if (Domain == null && GuestType is { } type)
        {
            Domain = _factory(type, GuestWidth, _options.MaxP2mSize);
            if (DeclaredP2mSize > 0)
            {
                Domain.GrowP2m(DeclaredP2mSize);
            }
        }
    }
}
