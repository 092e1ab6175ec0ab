using Xmig.Formats.Legacy;
using Xmig.Restore.Legacy;

namespace Xmig.Fuzz;

/// <summary>
/// The legacy target's sink: keeps the pages of committed checkpoints (compressed checkpoints read them back as
/// delta bases) and drains every blob it is handed, as a restore would. Memory is bounded by the input: each page
/// kept arrived in it.
/// </summary>
internal sealed class LegacyMemorySink : ILegacyRestoreSink
{
    private const int PageSize = 4096;

    private readonly Dictionary<uint, byte[]> _committed = [];
    private readonly Dictionary<uint, byte[]> _pending = [];
    private readonly byte[] _drain = new byte[PageSize];

    public void Header(LegacyImageInfo info)
    {
    }

    public void BeginCheckpoint(int number) => _pending.Clear();

    public void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        var page = 0;
        foreach (var e in entries)
        {
            if (e == LegacyPfnEntry.Filler || !LegacyPfnEntry.HasData(e))
            {
                continue;
            }

            _pending[LegacyPfnEntry.Pfn(e)] = pages.Slice(page++ * PageSize, PageSize).ToArray();
        }
    }

    public bool TryReadPage(uint pfn, Span<byte> destination)
    {
        if (_pending.TryGetValue(pfn, out var page) || _committed.TryGetValue(pfn, out page))
        {
            page.CopyTo(destination);
            return true;
        }

        return false;
    }

    public void Marker(LegacyChunkId id)
    {
    }

    public void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap)
    {
    }

    public void HvmParam(LegacyChunkId id, ulong value)
    {
    }

    public void TscInfo(LegacyTscInfo tsc)
    {
    }

    public void Toolstack(ReadOnlySpan<byte> blob)
    {
    }

    public void EndOfBody()
    {
    }

    public void UnmappedPfns(ReadOnlySpan<ulong> pfns)
    {
    }

    public void PvVcpu(int vcpuId, ReadOnlySpan<byte> context, ReadOnlySpan<byte> extendedContext, ReadOnlySpan<byte> xsaveRecord)
    {
    }

    public void SharedInfo(ReadOnlySpan<byte> page)
    {
    }

    public void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn)
    {
    }

    public void HvmContext(long length, Stream data) => Drain(data);

    public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data) => Drain(data);

    public void CommitCheckpoint(int number)
    {
        foreach (var (pfn, page) in _pending)
        {
            _committed[pfn] = page;
        }

        _pending.Clear();
    }

    public void DiscardCheckpoint(int number) => _pending.Clear();

    private void Drain(Stream data)
    {
        while (data.Read(_drain) > 0)
        {
        }
    }
}
