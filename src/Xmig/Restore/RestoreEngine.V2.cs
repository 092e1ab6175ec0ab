using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Verify;

namespace Xmig.Restore;

/// <summary>Restore of Migration v2 streams (xl, libxl, libxc; plain and checkpointed).</summary>
internal sealed partial class RestoreEngine
{
    /// <summary>Bound on the libxl records of one checkpoint held until its CHECKPOINT_END.</summary>
    private const long MaxQueuedLibxlBytes = 64L << 20;

    /// <summary>Bound on the QEMU record a bare libxc stream may carry after its END.</summary>
    private const uint MaxTrailingDeviceModel = 128u << 20;

    private readonly List<(LibxlRecordType Type, byte[] Data)> _libxlQueue = [];
    private long _libxlQueueBytes;
    private uint _imageVersion;
    private bool _staticDataEnd;
    private bool _pvInfoSeen;
    private bool _hvmContextSeen;
    private bool _anyPage;
    private bool _replaying;
    private int _checkpointsSeen;
    private int _committed;
    private bool _buffering;
    private bool _partial;
    private bool _stopped;

    // v2-stream.md §6.4: DIRECT until the first checkpoint commits, then BUFFERING (records spooled, replayed on
    // commit, dropped on failover). The libxl part of a checkpoint is queued until CHECKPOINT_END.
    private RestoreResult RunV2(InputBuffer input, StreamKind kind)
    {
        var walker = new V2StreamReader(input, kind);
        using var spool = new RecordSpool(_options.SpoolDirectory, _options.SpoolLimit);
        var sender = "";
        var end = "";
        string? discarded = null;
        var libxcEnded = false;
        var reason = RestoreFinishReason.End;
        string? failedRecord = null;
        long? failedOffset = null;
        try
        {
            while (!_stopped && walker.Read())
            {
                switch (walker.Item)
                {
                    case V2Item.LibxcImageHeader:
                        // The checks verify applies (V2RecordChecks): reserved fields and padding zero.
                        V2RecordChecks.Begin(walker.Libxc!);
                        V2RecordChecks.ImageHeader(walker.Libxc!.ImageHeader, walker.ItemOffset);
                        _imageVersion = walker.Libxc!.ImageHeader.Version;
                        break;
                    case V2Item.LibxlHeader:
                        V2RecordChecks.Begin(walker.Libxl!);
                        V2RecordChecks.LibxlHeader(walker.Libxl!.StreamHeader, walker.ItemOffset);
                        break;
                    case V2Item.LibxcDomainHeader:
                        var header = walker.Libxc!.DomainHeader;
                        V2RecordChecks.DomainHeader(header, walker.ItemOffset);
                        sender = header.XenMajor == 0
                            ? Invariant($"legacy-converter-{header.XenMinor}")
                            : Invariant($"xen-{header.XenMajor}.{header.XenMinor}");
                        _state.SetGuestType(ToGuestType(header.GuestType));
                        break;
                    case V2Item.LibxcRecord:
                        var libxc = walker.Libxc!;
                        switch (libxc.Type)
                        {
                            case RecordType.End:
                                V2RecordChecks.EmptyBody(libxc);
                                CheckHvmCompletion(libxc);

                                // §10 row 2: END in a checkpointed stream discards what follows the last CHECKPOINT.
                                libxcEnded = true;
                                end = "END";
                                if (_buffering && spool.Count > 0)
                                {
                                    discarded = Invariant($"{spool.Count} records after checkpoint {_committed} were followed by END, not CHECKPOINT");
                                }

                                spool.Clear();
                                _buffering = false;
                                _partial = false;
                                break;
                            case RecordType.Checkpoint:
                                V2RecordChecks.EmptyBody(libxc);
                                CheckHvmCompletion(libxc);
                                _checkpointsSeen++;
                                _partial = true;
                                if (_options.Checkpointed == CheckpointedMode.No)
                                {
                                    throw libxc.Error("CHECKPOINT in a stream restored as plain (use --checkpointed yes or auto)");
                                }

                                if (!walker.IsEmbedded)
                                {
                                    Commit(spool, _checkpointsSeen);
                                }

                                break;
                            case (RecordType)XmigEpoch.Type:
                                // xmig's replication epoch (not Xen's): handed over as it arrives, never buffered, so a
                                // capture of a replication restores here even though Xen's receiver would refuse it replayed.
                                if (!XmigEpoch.TryRead(libxc.ReadBody(), out var epoch, out var number, out var problem))
                                {
                                    throw libxc.Error("XMIG_EPOCH: " + problem);
                                }

                                _options.Observer?.Epoch(epoch, number, walker.ItemOffset);
                                break;
                            default:
                                _partial = true;
                                if (_buffering)
                                {
                                    spool.Append(libxc, _committed + 1);
                                }
                                else
                                {
                                    ProcessLibxc(libxc, replay: false);
                                }

                                break;
                        }

                        break;
                    case V2Item.LibxlRecord:
                        if (ProcessLibxl(walker, spool))
                        {
                            end = libxcEnded ? "END" : "libxl END";
                        }

                        break;
                    case V2Item.TrailingData:
                        ReadTrailing(input, kind);
                        break;
                    case V2Item.LegacyPayload:
                        return RunLegacy(input, "xl-legacy");
                }
            }

            if (_stopped)
            {
                end = Invariant($"stopped after checkpoint {_committed}, as asked");
            }
            else if (walker.EndedAtCheckpoint)
            {
                end = Invariant($"end of stream after checkpoint {_committed}");
                reason = RestoreFinishReason.Eof;
            }
        }
        catch (Exception e) when (_buffering && !_replaying && !libxcEnded && RestoreFinishReasons.IsBrokenSource(e))
        {
            // §6.4 BUFFERING: EOF, a read error, silence beyond the heartbeat (the primary is gone) or a bad record
            // is a failover to the last committed checkpoint.
            reason = RestoreFinishReasons.Classify(e, input.ReachedEnd);
            failedOffset = e is StreamFormatException f ? f.Offset : input.Position;
            if (reason == RestoreFinishReason.FormatError && e is StreamFormatException bad)
            {
                failedRecord = bad.Index >= 0 ? Invariant($"{bad.What} #{bad.Index}") : bad.What;
            }

            discarded = Invariant($"checkpoint {_committed + 1}: {e.Message}");
            end = Invariant($"failover to checkpoint {_committed} ({reason.Name()})");
            spool.Clear();
            _libxlQueue.Clear();
        }

        Complete(input.Position);
        return new RestoreResult
        {
            StreamKind = KindName(kind),
            SenderGeneration = sender,
            CheckpointsSeen = _committed + (discarded != null || _partial ? 1 : 0),
            CheckpointCommitted = _committed,
            End = end,
            FinishReason = reason,
            FinishRecord = failedRecord,
            FinishOffset = failedOffset,
            Discarded = discarded,
            VerifyMismatches = _state.VerifyMismatches,
            Warnings = [.. _state.Warnings],
        };
    }

    /// <summary>
    /// Commits checkpoint <paramref name="number"/>: applies its libxl records, then (after the first) replays its
    /// buffered libxc records. Errors here are fatal: the stream was complete, its content is bad.
    /// </summary>
    private void Commit(RecordSpool spool, int number)
    {
        _replaying = true;
        foreach (var (type, data) in _libxlQueue)
        {
            ApplyEmulatorRecord(type, data);
        }

        _libxlQueue.Clear();
        _libxlQueueBytes = 0;
        if (_buffering)
        {
            spool.Replay(reader => ProcessLibxc(reader, replay: true), number);
        }

        if (!_buffering)
        {
            StartHeartbeat();
        }

        _buffering = true;
        _committed = number;
        _partial = false;
        _replaying = false;
        _stopped = number == _options.StopAfterCheckpoint;
        _options.Observer?.Committed(number);
    }

    /// <summary>Handles a libxl record; returns true for libxl END.</summary>
    private bool ProcessLibxl(V2StreamReader walker, RecordSpool spool)
    {
        var libxl = walker.Libxl!;
        switch (libxl.Type)
        {
            case LibxlRecordType.LibxcContext:
                V2RecordChecks.EmptyBody(libxl);
                return false;
            case LibxlRecordType.End:
                V2RecordChecks.EmptyBody(libxl);
                return true;
            case LibxlRecordType.EmulatorXenstoreData:
            case LibxlRecordType.EmulatorContext:
                // v2-stream.md §7 L5, L6: HVM only; the key/value block must be well formed.
                if (_state.GuestType != GuestType.Hvm)
                {
                    throw libxl.Error("emulator record in a PV stream");
                }

                var record = libxl.ReadEmulatorRecord();
                V2RecordChecks.EmulatorId(libxl, record.EmulatorId);
                if (libxl.Type == LibxlRecordType.EmulatorXenstoreData)
                {
                    DecodeXenstore(libxl, record.Data);
                }

                if (walker.InCheckpoint)
                {
                    _libxlQueueBytes += record.Data.Length;
                    if (_libxlQueueBytes > MaxQueuedLibxlBytes)
                    {
                        throw libxl.Error(Invariant($"checkpoint {_checkpointsSeen} queues more than {MaxQueuedLibxlBytes} octets of libxl records"));
                    }

                    _libxlQueue.Add((libxl.Type, record.Data.ToArray()));
                }
                else
                {
                    ApplyEmulatorRecord(libxl.Type, record.Data.ToArray());
                }

                return false;
            case LibxlRecordType.CheckpointEnd:
                V2RecordChecks.EmptyBody(libxl);
                if (_options.Checkpointed == CheckpointedMode.No)
                {
                    throw libxl.Error("CHECKPOINT_END in a stream restored as plain");
                }

                Commit(spool, _checkpointsSeen);
                return false;
            case LibxlRecordType.CheckpointState:
                var controlId = libxl.ReadCheckpointState(); // COLO control: nothing to restore
                _options.Observer?.CheckpointState(controlId, walker.ItemOffset);
                return false;
            default:
                // §7 L3: libxl refuses every unknown record, the optional bit notwithstanding.
                throw V2RecordChecks.UnknownLibxlRecord(libxl);
        }
    }

    private void ApplyEmulatorRecord(LibxlRecordType type, byte[] data)
    {
        if (type == LibxlRecordType.EmulatorContext)
        {
            _state.SetEmulatorContext(data);
        }
        else
        {
            _state.SetEmulatorXenstore(DecodeXenstore(null, data));
        }
    }

    private static List<XenstoreEntry> DecodeXenstore(LibxlReader? reader, ReadOnlySpan<byte> data)
    {
        var pairs = XenstoreData.TryDecode(data, out var problem);
        if (pairs != null)
        {
            foreach (var (key, _) in pairs)
            {
                if (key.Length == 0 || key[0] == '/')
                {
                    problem = key.Length == 0 ? "empty key" : $"key '{key}' is not relative";
                    pairs = null;
                    break;
                }
            }
        }

        if (pairs == null)
        {
            throw reader?.Error(problem ?? "malformed") ?? new StreamFormatException("EMULATOR_XENSTORE_DATA", -1, 0, problem ?? "malformed");
        }

        return [.. pairs.Select(p => new XenstoreEntry(p.Key, p.Value))];
    }

    // v2-stream.md §9.1: a bare libxc HVM stream converted with -f libxc carries the QEMU record after END.
    private void ReadTrailing(InputBuffer input, StreamKind kind)
    {
        var offset = input.Position;
        if (kind != StreamKind.Libxc || _state.GuestType != GuestType.Hvm
            || !QemuDeviceModelRecord.TryParse(input.Peek(QemuDeviceModelRecord.HeaderSize), out var length))
        {
            return; // like Xen, nothing after the outermost END is read
        }

        if (length > MaxTrailingDeviceModel)
        {
            throw new StreamFormatException("QEMU device model record", -1, offset, Invariant($"length {length} exceeds {MaxTrailingDeviceModel}"));
        }

        input.Advance(QemuDeviceModelRecord.HeaderSize);
        var data = new byte[length];
        if (input.ReadInto(data) != data.Length)
        {
            throw new StreamFormatException("QEMU device model record", -1, offset, Invariant($"truncated: {length} octets of data expected"));
        }

        _state.SetEmulatorContext(data);
    }

    // ---- libxc records: v2-stream.md §3.5, §3.6, §7 ----

    /// <summary>
    /// Processes one libxc record whose header <paramref name="reader"/> has just read (not END or CHECKPOINT). In
    /// <paramref name="replay"/> (a committed checkpoint's buffer) unknown optional records are refused, as Xen does.
    /// </summary>
    private void ProcessLibxc(LibxcReader reader, bool replay)
    {
        var header = reader.Header;
        switch ((RecordType)header.Type)
        {
            case RecordType.PageData:
                ProcessPageData(reader);
                break;
            case RecordType.X86PvInfo:
                RequireGuest(reader, GuestType.Pv);
                if (_pvInfoSeen)
                {
                    throw reader.Error("X86_PV_INFO seen twice");
                }

                var info = reader.ReadX86PvInfo();
                V2RecordChecks.PvInfo(reader, info);
                if (!info.IsValidPair)
                {
                    throw reader.Error(Invariant($"guest_width {info.GuestWidth} with pt_levels {info.PtLevels} is not (4, 3) or (8, 4)"));
                }

                _pvInfoSeen = true;
                _state.SetGuestWidth(info.GuestWidth);
                break;
            case RecordType.X86PvP2mFrames:
                ProcessP2mFrames(reader);
                break;
            case RecordType.X86PvVcpuBasic:
            case RecordType.X86PvVcpuExtended:
            case RecordType.X86PvVcpuXsave:
            case RecordType.X86PvVcpuMsrs:
                ProcessPvVcpu(reader);
                break;
            case RecordType.SharedInfo:
                RequirePvInfo(reader);
                if (header.Length != GuestPage.Size)
                {
                    throw reader.Error(Invariant($"length {header.Length} is not 4096"));
                }

                _state.SetSharedInfo(reader.ReadBody());
                break;
            case RecordType.X86TscInfo:
                var tsc = reader.ReadX86TscInfo();
                V2RecordChecks.TscInfo(reader, tsc);
                _state.SetTscInfo(new TscInfo(tsc.Mode, tsc.Khz, tsc.Nsec, tsc.Incarnation));
                break;
            case RecordType.HvmContext:
                RequireGuest(reader, GuestType.Hvm);
                if (header.Length == 0)
                {
                    throw reader.Error("empty HVM context");
                }

                _state.SetHvmContext(reader.ReadBody());
                _hvmContextSeen = true;
                break;
            case RecordType.HvmParams:
                RequireGuest(reader, GuestType.Hvm);
                var parameters = reader.ReadHvmParams();
                V2RecordChecks.Reserved(reader, parameters.Reserved);
                for (var i = 0; i < parameters.Count; i++)
                {
                    var p = parameters[i];
                    V2RecordChecks.HvmParamIndex(reader, i, p.Index);

                    _state.SetHvmParam((uint)p.Index, p.Value);
                }

                break;
            case RecordType.X86CpuidPolicy:
            case RecordType.X86MsrPolicy:
                var unit = header.Type == (uint)RecordType.X86CpuidPolicy ? CpuidLeaf.Size : MsrEntry.Size;
                if (header.Length == 0 || header.Length % unit != 0)
                {
                    throw reader.Error(Invariant($"length {header.Length} is not a non-zero multiple of {unit}"));
                }

                var policy = reader.ReadBody();
                if (!_staticDataEnd)
                {
                    // Applied when STATIC_DATA_END is seen; later copies have no effect (§3.5.12).
                    if (unit == CpuidLeaf.Size)
                    {
                        _state.SetCpuidPolicy(policy);
                    }
                    else
                    {
                        _state.SetMsrPolicy(policy);
                    }
                }

                break;
            case RecordType.StaticDataEnd:
                V2RecordChecks.EmptyBody(reader);
                if (_staticDataEnd)
                {
                    throw reader.Error("STATIC_DATA_END seen twice");
                }

                _staticDataEnd = true;
                break;
            case RecordType.Verify:
                V2RecordChecks.EmptyBody(reader);
                _state.VerifyMode = true;
                break;
            default:
                if (header.IsOptional && !replay)
                {
                    reader.SkipBody();
                    break;
                }

                throw reader.Error(header.IsOptional
                    ? "optional record inside a buffered checkpoint (the reference receiver refuses it)"
                    : "unhandled mandatory record");
        }
    }

    // §3.5.2, §7 rows 16–21: each pfn within the bound, types defined (the reader checks), data in entry order.
    private void ProcessPageData(LibxcReader reader)
    {
        RequireStaticDataEnd(reader);
        if (_state.Domain == null)
        {
            throw reader.Error("page data before X86_PV_INFO");
        }

        var view = reader.ReadPageData();
        V2RecordChecks.PageDataHeader(reader, view.Reserved);

        // Entries are checked one by one, in order; consecutive pfns of one data-carrying type, whose pages lie
        // back to back in the record, are then written as one run.
        var page = 0;
        var runPfn = 0UL;
        var runType = PageType.XTab;
        var runFirstPage = 0;
        var runLength = 0;
        for (var i = 0; i < (int)view.Count; i++)
        {
            V2RecordChecks.PageDataEntry(reader, i, view.Entry(i));
            _anyPage = true;
            var pfn = view.Pfn(i);
            var problem = _state.CheckPfn(pfn);
            if (problem != null)
            {
                throw reader.Error(Invariant($"entry {i}: {problem}"));
            }

            var type = (PageType)view.Type(i);
            if (!type.HasData())
            {
                WriteRun(view.Pages, runPfn, runType, runFirstPage, ref runLength);
                _state.WritePage(pfn, type, default);
                continue;
            }

            if (runLength > 0 && (pfn != runPfn + (ulong)runLength || type != runType))
            {
                WriteRun(view.Pages, runPfn, runType, runFirstPage, ref runLength);
            }

            if (runLength == 0)
            {
                (runPfn, runType, runFirstPage) = (pfn, type, page);
            }

            runLength++;
            page++;
        }

        WriteRun(view.Pages, runPfn, runType, runFirstPage, ref runLength);
    }

    private void WriteRun(ReadOnlySpan<byte> pages, ulong pfn, PageType type, int firstPage, ref int length)
    {
        if (length > 0)
        {
            _state.WritePages(pfn, type, pages.Slice(firstPage * GuestPage.Size, length * GuestPage.Size));
            length = 0;
        }
    }

    // §3.5.4, §7 row 24.
    private void ProcessP2mFrames(LibxcReader reader)
    {
        RequireGuest(reader, GuestType.Pv);
        RequireStaticDataEnd(reader);
        RequirePvInfo(reader);
        var view = reader.ReadX86PvP2mFrames();
        var expected = X86PvP2mFramesView.ExpectedFrameCount(view.StartPfn, view.EndPfn, _state.GuestWidth);
        if (view.FrameCount != expected)
        {
            throw reader.Error(Invariant($"{view.FrameCount} frames for pfns {view.StartPfn}..{view.EndPfn}, expected {expected}"));
        }

        var problem = _state.DeclareP2mSize((ulong)view.EndPfn + 1);
        if (problem != null)
        {
            throw reader.Error(problem);
        }

        var frames = new ulong[view.FrameCount];
        for (var i = 0; i < frames.Length; i++)
        {
            frames[i] = view.Frame(i);
        }

        _state.SetP2mFrames(frames);
    }

    // §3.5.5, §7 row 25.
    private void ProcessPvVcpu(LibxcReader reader)
    {
        RequirePvInfo(reader);
        var type = (RecordType)reader.Header.Type;
        var view = reader.ReadX86PvVcpu();
        V2RecordChecks.Reserved(reader, view.Reserved);
        if (view.VcpuId > _options.Limits.MaxVcpuId)
        {
            throw reader.Error(Invariant($"vcpu_id {view.VcpuId} exceeds {_options.Limits.MaxVcpuId}"));
        }

        var size = view.Context.Length;
        if (size == 0)
        {
            return;
        }

        var basic = _state.GuestWidth == 8 ? X86PvVcpuView.BasicContextSize64 : X86PvVcpuView.BasicContextSize32;
        var (kind, problem) = type switch
        {
            RecordType.X86PvVcpuBasic => (VcpuContextKind.Basic, size != basic ? Invariant($"context is {size} octets, a {_state.GuestWidth * 8}-bit guest's is {basic}") : null),
            RecordType.X86PvVcpuExtended => (VcpuContextKind.Extended, size > X86PvVcpuView.ExtendedContextMax ? Invariant($"context is {size} octets, at most {X86PvVcpuView.ExtendedContextMax}") : null),
            RecordType.X86PvVcpuXsave => (VcpuContextKind.Xsave, size < X86PvVcpuView.XsaveContextMin ? Invariant($"context is {size} octets, at least {X86PvVcpuView.XsaveContextMin}") : null),
            _ => (VcpuContextKind.Msrs, size % MsrEntry.Size != 0 ? Invariant($"context is {size} octets, not a multiple of {MsrEntry.Size}") : null),
        };
        if (problem != null)
        {
            throw reader.Error(problem);
        }

        _state.SetVcpuContext((int)view.VcpuId, kind, view.Context);
    }

    // §7 row 28, §3.6: as verify, an HVM stream (or checkpoint) is complete only with HVM_CONTEXT and memory. Inside
    // a buffered checkpoint the records are still spooled, so what has been committed counts together with them.
    private void CheckHvmCompletion(LibxcReader reader)
    {
        if (_state.GuestType == GuestType.Hvm && !_buffering)
        {
            V2RecordChecks.HvmCompletion(reader, _hvmContextSeen, _anyPage);
        }
    }

    private void RequireGuest(LibxcReader reader, GuestType type)
    {
        if (_state.GuestType != type)
        {
            throw reader.Error(type == GuestType.Pv ? "PV record in an HVM stream" : "HVM record in a PV stream");
        }
    }

    private void RequirePvInfo(LibxcReader reader)
    {
        RequireGuest(reader, GuestType.Pv);
        if (!_pvInfoSeen)
        {
            throw reader.Error("no X86_PV_INFO before this record");
        }
    }

    // §3.6: v3 requires STATIC_DATA_END before PAGE_DATA and X86_PV_P2M_FRAMES; v2 infers it there.
    private void RequireStaticDataEnd(LibxcReader reader)
    {
        if (_staticDataEnd)
        {
            return;
        }

        if (_imageVersion >= 3)
        {
            throw reader.Error("no STATIC_DATA_END before this record (image version 3)");
        }

        _staticDataEnd = true;
    }
}
