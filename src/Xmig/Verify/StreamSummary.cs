using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;

namespace Xmig.Verify;

/// <summary>Totals over a whole stream (what <c>xmig inspect</c> prints at the end).</summary>
public sealed class StreamSummary
{
    private readonly Dictionary<string, long> _unknown = [];

    public StreamKind Kind { get; internal set; }

    /// <summary>Guest type from the (last) libxc Domain Header.</summary>
    public GuestType Guest { get; internal set; }

    /// <summary>libxc Image Header version.</summary>
    public uint LibxcVersion { get; internal set; }

    public uint XenMajor { get; internal set; }

    public uint XenMinor { get; internal set; }

    /// <summary>libxc records per type (index = type, 0x00..0x12).</summary>
    public long[] LibxcRecords { get; } = new long[RecordTypes.MaxDefined + 1];

    /// <summary>libxl records per type (index = type, 0..5).</summary>
    public long[] LibxlRecords { get; } = new long[LibxlRecordTypes.MaxDefined + 1];

    /// <summary>Unknown (optional) records per name.</summary>
    public IReadOnlyDictionary<string, long> UnknownRecords => _unknown;

    /// <summary>PAGE_DATA entries per page type nibble.</summary>
    public long[] PagesByType { get; } = new long[16];

    /// <summary>Pages whose data the stream carries.</summary>
    public long DataPages { get; internal set; }

    /// <summary>Distinct pfns seen in PAGE_DATA (a lower bound if <see cref="DistinctPfnsSaturated"/>).</summary>
    public long DistinctPfns { get; internal set; }

    public bool DistinctPfnsSaturated { get; internal set; }

    /// <summary>Lowest and highest pfn in PAGE_DATA (MaxValue/0 if none).</summary>
    public ulong PfnMin { get; internal set; } = ulong.MaxValue;

    public ulong PfnMax { get; internal set; }

    /// <summary>libxc CHECKPOINT records.</summary>
    public int Checkpoints { get; internal set; }

    /// <summary>True when a checkpointed stream ended where the next checkpoint would start (no END).</summary>
    public bool EndedAtCheckpoint { get; internal set; }

    /// <summary>EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT records.</summary>
    public long EmulatorRecords { get; internal set; }

    /// <summary>Octets read, including trailing data.</summary>
    public long TotalBytes { get; internal set; }

    /// <summary>Octets after the outermost END.</summary>
    public long TrailingBytes { get; internal set; }

    public long TotalRecords
    {
        get
        {
            long n = 0;
            foreach (var c in LibxcRecords)
            {
                n += c;
            }

            foreach (var c in LibxlRecords)
            {
                n += c;
            }

            foreach (var c in _unknown.Values)
            {
                n += c;
            }

            return n;
        }
    }

    internal void CountUnknown(string name) =>
        _unknown[name] = _unknown.TryGetValue(name, out var n) ? n + 1 : 1;
}
