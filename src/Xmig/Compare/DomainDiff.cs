using System.Globalization;
using System.Runtime.InteropServices;
using Xmig.Domains;

namespace Xmig.Compare;

/// <summary>One state record (or header field) that differs between two domains, and how.</summary>
internal readonly record struct StateDifference(string Record, string Detail);

/// <summary>What <see cref="DomainDiff.Compare"/> found.</summary>
internal sealed record DomainDifference
{
    /// <summary>Frames holding page data in both domains.</summary>
    public ulong PagesCompared { get; init; }

    /// <summary>Frames holding data in both whose contents differ.</summary>
    public ulong PagesDiffering { get; init; }

    /// <summary>Frames holding data in both whose page types differ (contents equal or not).</summary>
    public ulong TypesDiffering { get; init; }

    public ulong OnlyInA { get; init; }

    public ulong OnlyInB { get; init; }

    /// <summary>The first frames that differ in any of those ways, ascending.</summary>
    public IReadOnlyList<ulong> FirstPfns { get; init; } = [];

    public IReadOnlyList<StateDifference> State { get; init; } = [];

    public bool Equal => PagesDiffering == 0 && TypesDiffering == 0 && OnlyInA == 0 && OnlyInB == 0 && State.Count == 0;
}

/// <summary>
/// Compares two simulated domains page by page, reading their memory files in windows (a hole in a memory file is a zero
/// page and is not read, as <see cref="MemoryDigest"/> skips it), and every state record the streams
/// carry: vCPU contexts, the HVM context, HVM parameters, TSC info, CPUID and MSR policies, the emulator's context and
/// xenstore data, shared info and the p2m frame list. Nothing is allocated per page.
/// </summary>
internal static class DomainDiff
{
    private static readonly byte[] ZeroPage = new byte[GuestPage.Size];

    public static DomainDifference Compare(SimulatedDomain a, SimulatedDomain b, int firstPfns = 10)
    {
        var first = new List<ulong>();
        ulong compared = 0, differing = 0, types = 0, onlyA = 0, onlyB = 0;
        using var sideA = new Side(a);
        using var sideB = new Side(b);
        var pfn = Math.Min(sideA.Next(0), sideB.Next(0));
        while (pfn != ulong.MaxValue)
        {
            var inA = sideA.Has(pfn);
            var inB = sideB.Has(pfn);
            var differs = true;
            if (inA && inB)
            {
                compared++;
                var content = !sideA.Content(pfn).SequenceEqual(sideB.Content(pfn));
                var type = a.TypeOf(pfn) != b.TypeOf(pfn);
                differing += content ? 1UL : 0;
                types += type ? 1UL : 0;
                differs = content || type;
            }
            else if (inA)
            {
                onlyA++;
            }
            else
            {
                onlyB++;
            }

            if (differs && first.Count < firstPfns)
            {
                first.Add(pfn);
            }

            pfn = Math.Min(sideA.Next(pfn + 1), sideB.Next(pfn + 1));
        }

        return new DomainDifference
        {
            PagesCompared = compared,
            PagesDiffering = differing,
            TypesDiffering = types,
            OnlyInA = onlyA,
            OnlyInB = onlyB,
            FirstPfns = first,
            State = CompareState(a, b),
        };
    }

    /// <summary>The state records and header fields that differ, in a fixed order.</summary>
    public static List<StateDifference> CompareState(IDomain a, IDomain b)
    {
        var list = new List<StateDifference>();
        void Field<T>(string record, T x, T y)
        {
            if (!EqualityComparer<T>.Default.Equals(x, y))
            {
                list.Add(new StateDifference(record, Invariant($"{x} vs {y}")));
            }
        }

        void Blob(string record, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y)
        {
            if (!x.SequenceEqual(y))
            {
                var at = x.CommonPrefixLength(y);
                list.Add(new StateDifference(record, Invariant($"{Size(x)} vs {Size(y)}, first difference at octet 0x{at:X}")));
            }
        }

        Field("guest type", a.GuestType, b.GuestType);
        Field("guest width", a.GuestWidth * 8, b.GuestWidth * 8);
        Field("p2m size", Hex(a.P2mSize), Hex(b.P2mSize));
        Field("vCPUs online", Online(a), Online(b));
        var maxVcpu = Math.Max(a.MaxVcpuId, b.MaxVcpuId);
        if (a.GuestType == GuestType.Pv || b.GuestType == GuestType.Pv)
        {
            for (var vcpu = 0; vcpu <= maxVcpu; vcpu++)
            {
                for (var kind = VcpuContextKind.Basic; kind <= VcpuContextKind.Msrs; kind++)
                {
                    Blob(Invariant($"vCPU {vcpu} {DomainDirectory.KindName(kind)} context"), a.GetVcpuContext(vcpu, kind), b.GetVcpuContext(vcpu, kind));
                }
            }
        }

        Blob("HVM context", a.HvmContext, b.HvmContext);
        for (var index = 0u; index < HvmParam.Count; index++)
        {
            var (x, y) = (a.GetHvmParam(index), b.GetHvmParam(index));
            if (x != y)
            {
                var name = HvmParam.Name(index) is { } known ? $" ({known})" : "";
                list.Add(new StateDifference(Invariant($"HVM param {index}{name}"), Invariant($"0x{x:X} vs 0x{y:X}")));
            }
        }

        Field("TSC info", a.TscInfo, b.TscInfo);
        Blob("CPUID policy", a.CpuidPolicy, b.CpuidPolicy);
        Blob("MSR policy", a.MsrPolicy, b.MsrPolicy);
        Blob("emulator context", a.EmulatorContext, b.EmulatorContext);
        if (!a.EmulatorXenstore.SequenceEqual(b.EmulatorXenstore))
        {
            list.Add(new StateDifference("emulator xenstore", Invariant($"{a.EmulatorXenstore.Count} vs {b.EmulatorXenstore.Count} entries")));
        }

        Blob("shared info", a.SharedInfo, b.SharedInfo);
        Blob("P2M frames", MemoryMarshal.AsBytes(a.P2mFrames), MemoryMarshal.AsBytes(b.P2mFrames));
        return list;
    }

    private static string Online(IDomain d) =>
        string.Join(',', Enumerable.Range(0, d.MaxVcpuId + 1).Where(d.IsVcpuOnline));

    private static string Size(ReadOnlySpan<byte> blob) => blob.IsEmpty ? "none" : Invariant($"{blob.Length} octets");

    private static string Hex(ulong value) => Invariant($"0x{value:X}");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// One domain's populated bitmap, the memory file's current run of data, and a window of its pages read with pread
    /// (not through the mapping, whose pages would stay resident: comparing two 32 GiB guests would show 64 GiB of RSS).
    /// </summary>
    private sealed class Side : IDisposable
    {
        private const int WindowPages = 256;

        private readonly SimulatedDomain _domain;
        private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _file;
        private readonly byte[] _window = System.Buffers.ArrayPool<byte>.Shared.Rent(WindowPages * GuestPage.Size);
        private ulong _windowStart;
        private ulong _windowEnd;
        private (ulong Start, ulong End) _data;

        public Side(SimulatedDomain domain)
        {
            _domain = domain;
            _file = File.OpenHandle(Path.Combine(domain.Directory, DomainDirectory.MemoryFile), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }

        /// <summary>The next frame at or after <paramref name="pfn"/> holding data, or <see cref="ulong.MaxValue"/>.</summary>
        public ulong Next(ulong pfn)
        {
            var next = _domain.Populated.NextSet(pfn);
            return next < _domain.P2mSize ? next : ulong.MaxValue;
        }

        public bool Has(ulong pfn) => _domain.IsPopulated(pfn);

        /// <summary>Frame <paramref name="pfn"/>'s content; frames are asked for in ascending order.</summary>
        public ReadOnlySpan<byte> Content(ulong pfn)
        {
            if (pfn >= _data.End)
            {
                _data = _domain.Memory.NextDataRun(pfn);
            }

            if (pfn < _data.Start)
            {
                return ZeroPage;
            }

            if (pfn < _windowStart || pfn >= _windowEnd)
            {
                var pages = (int)Math.Min(WindowPages, _domain.P2mSize - pfn);
                var span = _window.AsSpan(0, pages * GuestPage.Size);
                var done = 0;
                while (done < span.Length)
                {
                    var n = RandomAccess.Read(_file, span[done..], (long)(pfn << GuestPage.Shift) + done);
                    if (n == 0)
                    {
                        span[done..].Clear();
                        break;
                    }

                    done += n;
                }

                (_windowStart, _windowEnd) = (pfn, pfn + (ulong)pages);
            }

            return _window.AsSpan((int)(pfn - _windowStart) * GuestPage.Size, GuestPage.Size);
        }

        public void Dispose()
        {
            _file.Dispose();
            System.Buffers.ArrayPool<byte>.Shared.Return(_window);
        }
    }
}
