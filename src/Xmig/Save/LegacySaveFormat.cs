using System.Buffers.Binary;
using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Save;

/// <summary>
/// Legacy records for a save, as Xen 4.0 (<c>legacy-4.0</c>: no LAST_CHECKPOINT, no TOOLSTACK, QEMU record to end of
/// stream) or 4.1–4.5 (<c>legacy-4.1</c>) would write them, through the legacy writer (legacy-stream.md §7).
/// </summary>
/// <remarks>
/// Order per checkpoint (§7.1, §7.2): [header] · [TSC_INFO: before the pages when paused first, after the suspend when
/// live; first checkpoint only] · page batches · VCPU_INFO · HVM parameter chunks · [TOOLSTACK] · [LAST_CHECKPOINT] ·
/// 0 · PV or HVM tail · [device-model record]. Batches whose every frame is absent are not written; absent frames
/// in a batch are XTAB fillers without a pfn.
/// </remarks>
internal sealed class LegacySaveFormat : SaveFormat, IDisposable
{
    // legacy-stream.md §7.1 item 10: the HVM chunks in the order 4.5 writes them, and the parameter each carries.
    private static readonly (LegacyChunkId Id, uint Param)[] HvmChunks =
    [
        (LegacyChunkId.HvmGenerationIdAddr, HvmParam.VmGenerationIdAddr),
        (LegacyChunkId.HvmIdentPt, HvmParam.IdentPt),
        (LegacyChunkId.HvmPagingRingPfn, HvmParam.PagingRingPfn),
        (LegacyChunkId.HvmAccessRingPfn, HvmParam.MonitorRingPfn),
        (LegacyChunkId.HvmSharingRingPfn, HvmParam.SharingRingPfn),
        (LegacyChunkId.HvmVm86Tss, HvmParam.Vm86Tss),
        (LegacyChunkId.HvmConsolePfn, HvmParam.ConsolePfn),
        (LegacyChunkId.HvmAcpiIoportsLocation, HvmParam.AcpiIoportsLocation),
        (LegacyChunkId.HvmViridian, HvmParam.Viridian),
        (LegacyChunkId.HvmIoreqServerPfn, HvmParam.IoreqServerPfn),
        (LegacyChunkId.HvmNrIoreqServerPages, HvmParam.NrIoreqServerPages),
    ];

    private readonly LegacyStreamWriter _writer;
    private readonly LegacyWriterGeneration _generation;
    private readonly int _width;
    private uint _xcnt;

    public LegacySaveFormat(IDomain domain, OutputBuffer output, SaveOptions options)
        : base(domain, output, options)
    {
        _generation = options.Kind == SaveStreamKind.Legacy40 ? LegacyWriterGeneration.Legacy40 : LegacyWriterGeneration.Legacy41;
        _width = options.LegacyToolstackWidth;
        if (domain.P2mSize > LegacyPfnEntry.MaxPfn + 1UL)
        {
            throw new NotSupportedException($"p2m size {domain.P2mSize} does not fit the legacy format's 28-bit pfns");
        }

        _writer = new LegacyStreamWriter(output, new LegacyWriterOptions(_width, Hvm ? GuestType.Hvm : GuestType.Pv)
        {
            Generation = _generation,
            Checkpointed = options.Checkpointed,
            Compress = options.Compress && options.Checkpointed,
        });
    }

    // legacy §4: p2m_size; PV: extended info (vCPU 0's context, extv, xcnt) and the p2m frame list.
    public override void Setup()
    {
        if (Hvm)
        {
            _writer.WriteHvmHeader(Domain.P2mSize);
            return;
        }

        var xsave = Domain.GetVcpuContext(0, VcpuContextKind.Xsave);
        _xcnt = xsave.IsEmpty ? 0 : (uint)(16 + xsave.Length);
        _writer.WritePvHeader(Domain.P2mSize, Domain.GetVcpuContext(0, VcpuContextKind.Basic), extendedContext: true, _xcnt, Domain.P2mFrames);
    }

    public override void BeginMemory(int checkpoint, bool paused)
    {
        if (checkpoint > 1)
        {
            _writer.BeginNextCheckpoint();
        }
        else if (paused)
        {
            WriteTsc(); // §7.1 item 4: non-live, the guest is already suspended
        }
    }

    public override void Suspended(int checkpoint)
    {
        if (checkpoint == 1)
        {
            WriteTsc(); // §7.1 item 6: live, after the suspend
        }
    }

    // legacy §5.2, §5.3: type nibble in bits 28–31, pfn in 0–27; frames that could not be mapped are fillers.
    public override int WriteBatch(ReadOnlySpan<ulong> pfns, ReadOnlySpan<PageType> types)
    {
        var valid = false;
        foreach (var t in types)
        {
            valid |= t != PageType.XTab;
        }

        if (!valid)
        {
            return 0; // §5.2: a batch is never written if none of its entries is valid
        }

        var pages = 0;
        for (var i = 0; i < pfns.Length; i++)
        {
            var type = types[i];
            if (type == PageType.XTab)
            {
                _writer.AddFiller();
            }
            else if (type.HasData())
            {
                _writer.AddPage((uint)pfns[i], (LegacyPageType)type, Domain.GetPage(pfns[i]));
                pages++;
            }
            else
            {
                _writer.AddPage((uint)pfns[i], (LegacyPageType)type, default);
            }
        }

        _writer.FlushBatch();
        return pages;
    }

    // §7.1 items 9–16 (§7.2 for later checkpoints).
    public override void EndOfCheckpoint(int checkpoint, bool checkpointed, bool endOfStream)
    {
        _writer.FlushBatch();
        var max = Math.Max(0, Domain.MaxVcpuId);
        var map = new ulong[(max / 64) + 1];
        for (var v = 0; v <= max; v++)
        {
            if (v == 0 || Domain.IsVcpuOnline(v))
            {
                map[v / 64] |= 1UL << (v % 64);
            }
        }

        _writer.WriteVcpuInfo(max, map);
        if (Hvm)
        {
            foreach (var (id, param) in HvmChunks)
            {
                var value = Domain.GetHvmParam(param);
                if (value != 0)
                {
                    _writer.WriteHvmParam(id, value);
                }
            }
        }

        if (_generation == LegacyWriterGeneration.Legacy41)
        {
            _writer.WriteToolstack(LibxlToolstackBlob.Build(PhysmapEntries(), _width));
        }

        _writer.EndBody(lastCheckpoint: checkpointed && endOfStream);
        if (Hvm)
        {
            _writer.WriteHvmTail(Domain.GetHvmParam(HvmParam.IoreqPfn), Domain.GetHvmParam(HvmParam.BufioreqPfn), Domain.GetHvmParam(HvmParam.StorePfn), Domain.HvmContext);
            // The device-model record as libxl writes it (legacy-stream.md §6.6: DeviceModelRecord0002, once per
            // checkpoint for Remus), for both generations: the generations differ in libxc's LAST_CHECKPOINT, and
            // Xen's convert-legacy-stream accepts only this signature (v2-stream.md §9.1). The xend-era signatures
            // (QemuDeviceModelRecord, RemusDeviceModelState) are read, and written by the legacy writer on request.
            _writer.WriteDeviceModelRecord(LegacyDeviceModelSignature.DeviceModelRecord0002, Domain.EmulatorContext);
            return;
        }

        _writer.WritePvTail([], VcpuRecords(max), Domain.SharedInfo);
    }

    public void Dispose() => _writer.Dispose();

    private void WriteTsc()
    {
        var tsc = Domain.TscInfo;
        _writer.WriteTscInfo(new LegacyTscInfo(tsc.Mode, tsc.Nsec, tsc.Khz, tsc.Incarnation));
    }

    // legacy §6.1, §6.3: per online vCPU, context · 128-octet extended context · xsave record of xcnt octets.
    private byte[] VcpuRecords(int max)
    {
        using var records = new MemoryStream();
        Span<byte> extended = stackalloc byte[LegacyStreamReader.ExtendedContextSize];
        for (var v = 0; v <= max; v++)
        {
            if (v != 0 && !Domain.IsVcpuOnline(v))
            {
                continue;
            }

            records.Write(Domain.GetVcpuContext(v, VcpuContextKind.Basic));
            extended.Clear();
            Domain.GetVcpuContext(v, VcpuContextKind.Extended).CopyTo(extended);
            records.Write(extended);
            if (_xcnt != 0)
            {
                var state = Domain.GetVcpuContext(v, VcpuContextKind.Xsave);
                if (16 + state.Length != _xcnt)
                {
                    throw new NotSupportedException($"vCPU {v}'s XSAVE state is {state.Length} octets; a legacy stream carries {_xcnt - 16} for every vCPU (vCPU 0's size)");
                }

                var mask = state.Length >= 8 ? BinaryPrimitives.ReadUInt64LittleEndian(state) : 0;
                records.Write(LegacyStreamWriter.MakeXsaveRecord(mask, state));
            }
        }

        return records.ToArray();
    }

    // The device model's physmap/<offset>/{start_addr,size,name} pairs as libxl's toolstack blob entries (§5.5.4).
    private List<LibxlPhysmapEntry> PhysmapEntries()
    {
        var entries = new List<LibxlPhysmapEntry>();
        var index = new Dictionary<ulong, int>();
        foreach (var (key, value) in Domain.EmulatorXenstore)
        {
            var parts = key.Split('/');
            if (parts.Length != 3 || parts[0] != "physmap" || !ulong.TryParse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var offset))
            {
                continue;
            }

            if (!index.TryGetValue(offset, out var i))
            {
                i = entries.Count;
                index[offset] = i;
                entries.Add(new LibxlPhysmapEntry(offset, 0, 0, null));
            }

            var e = entries[i];
            _ = ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var number);
            entries[i] = parts[2] switch
            {
                "start_addr" => e with { StartAddr = number },
                "size" => e with { Size = number },
                "name" => e with { Name = System.Text.Encoding.ASCII.GetBytes(value) },
                _ => e,
            };
        }

        return entries;
    }
}
