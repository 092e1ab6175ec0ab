using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Formats.Libxl;
using Xmig.Restore.Legacy;

namespace Xmig.Restore;

/// <summary>
/// Restore of legacy (pre-v2) streams: the legacy reader and THE legacy checkpoint decision
/// (<see cref="LegacyCheckpointDecision"/>, legacy-stream.md §9.3, §10) deliver committed checkpoints to a sink that
/// applies them to the same <see cref="RestoreState"/> as the v2 path, so completion and the domain are shared.
/// </summary>
internal sealed partial class RestoreEngine
{
    /// <summary>Bound on a device-model record kept in memory (the reader bounds it too).</summary>
    private const long MaxDeviceModel = 256L << 20;

    private RestoreResult RunLegacy(InputBuffer input, string kind)
    {
        var guest = _options.GuestType switch
        {
            GuestType.Pv => GuestType.Pv,
            GuestType.Hvm => GuestType.Hvm,
            _ => (GuestType?)null,
        };
        var detected = LegacyDetection.Detect(input.Peek(LegacyDetection.ProbeLength), input.Position, _options.LegacyWidth / 8, guest);
        var readerOptions = new LegacyStreamOptions(detected.Width, detected.Guest)
        {
            // Xen's libxc reads the device-model record as the last part of every HVM tail (legacy §6.5).
            DeviceModel = detected.Guest == GuestType.Hvm ? LegacyDeviceModelHandling.Required : LegacyDeviceModelHandling.Leave,
            MaxP2mSize = Math.Min(LegacyStreamOptions.MaxP2mSizeLimit, _options.MaxP2mSize),
        };
        var reader = new LegacyStreamReader(input, readerOptions);
        var sink = new LegacySink(this, reader);
        LegacyRestoreResult result;
        try
        {
            result = LegacyCheckpointDecision.Run(reader, sink, new LegacyCheckpointDecisionOptions
            {
                Mode = _options.Checkpointed,
                Heartbeat = _options.Heartbeat,
                SpoolDirectory = _options.SpoolDirectory,
                MaxBufferedCheckpointBytes = _options.SpoolLimit,
                StopAfterCheckpoint = _options.StopAfterCheckpoint,
            });
        }
        catch (LegacyUnsupportedContentException e)
        {
            throw new NotSupportedException(e.Message, e);
        }

        Complete(input.Position);
        return new RestoreResult
        {
            StreamKind = kind,
            SenderGeneration = result.Generation switch
            {
                LegacySenderGeneration.Legacy40 => "legacy-4.0",
                LegacySenderGeneration.Legacy41 => "legacy-4.1",
                LegacySenderGeneration.Checkpointed => "legacy-checkpointed",
                _ => "legacy",
            },
            CheckpointsSeen = result.CheckpointsSeen,
            CheckpointCommitted = result.CheckpointsCommitted,
            End = result.EndDetail,
            FinishReason = result.FinishReason,
            FinishRecord = result.FinishReason == RestoreFinishReason.FormatError && result.DiscardedRecord is { } bad
                ? (bad.Index >= 0 ? Invariant($"{bad.What} #{bad.Index}") : bad.What)
                : null,
            FinishOffset = result.DiscardedRecord?.Offset ?? (result.DiscardedBecause != null || result.FinishReason == RestoreFinishReason.FormatError ? result.CommittedEndOffset : null),
            Discarded = result.DiscardedBecause is { } discarded ? Invariant($"checkpoint {result.CheckpointsSeen}: {discarded.Message}") : null,
            VerifyMismatches = _state.VerifyMismatches,
            Warnings = [.. _state.Warnings, .. sink.Warnings],
        };
    }

    /// <summary>Applies committed legacy checkpoints to the restore state (legacy-stream.md §9.3 APPLY, §9.5).</summary>
    private sealed class LegacySink(RestoreEngine engine, LegacyStreamReader reader) : ILegacyRestoreSink
    {
        private readonly RestoreState _state = engine._state;
        private int _checkpoint;

        public List<string> Warnings { get; } = [];

        // legacy §4: guest type and, for PV, width and p2m frames from the header; p2m_size bounds every pfn.
        public void Header(LegacyImageInfo info)
        {
            _state.SetGuestType(info.Guest == GuestType.Pv ? GuestType.Pv : GuestType.Hvm);
            var problem = _state.DeclareP2mSize(info.P2mSize);
            if (problem != null)
            {
                throw new StreamFormatException("legacy image header", -1, 0, problem);
            }

            if (info.Guest == GuestType.Pv)
            {
                _state.SetGuestWidth(info.GuestWidth);
                _state.SetP2mFrames(info.P2mFrames);
            }
        }

        public void BeginCheckpoint(int number) => _checkpoint = number;

        // legacy §5.3: filler XTAB entries carry no pfn; 0x8 (pinned NOTAB) is NOTAB; 0x5–0x7 are fatal when applied.
        public void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
        {
            var page = 0;
            for (var i = 0; i < entries.Length; i++)
            {
                var e = entries[i];
                if (e == LegacyPfnEntry.Filler)
                {
                    continue;
                }

                var type = LegacyPfnEntry.Type(e);
                var data = LegacyPfnEntry.HasData(e) ? pages.Slice(page++ * GuestPage.Size, GuestPage.Size) : default;
                if (LegacyPfnEntry.IsUndefined(type))
                {
                    throw Error("page batch", $"entry {i}: bogus page type 0x{(byte)type:X}");
                }

                var pfn = (ulong)LegacyPfnEntry.Pfn(e);
                var problem = _state.CheckPfn(pfn);
                if (problem != null)
                {
                    throw Error("page batch", $"entry {i}: {problem}");
                }

                var domainType = type == LegacyPageType.PinnedNoTab ? PageType.NoTab : (PageType)type;
                _state.WritePage(pfn, domainType, data);
            }
        }

        public bool TryReadPage(uint pfn, Span<byte> destination)
        {
            var domain = _state.Domain;
            if (domain == null || pfn >= domain.P2mSize)
            {
                return false;
            }

            Span<PageType> type = stackalloc PageType[1];
            domain.GetPageTypes(pfn, type);
            if (!type[0].HasData())
            {
                return false;
            }

            domain.ReadPage(pfn, destination);
            return true;
        }

        public void Marker(LegacyChunkId id)
        {
            if (id == LegacyChunkId.EnableVerifyMode)
            {
                _state.VerifyMode = true;
            }
        }

        public void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap)
        {
            // The PV tail carries one record per online vCPU; those records are what is restored.
        }

        public void HvmParam(LegacyChunkId id, ulong value)
        {
            if (value != 0)
            {
                _state.SetHvmParam(LegacyChunk.HvmParamIndex(id), value);
            }
        }

        public void TscInfo(LegacyTscInfo tsc) => _state.SetTscInfo(new TscInfo(tsc.Mode, tsc.GtscKhz, tsc.ElapsedNsec, tsc.Incarnation));

        // legacy §5.5.4: libxl's physmap entries become the device model's xenstore pairs (HVM only).
        public void Toolstack(ReadOnlySpan<byte> blob)
        {
            if (_state.GuestType != GuestType.Hvm || blob.IsEmpty)
            {
                return;
            }

            var entries = LibxlToolstackBlob.Parse(blob, reader.Width, reader.ItemOffset + 8, reader.ChunkIndex);
            var data = new List<byte>();
            LibxlToolstackBlob.AppendXenstorePairs(entries, data);
            var pairs = XenstoreData.TryDecode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(data), out var problem)
                ?? throw Error("TOOLSTACK", problem ?? "malformed physmap");
            _state.SetEmulatorXenstore([.. pairs.Select(p => new XenstoreEntry(p.Key, p.Value))]);
        }

        public void EndOfBody()
        {
        }

        public void UnmappedPfns(ReadOnlySpan<ulong> pfns)
        {
            // Xen releases these pfns if it populated them; the image keeps the pages the stream sent, as the
            // converter (which discards the list) does.
            if (!pfns.IsEmpty)
            {
                Warnings.Add($"checkpoint {_checkpoint}: {pfns.Length} unmapped pfns listed in the PV tail were kept");
            }
        }

        public void PvVcpu(int vcpuId, ReadOnlySpan<byte> context, ReadOnlySpan<byte> extendedContext, ReadOnlySpan<byte> xsaveRecord)
        {
            _state.SetVcpuContext(vcpuId, VcpuContextKind.Basic, context);
            _state.SetVcpuContext(vcpuId, VcpuContextKind.Extended, extendedContext);

            // legacy §6.3: the record is mask, size S, then S octets; the v2 XSAVE context is those S octets.
            if (xsaveRecord.Length > 16)
            {
                _state.SetVcpuContext(vcpuId, VcpuContextKind.Xsave, xsaveRecord[16..]);
            }
        }

        public void SharedInfo(ReadOnlySpan<byte> page) => _state.SetSharedInfo(page);

        public void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn)
        {
            _state.SetHvmParam(Xmig.HvmParam.IoreqPfn, ioreqPfn);
            _state.SetHvmParam(Xmig.HvmParam.BufioreqPfn, bufIoreqPfn);
            _state.SetHvmParam(Xmig.HvmParam.StorePfn, storePfn);
        }

        public void HvmContext(long length, Stream data) => _state.SetHvmContext(ReadAll(data, length, "HVM context"));

        public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data) =>
            _state.SetEmulatorContext(ReadAll(data, length, "device model record"));

        public void CommitCheckpoint(int number) => engine._options.Observer?.Committed(number);

        public void DiscardCheckpoint(int number)
        {
        }

        private byte[] ReadAll(Stream data, long length, string what)
        {
            if (length > MaxDeviceModel)
            {
                throw Error(what, $"{length} octets exceeds {MaxDeviceModel}");
            }

            using var copy = new MemoryStream(length >= 0 ? (int)length : 1 << 16);
            var buffer = new byte[1 << 16];
            int n;
            while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (copy.Length + n > MaxDeviceModel)
                {
                    throw Error(what, $"more than {MaxDeviceModel} octets");
                }

                copy.Write(buffer, 0, n);
            }

            return copy.ToArray();
        }

        private StreamFormatException Error(string what, string detail) => new(what, reader.ChunkIndex, reader.ItemOffset, detail);
    }
}
