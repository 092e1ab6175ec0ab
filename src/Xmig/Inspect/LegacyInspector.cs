using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Formats.Xl;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Inspect;

/// <summary>Options of <see cref="LegacyInspector"/>.</summary>
internal sealed record LegacyInspectOptions
{
    /// <summary>Toolstack word width in octets (4, 8); null detects it.</summary>
    public int? Width { get; init; }

    public GuestType? Guest { get; init; }

    public CheckpointedMode Mode { get; init; } = CheckpointedMode.Auto;

    /// <summary>Collect every item (inspect) rather than only the summary (verify).</summary>
    public bool ListItems { get; init; }
}

/// <summary>
/// <c>xmig inspect|verify --format legacy</c> (and auto-detected legacy inputs): reads a legacy image with the legacy
/// reader and <see cref="LegacyCheckpointDecision"/> (legacy-stream.md §4–§10), lists every chunk with its offset, and
/// reports guest type, toolstack width, sender generation as far as the stream shows it, and checkpoints.
/// </summary>
internal static class LegacyInspector
{
    /// <summary>Octets to peek for <see cref="IsLegacy"/> (an xl header and the first legacy octets).</summary>
    public const int ProbeLength = 64;

    /// <summary>
    /// True when the octets at the start of a stream are a legacy image without doubt: an xl header whose STREAMv2 flag
    /// is clear, or octets that are not v2 and from which the toolstack width and guest type can be detected (or are given).
    /// </summary>
    public static bool IsLegacy(ReadOnlySpan<byte> head, int? width, GuestType? guest, out string? why)
    {
        why = null;
        var kind = StreamDetector.Detect(head);
        if (kind == StreamKind.Xl)
        {
            return head.Length >= XlHeader.Size
                && (BinaryPrimitives.ReadUInt32LittleEndian(head[36..]) & (uint)XlMandatoryFlags.StreamV2) == 0;
        }

        if (kind != StreamKind.Legacy)
        {
            return false;
        }

        try
        {
            LegacyDetection.Detect(head[..Math.Min(head.Length, LegacyDetection.ProbeLength)], 0, width, guest);
            return true;
        }
        catch (StreamFormatException e)
        {
            why = e.Detail;
            return false;
        }
    }

    /// <summary>Reads the legacy stream at the buffer's position (an xl header first, if present).</summary>
    public static LegacyReport Inspect(InputBuffer input, LegacyInspectOptions options)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(options);
        var start = input.Position;
        var report = new LegacyReport { Items = options.ListItems ? [] : null };
        using var sink = new InspectSink(input);
        LegacyStreamReader? reader = null;
        try
        {
            if (XlHeader.HasMagic(input.Peek(XlHeader.Size)))
            {
                var at = input.Position;
                var xl = XlHeader.ReadLegacy(input, out var optionalData);
                report.Xl = true;
                Add(report, -1, at, 0, "xl header", Invariant($"mandatory flags 0x{xl.MandatoryFlags:X} (STREAMv2 clear: legacy payload), optional data {optionalData.Length} octets")
                    + (XlHeader.TryGetConfig(optionalData, out var config) ? Invariant($", config {config.Length} octets") : ", no config_len prefix (xl would refuse it as truncated)"));
            }

            var detected = LegacyDetection.Detect(input.Peek(LegacyDetection.ProbeLength), input.Position, options.Width, options.Guest);
            report.Width = detected.Width * 8;
            report.Guest = detected.Guest == GuestType.Pv ? "pv" : "hvm";
            report.Detection = detected.Evidence;
            reader = new LegacyStreamReader(input, new LegacyStreamOptions(detected.Width, detected.Guest)
            {
                DeviceModel = detected.Guest == GuestType.Hvm ? LegacyDeviceModelHandling.IfPresent : LegacyDeviceModelHandling.Leave,
            });
            sink.Reader = reader;
            var r = reader;
            var result = LegacyCheckpointDecision.Run(reader, sink, new LegacyCheckpointDecisionOptions
            {
                Mode = options.Mode,
                RefuseTmem = false,
                Observer = _ => Observe(report, r),
            });
            report.Valid = true;
            report.CheckpointsSeen = result.CheckpointsSeen;
            report.CheckpointsCommitted = result.CheckpointsCommitted;
            report.End = result.End.ToString();
            report.EndDetail = result.EndDetail;
            switch (result.End)
            {
                case LegacyRestoreEnd.IncompleteCheckpoint:
                    report.Warnings.Add(result.EndDetail);
                    break;
                case LegacyRestoreEnd.NotAChunk or LegacyRestoreEnd.NotAChunkConsumed:
                    report.Warnings.Add(result.EndDetail);
                    break;
            }

            if (detected.Guest == GuestType.Hvm && sink.DeviceModels == 0)
            {
                report.Warnings.Add("no device-model record follows the HVM tail (libxc would refuse the restore)");
            }
        }
        catch (StreamFormatException e)
        {
            report.Error = new ReportError(e.What, e.Index, Hex(e.Offset), e.Detail, e.Message);
        }

        if (reader is not null)
        {
            report.P2mSize = Hex((long)reader.P2mSize);
            report.GuestBits = reader.Guest == GuestType.Pv ? reader.GuestWidth * 8 : 0;
            report.SenderGeneration = reader.Generation switch
            {
                LegacySenderGeneration.Legacy40 => "legacy-4.0",
                LegacySenderGeneration.Legacy41 => "legacy-4.1",
                LegacySenderGeneration.Checkpointed => "checkpointed",
                _ => "unknown",
            };
            report.MinimumSenderVersion = reader.MinimumSenderVersion;
            report.MinimumSenderEvidence = reader.MinimumSenderEvidence;
            report.LastCheckpoint = reader.LastCheckpointSeen;
            report.Compressed = reader.CompressionEnabled;
            report.Chunks = reader.ChunkCount;
            if (report.Error is not null)
            {
                report.CheckpointsSeen = reader.Checkpoint;
            }
        }

        report.PageBatches = sink.Batches;
        report.DataPages = sink.DataPages;
        report.Bytes = input.Position - start;
        return report;
    }

    public static string ToJson(LegacyReport report) => JsonSerializer.Serialize(report, LegacyReportJsonContext.Default.LegacyReport);

    /// <summary>The text rendering of <c>inspect</c>: one line per item, then a summary.</summary>
    public static void WriteText(LegacyReport report, TextWriter output)
    {
        if (report.Items is not null)
        {
            foreach (var item in report.Items)
            {
                var index = item.Index >= 0 ? Invariant($"#{item.Index}") : "";
                output.WriteLine(Invariant($"{item.Offset,12} {index,6} cp{item.Checkpoint,-3} {item.Name,-26} {item.Detail}"));
            }
        }

        output.WriteLine(Summary(report));
        foreach (var w in report.Warnings)
        {
            output.WriteLine("warning: " + w);
        }

        if (report.Error is { } e)
        {
            output.WriteLine("error: " + e.Message);
        }
    }

    /// <summary>One line: what the stream is.</summary>
    public static string Summary(LegacyReport r)
    {
        var guest = r.Guest == "pv" ? Invariant($"PV guest ({r.GuestBits}-bit)") : "HVM guest";
        var sender = r.SenderGeneration + (r.MinimumSenderVersion is { } v ? $" (Xen ≥ {v}: {r.MinimumSenderEvidence})" : "");
        var checkpoints = Invariant($"{r.CheckpointsCommitted} checkpoint(s) committed of {r.CheckpointsSeen}");
        return Invariant($"{(r.Valid ? "valid" : "invalid")} legacy stream{(r.Xl ? " in an xl header" : "")}: {r.Width}-bit toolstack, {guest}, sender {sender}, {checkpoints}{(r.Compressed ? ", compressed" : "")}; {r.Chunks} chunks, {r.DataPages} data pages, {r.Bytes} bytes");
    }

    private static void Observe(LegacyReport report, LegacyStreamReader r)
    {
        if (r.Kind is LegacyItemKind.ExtendedInfoBlock)
        {
            report.ExtendedInfo.Add(Invariant($"{LegacyStreamReader.SignatureText(r.ExtendedInfoSignature)} ({r.ExtendedInfoData.Length} octets)"));
        }

        if (r.Kind == LegacyItemKind.DeviceModelRecord)
        {
            report.DeviceModel = r.DeviceModelSignature.ToString();
        }

        if (report.Items is null)
        {
            return;
        }

        var chunk = r.Kind is LegacyItemKind.PageBatch or LegacyItemKind.Chunk or LegacyItemKind.EndOfBody;
        Add(report, chunk ? r.ChunkIndex : -1, r.ItemOffset, r.Checkpoint, Name(r), Describe(r));
    }

    private static void Add(LegacyReport report, long index, long offset, int checkpoint, string name, string detail) =>
        report.Items?.Add(new LegacyReportItem { Index = index, Offset = Hex(offset), Checkpoint = checkpoint, Name = name, Detail = detail });

    private static string Name(LegacyStreamReader r) => r.Kind switch
    {
        LegacyItemKind.P2mSize => "p2m_size",
        LegacyItemKind.ExtendedInfoBlock => "extended info",
        LegacyItemKind.P2mFrameList => "p2m frame list",
        LegacyItemKind.PageBatch => "PAGE_BATCH",
        LegacyItemKind.Chunk => LegacyChunk.Name(r.ChunkId),
        LegacyItemKind.EndOfBody => "END_OF_BODY (0)",
        LegacyItemKind.PvUnmappedPfns => "PV tail: unmapped pfns",
        LegacyItemKind.PvVcpu => "PV tail: vCPU",
        LegacyItemKind.PvSharedInfo => "PV tail: shared info",
        LegacyItemKind.HvmMagicPfns => "HVM tail: magic pfns",
        LegacyItemKind.HvmContext => "HVM tail: HVM context",
        LegacyItemKind.DeviceModelRecord => "device-model record",
        LegacyItemKind.EndOfCheckpoint => "end of checkpoint",
        _ => r.Kind.ToString(),
    };

    private static string Describe(LegacyStreamReader r)
    {
        switch (r.Kind)
        {
            case LegacyItemKind.P2mSize:
                return Invariant($"0x{r.P2mSize:X} ({r.Width * 8}-bit ulong)");
            case LegacyItemKind.ExtendedInfoBlock:
                var sig = LegacyStreamReader.SignatureText(r.ExtendedInfoSignature);
                return sig switch
                {
                    "vcpu" => Invariant($"'vcpu' 0x{r.ExtendedInfoData.Length:X} octets: {r.GuestWidth * 8}-bit guest, {(r.GuestWidth == 8 ? 4 : 3)}-level paging"),
                    "xcnt" => Invariant($"'xcnt' xsave record 0x{r.XsaveRecordSize:X} octets per vCPU"),
                    _ => $"'{sig}': 128-octet extended vCPU context in the tail",
                };
            case LegacyItemKind.P2mFrameList:
                return Invariant($"{r.P2mFrames.Length} frame(s), {4096 / r.GuestWidth} entries per frame");
            case LegacyItemKind.PageBatch:
                return DescribeBatch(r);
            case LegacyItemKind.Chunk:
                return DescribeChunk(r);
            case LegacyItemKind.PvUnmappedPfns:
                return Invariant($"{r.UnmappedCount} unmapped pfn(s) in all, {r.UnmappedPfns.Length} here");
            case LegacyItemKind.PvVcpu:
                return Invariant($"vCPU {r.VcpuId}: context 0x{r.VcpuContext.Length:X}")
                    + (r.HasExtendedVcpuContext ? ", extended 128" : "")
                    + (r.XsaveRecordSize != 0 ? Invariant($", xsave 0x{r.XsaveRecordSize:X}") : "");
            case LegacyItemKind.PvSharedInfo:
                return "4096 octets";
            case LegacyItemKind.HvmMagicPfns:
                return Invariant($"ioreq 0x{r.HvmIoreqPfn:X}, buffered ioreq 0x{r.HvmBufIoreqPfn:X}, xenstore 0x{r.HvmStorePfn:X}");
            case LegacyItemKind.HvmContext:
                return Invariant($"{r.BlobLength} octets");
            case LegacyItemKind.DeviceModelRecord:
                return r.BlobLength >= 0 ? Invariant($"{r.DeviceModelSignature}, {r.BlobLength} octets") : $"{r.DeviceModelSignature}, QEMU state to the end of the stream";
            default:
                return "";
        }
    }

    private static string DescribeBatch(LegacyStreamReader r)
    {
        Span<int> counts = stackalloc int[16];
        var fillers = 0;
        foreach (var e in r.PageEntries)
        {
            if (e == LegacyPfnEntry.Filler)
            {
                fillers++;
            }
            else
            {
                counts[(int)(e >> LegacyPfnEntry.TypeShift)]++;
            }
        }

        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{r.PageEntries.Length} entries, {r.DataPageCount} data pages{(r.IsCompressedBatch ? " (compressed: data in COMPRESSED_DATA)" : "")}:");
        for (var t = 0; t < 16; t++)
        {
            if (counts[t] > 0)
            {
                sb.Append(CultureInfo.InvariantCulture, $" {LegacyPfnEntry.Name((LegacyPageType)t)}×{counts[t]}");
            }
        }

        if (fillers > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $" XTAB-filler×{fillers}");
        }

        return sb.ToString();
    }

    private static string DescribeChunk(LegacyStreamReader r)
    {
        var id = r.ChunkId;
        if (LegacyChunk.IsHvmParam(id))
        {
            return Invariant($"HVM param {LegacyChunk.HvmParamIndex(id)} = 0x{r.HvmParamValue:X}");
        }

        return id switch
        {
            LegacyChunkId.VcpuInfo => Invariant($"max_vcpu_id {r.MaxVcpuId}, online {OnlineList(r)}"),
            LegacyChunkId.TscInfo => Invariant($"mode {r.TscInfo.Mode}, {r.TscInfo.ElapsedNsec} ns, {r.TscInfo.GtscKhz} kHz, incarnation {r.TscInfo.Incarnation}"),
            LegacyChunkId.Toolstack => Invariant($"{r.BlobLength} octets"),
            LegacyChunkId.CompressedData => Invariant($"{r.BlobLength} octets of page encodings"),
            LegacyChunkId.Tmem => Invariant($"{r.Tmem.Length} octets: version {r.Tmem.Version}, {r.Tmem.Pools} pool(s), {r.Tmem.Pages} page(s) (cannot be restored)"),
            LegacyChunkId.TmemExtra => Invariant($"{r.Tmem.Length} octets: {r.Tmem.Entries} page(s) to invalidate (cannot be restored)"),
            LegacyChunkId.LastCheckpoint => "the sender will send no further checkpoint (Xen 4.1–4.5, non-checkpointed save)",
            LegacyChunkId.EnableCompression => "later checkpoints are compressed (format B)",
            LegacyChunkId.EnableVerifyMode => "debug save: the pages that follow are a second copy for comparison",
            _ => "",
        };
    }

    private static string OnlineList(LegacyStreamReader r)
    {
        var sb = new StringBuilder();
        var map = r.VcpuOnlineMap;
        for (var i = 0; i <= r.MaxVcpuId; i++)
        {
            if ((map[i / 64] >> (i % 64) & 1) != 0)
            {
                sb.Append(sb.Length == 0 ? "" : ",").Append(i.ToString(CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }

    private static string Hex(long value) => Invariant($"0x{value:X}");

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>Counts what is committed and keeps page contents for compressed checkpoints.</summary>
    private sealed class InspectSink(InputBuffer input) : ILegacyRestoreSink, IDisposable
    {
        private LegacyPageStore? _store;
        private bool _streaming;

        public LegacyStreamReader? Reader { get; set; }

        public long Batches { get; private set; }

        public long DataPages { get; private set; }

        public int DeviceModels { get; private set; }

        public void Header(LegacyImageInfo info)
        {
            var file = input.BaseStream is FileStream { CanSeek: true } fs ? fs.SafeFileHandle : null;
            _store = new LegacyPageStore(info.P2mSize, file, null);
        }

        public void BeginCheckpoint(int number) => _streaming = number == 1;

        public void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
        {
            Batches++;
            DataPages += pages.Length / 4096;
            var keep = _streaming ? _store!.CanReferToInput : Reader!.CompressionEnabled;
            if (!keep)
            {
                return;
            }

            var dataAt = Reader!.ItemOffset + 4 + ((long)entries.Length * Reader.Width);
            var d = 0;
            foreach (var e in entries)
            {
                if (LegacyPfnEntry.HasData(e))
                {
                    if (_streaming)
                    {
                        _store!.RecordInput(LegacyPfnEntry.Pfn(e), dataAt + (d * 4096L));
                    }
                    else
                    {
                        _store!.Store(LegacyPfnEntry.Pfn(e), pages.Slice(d * 4096, 4096));
                    }

                    d++;
                }
            }
        }

        public bool TryReadPage(uint pfn, Span<byte> destination) => _store?.TryRead(pfn, destination) ?? false;

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

        public void HvmContext(long length, Stream data) => data.CopyTo(Stream.Null);

        public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data)
        {
            DeviceModels++;
            data.CopyTo(Stream.Null);
        }

        public void CommitCheckpoint(int number)
        {
        }

        public void DiscardCheckpoint(int number)
        {
        }

        public void Dispose() => _store?.Dispose();
    }
}
