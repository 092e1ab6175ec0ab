using System.Buffers;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Conversion;

/// <summary>
/// Turns committed legacy checkpoints into a Migration v2 stream with the v2 writers, record for record as Xen's
/// <c>convert-legacy-stream</c> does (v2-stream.md §9.1), and checkpointed images into checkpointed v2 streams
/// (libxc CHECKPOINT, libxl CHECKPOINT_END; §4.5, §6.3).
/// </summary>
/// <remarks>
/// Whether a checkpoint ends the image is only known after it is committed (legacy §10), so the end-of-checkpoint
/// records (libxc END or CHECKPOINT, then the libxl emulator records) are written when the next checkpoint begins or
/// when <see cref="Finish"/> is called; the device-model blob waits in a <see cref="SpillBuffer"/> until then.
/// </remarks>
internal sealed class V2ConvertSink : ILegacyRestoreSink, IDisposable
{
    /// <summary>xen_minor of a converted stream: the converter's version (v2 spec §3.2).</summary>
    public const uint ConverterVersion = 1;

    private readonly OutputBuffer _output;
    private readonly LegacyConvertOptions _options;
    private readonly LegacyStreamReader _reader;
    private readonly Func<LegacyPageStore?> _storeFactory;
    private readonly List<HvmParamEntry> _params = [];
    private readonly List<byte> _xenstore = [];
    private readonly ulong[] _entries = new ulong[LegacyChunk.MaxBatchSize];
    private readonly TextWriter? _verbose;
    private LibxlWriter? _libxl;
    private LibxcWriter? _libxc;
    private SpillBuffer? _deviceModel;
    private LegacyDeviceModelSignature _deviceModelSignature;
    private LegacyPageStore? _store;
    private bool _keepPages;
    private bool _streaming;
    private bool _checkpointed;
    private int _pendingClose;

    public V2ConvertSink(OutputBuffer output, LegacyConvertOptions options, LegacyStreamReader reader, Func<LegacyPageStore?> storeFactory)
    {
        _output = output;
        _options = options;
        _reader = reader;
        _storeFactory = storeFactory;
        _verbose = options.Verbose;
    }

    private bool Libxl => _options.Format == V2OutputFormat.Libxl;

    private LibxcWriter Xc => _libxc ?? throw new InvalidOperationException("no header yet");

    // legacy §4 → v2 §9.1: [libxl header, LIBXC_CONTEXT], image and domain headers, PV: X86_PV_INFO,
    // STATIC_DATA_END, X86_PV_P2M_FRAMES; HVM: STATIC_DATA_END.
    public void Header(LegacyImageInfo info)
    {
        _verbose?.WriteLine($"P2M Size: 0x{info.P2mSize:x}");
        if (Libxl)
        {
            _libxl = new LibxlWriter(_output);
            _libxl.WriteHeader(legacy: true);
            _libxc = _libxl.BeginLibxcContext();
        }
        else
        {
            _libxc = new LibxcWriter(_output);
        }

        _libxc.WriteImageHeader();
        var pv = info.Guest == GuestType.Pv;
        _libxc.WriteDomainHeader(DomainHeader.Create(pv ? GuestType.Pv : GuestType.Hvm, 0, ConverterVersion));
        if (pv)
        {
            var levels = info.GuestWidth == 8 ? 4 : 3;
            _verbose?.WriteLine($"  {info.GuestWidth * 8}bit domain, {levels} levels; extended context {info.HasExtendedVcpuContext}, xsave record 0x{info.XsaveRecordSize:x}");
            _libxc.WriteX86PvInfo(new X86PvInfo((byte)info.GuestWidth, (byte)levels));
            _libxc.WriteStaticDataEnd();
            _libxc.WriteX86PvP2mFrames(0, (uint)(info.P2mSize - 1), info.P2mFrames);
        }
        else
        {
            _libxc.WriteStaticDataEnd();
        }
    }

    public void BeginCheckpoint(int number)
    {
        if (number == 1)
        {
            // Until the first checkpoint shows whether compression follows, remember where its pages are: cheaply, by
            // offset, when the input is a file. From a pipe they would have to be copied; Xen's sender only
            // delta-encodes pages it sent in compressed checkpoints (≥ 2), so that copy is made only in mode yes.
            _streaming = true;
            if (_options.Mode != CheckpointedMode.No)
            {
                _store = _storeFactory();
                _keepPages = _store is not null && (_store.CanReferToInput || _options.Mode == CheckpointedMode.Yes);
            }

            return;
        }

        _verbose?.WriteLine($"Checkpoint {number}");
        _streaming = false;
        _checkpointed = true;
        _keepPages = _reader.CompressionEnabled && _store is not null;
        if (!_keepPages && _store is not null)
        {
            _store.Dispose();
            _store = null;
        }

        CloseCheckpoint(final: false);
    }

    // PAGE_DATA: filler XTAB entries dropped; type nibble moved to bits 60–63; LPINTAB|NOTAB becomes NOTAB (the legacy
    // receiver treats it so; v2 reserves nibble 8).
    public void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        var n = 0;
        foreach (var e in entries)
        {
            if (e == LegacyPfnEntry.Filler)
            {
                continue;
            }

            var type = (ulong)(e >> LegacyPfnEntry.TypeShift);
            if (type == (ulong)LegacyPageType.PinnedNoTab)
            {
                type = 0;
            }

            _entries[n++] = (type << 60) | LegacyPfnEntry.Pfn(e);
        }

        if (_keepPages)
        {
            KeepPages(entries, pages);
        }

        if (n == 0)
        {
            return;
        }

        Xc.WritePageData(_entries.AsSpan(0, n), pages);
    }

    private void KeepPages(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        var dataAt = _reader.ItemOffset + 4 + ((long)entries.Length * _reader.Width);
        var d = 0;
        foreach (var e in entries)
        {
            if (!LegacyPfnEntry.HasData(e))
            {
                continue;
            }

            var pfn = LegacyPfnEntry.Pfn(e);
            if (_streaming && _store!.CanReferToInput)
            {
                _store.RecordInput(pfn, dataAt + (d * 4096L));
            }
            else
            {
                _store!.Store(pfn, pages.Slice(d * 4096, 4096));
            }

            d++;
        }
    }

    public bool TryReadPage(uint pfn, Span<byte> destination) => _store?.TryRead(pfn, destination) ?? false;

    public void Marker(LegacyChunkId id) => _verbose?.WriteLine($"Chunk: {(int)id} - {LegacyChunk.Name(id)}");

    public void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap) => _verbose?.WriteLine($"  Vcpu info: max_id {maxVcpuId}");

    public void HvmParam(LegacyChunkId id, ulong value)
    {
        _verbose?.WriteLine($"  {LegacyChunk.Name(id)}: 0x{value:x}");
        _params.Add(new HvmParamEntry(LegacyChunk.HvmParamIndex(id), value));
    }

    public void TscInfo(LegacyTscInfo tsc)
    {
        _verbose?.WriteLine($"  TSC_INFO: mode {tsc.Mode}, {tsc.ElapsedNsec} ns, {tsc.GtscKhz} khz, {tsc.Incarnation} incarn");
        Xc.WriteX86TscInfo(new X86TscInfo(tsc.Mode, tsc.GtscKhz, tsc.ElapsedNsec, tsc.Incarnation));
    }

    // TOOLSTACK: with libxl output, the physmap entries become EMULATOR_XENSTORE_DATA pairs; otherwise discarded.
    public void Toolstack(ReadOnlySpan<byte> blob)
    {
        _verbose?.WriteLine($"  Toolstack Data: sz 0x{blob.Length:x}");
        if (Libxl && !blob.IsEmpty)
        {
            var entries = LibxlToolstackBlob.Parse(blob, _reader.Width, _reader.ItemOffset + 8, _reader.ChunkIndex);
            LibxlToolstackBlob.AppendXenstorePairs(entries, _xenstore);
        }
    }

    // Chunk 0: the HVM parameters collected from this checkpoint's chunks, as one HVM_PARAMS record.
    public void EndOfBody()
    {
        if (_params.Count > 0)
        {
            Xc.WriteHvmParams(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_params));
            _params.Clear();
        }
    }

    public void UnmappedPfns(ReadOnlySpan<ulong> pfns)
    {
        if (!pfns.IsEmpty)
        {
            _verbose?.WriteLine($"discarding {pfns.Length} bogus 'unmapped pfns'");
        }
    }

    public void PvVcpu(int vcpuId, ReadOnlySpan<byte> context, ReadOnlySpan<byte> extendedContext, ReadOnlySpan<byte> xsaveRecord)
    {
        Xc.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, (uint)vcpuId, context);
        if (!extendedContext.IsEmpty)
        {
            Xc.WriteX86PvVcpu(RecordType.X86PvVcpuExtended, (uint)vcpuId, extendedContext);
        }

        if (!xsaveRecord.IsEmpty)
        {
            // The xfeature mask and size S (16 octets) are dropped; XSAVE carries the S octets.
            Xc.WriteX86PvVcpu(RecordType.X86PvVcpuXsave, (uint)vcpuId, xsaveRecord[16..]);
        }
    }

    public void SharedInfo(ReadOnlySpan<byte> page) => Xc.WriteSharedInfo(page);

    public void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn)
    {
        _verbose?.WriteLine($"Magic pfns: 0x{ioreqPfn:x} 0x{bufIoreqPfn:x} 0x{storePfn:x}");
        Xc.WriteHvmParams([
            new HvmParamEntry(Xmig.HvmParam.IoreqPfn, ioreqPfn),
            new HvmParamEntry(Xmig.HvmParam.BufioreqPfn, bufIoreqPfn),
            new HvmParamEntry(Xmig.HvmParam.StorePfn, storePfn),
        ]);
    }

    public void HvmContext(long length, Stream data)
    {
        _verbose?.WriteLine($"Got HVM Context (0x{length:x} bytes)");
        Xc.BeginRecord((uint)RecordType.HvmContext, checked((uint)length));
        CopyInto(data, length, Xc);
        Xc.EndRecord();
    }

    public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data)
    {
        _verbose?.WriteLine($"Qemu signature: {signature}");
        _deviceModel ??= new SpillBuffer(_options.TempDirectory);
        _deviceModel.Reset();
        _deviceModel.CopyFrom(data);
        _deviceModelSignature = signature;
    }

    public void CommitCheckpoint(int number) => _pendingClose = number;

    public void DiscardCheckpoint(int number)
    {
    }

    /// <summary>Writes the end of the last committed checkpoint and of the stream.</summary>
    public void Finish()
    {
        if (_pendingClose == 0)
        {
            return;
        }

        CloseCheckpoint(final: true);
        _pendingClose = 0;
    }

    // The end of checkpoint n, once it is known whether another follows:
    //   plain:        libxc END · [EMULATOR_XENSTORE_DATA] · [EMULATOR_CONTEXT] · libxl END   (libxc: raw DM record)
    //   checkpointed: libxc CHECKPOINT · [EMULATOR_XENSTORE_DATA] · [EMULATOR_CONTEXT] · CHECKPOINT_END
    //                 and after the last one: libxc END · libxl END                              (libxc: raw DM record)
    private void CloseCheckpoint(bool final)
    {
        if (_checkpointed)
        {
            Xc.WriteCheckpoint();
            if (Libxl)
            {
                WriteEmulatorRecords();
                _libxl!.WriteCheckpointEnd();
            }
        }
        else
        {
            Xc.WriteEnd();
            if (Libxl)
            {
                WriteEmulatorRecords();
                _libxl!.WriteEnd();
            }
        }

        if (final && _checkpointed)
        {
            Xc.WriteEnd();
            if (Libxl)
            {
                _libxl!.WriteEnd();
            }
        }

        if (final && !Libxl && _deviceModel is not null && _deviceModelSignature != LegacyDeviceModelSignature.None)
        {
            // -f libxc: the device-model record follows the libxc stream verbatim.
            _output.Write(LegacyStreamReader.SignatureOf(_deviceModelSignature));
            if (_deviceModelSignature != LegacyDeviceModelSignature.QemuDeviceModelRecord)
            {
                _output.WriteUInt32LittleEndian(checked((uint)_deviceModel.Length));
            }

            _deviceModel.CopyTo(_output);
        }

        _xenstore.Clear();
    }

    private void WriteEmulatorRecords()
    {
        if (_xenstore.Count > 0)
        {
            _libxl!.WriteEmulatorXenstoreData((uint)EmulatorId.Unknown, 0, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_xenstore));
        }

        if (_deviceModel is not null && _deviceModelSignature != LegacyDeviceModelSignature.None)
        {
            _libxl!.BeginEmulatorRecord(LibxlRecordType.EmulatorContext, (uint)EmulatorId.Unknown, 0, _deviceModel.Length);
            _deviceModel.CopyTo(_output);
            _libxl.EndRecord();
            _deviceModelSignature = LegacyDeviceModelSignature.None;
        }
    }

    private static void CopyInto(Stream data, long length, RecordWriter writer)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            long copied = 0;
            int n;
            while (copied < length && (n = data.Read(buffer, 0, (int)Math.Min(buffer.Length, length - copied))) > 0)
            {
                writer.WriteBody(buffer.AsSpan(0, n));
                copied += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        _store?.Dispose();
        _deviceModel?.Dispose();
    }
}
