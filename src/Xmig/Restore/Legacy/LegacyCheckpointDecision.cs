using System.Buffers.Binary;
using System.Net.Sockets;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.IO;

namespace Xmig.Restore.Legacy;

/// <summary>Why reading the legacy image stopped.</summary>
internal enum LegacyRestoreEnd
{
    /// <summary>The committed checkpoint carried LAST_CHECKPOINT (−9).</summary>
    LastCheckpoint,

    /// <summary>The stream ended right after a complete checkpoint.</summary>
    EndOfStream,

    /// <summary>Mode <c>no</c>: committed after the first tail; whatever follows is untouched.</summary>
    FirstTail,

    /// <summary>Mode <c>auto</c>: what follows is not a chunk; stopped before it, nothing consumed.</summary>
    NotAChunk,

    /// <summary>Mode <c>yes</c>: what follows is not a chunk; its first 4 octets were consumed, as Xen does.</summary>
    NotAChunkConsumed,

    /// <summary>A later checkpoint failed part-way and was discarded; the previous one stands.</summary>
    IncompleteCheckpoint,

    /// <summary>Nothing arrived within the heartbeat after a complete checkpoint (Xen's 1 s).</summary>
    Silence,

    /// <summary>Reading after a complete checkpoint failed (a reset connection); the checkpoint stands.</summary>
    ReadError,

    /// <summary>The checkpoint asked for (<see cref="LegacyCheckpointDecisionOptions.StopAfterCheckpoint"/>) is complete; nothing more was read.</summary>
    Requested,
}

/// <summary>Settings of <see cref="LegacyCheckpointDecision"/>.</summary>
internal sealed record LegacyCheckpointDecisionOptions
{
    public CheckpointedMode Mode { get; init; } = CheckpointedMode.Auto;

    /// <summary>
    /// Bound on every wait after the first complete checkpoint, like Xen's heartbeat (1 s, legacy §9.2): silence that
    /// long ends the stream with the last complete checkpoint. Applies when the reader's input is a
    /// <see cref="HeartbeatStream"/> that is not a regular file. Null waits indefinitely.
    /// </summary>
    public TimeSpan? Heartbeat { get; init; } = RestoreOptions.DefaultHeartbeat;

    /// <summary>Where uncommitted checkpoints are buffered (default: the temporary directory).</summary>
    public string? SpoolDirectory { get; init; }

    /// <summary>Largest checkpoint buffered before its tail completes (§11: otherwise unbounded).</summary>
    public long MaxBufferedCheckpointBytes { get; init; } = 64L << 30;

    /// <summary>Refuse TMEM/TMEM_EXTRA (a restore cannot apply them); false only reports them (inspection).</summary>
    public bool RefuseTmem { get; init; } = true;

    /// <summary>Stop once checkpoint N is committed, reading nothing more (null: decide as <see cref="Mode"/> says).</summary>
    public int? StopAfterCheckpoint { get; init; }

    /// <summary>Called after every item the reader reads (header, chunks, tail parts), before it is consumed.</summary>
    public Action<LegacyStreamReader>? Observer { get; init; }
}

/// <summary>What <see cref="LegacyCheckpointDecision.Run"/> found.</summary>
internal sealed record LegacyRestoreResult
{
    /// <summary>Checkpoints begun (including a discarded one).</summary>
    public int CheckpointsSeen { get; init; }

    /// <summary>Number of the committed (last complete) checkpoint.</summary>
    public int CheckpointsCommitted { get; init; }

    public LegacyRestoreEnd End { get; init; }

    /// <summary>The end explained in words.</summary>
    public string EndDetail { get; init; } = "";

    /// <summary>Offset just after the committed checkpoint: where the layer above continues when nothing was consumed.</summary>
    public long CommittedEndOffset { get; init; }

    /// <summary>Octets consumed after <see cref="CommittedEndOffset"/> that do not belong to a committed checkpoint.</summary>
    public long ConsumedAfterCommit { get; init; }

    /// <summary>What ended a discarded checkpoint, if anything: a bad chunk, EOF, a read error or the heartbeat.</summary>
    public Exception? DiscardedBecause { get; init; }

    /// <summary><see cref="DiscardedBecause"/> when it is a bad (or cut-short) chunk, which names the chunk and offset.</summary>
    public StreamFormatException? DiscardedRecord => DiscardedBecause as StreamFormatException;

    /// <summary>Why reading stopped.</summary>
    public RestoreFinishReason FinishReason { get; init; }

    public LegacySenderGeneration Generation { get; init; }

    public string? MinimumSenderVersion { get; init; }

    public string? MinimumSenderEvidence { get; init; }

    public bool LastCheckpointSeen { get; init; }

    public bool CompressionEnabled { get; init; }

    public IReadOnlyList<string> Diagnostics { get; init; } = [];
}

/// <summary>
/// THE checkpoint decision for legacy images: the receiver state machine of legacy-stream.md §9.3, with the end of
/// the image decided as in §10 by <see cref="CheckpointedMode"/>. States and their names follow §9.3:
/// HEADER → FIRST_BODY → FIRST_TAIL → COMMIT → [DECIDE] → NEXT_BODY → NEXT_TAIL → APPLY → COMMIT … → FINISH, or FAIL.
/// DECIDE is the step Xen does not have as such: it is where the modes differ (§10.3 rows 1–7).
/// </summary>
/// <remarks>
/// <para>Case matrix (legacy §10.3) as this machine reproduces it:</para>
/// <list type="table">
/// <item>1 old sender, plain, <c>no</c>: commit after the first tail (FirstTail). <c>auto</c>: the same, and what follows
/// (EOF, DM record, xl handshake) is left untouched.</item>
/// <item>2 new sender (−9), plain, <c>no</c>: −9 is a no-op (FirstTail). <c>auto</c>/<c>yes</c>: LastCheckpoint.</item>
/// <item>3 Remus, <c>yes</c>: buffer/commit loop; ends on EOF, silence or a failure part-way: the last complete checkpoint.</item>
/// <item>4 Remus from an old sender, <c>yes</c>: the same code path (unsupported by Xen).</item>
/// <item>5 new sender, told checkpointed (<c>yes</c>): commits after the checkpoint carrying −9.</item>
/// <item>6 old sender, told checkpointed (<c>yes</c>): works on EOF or silence; on other data Xen consumes 4 octets and
/// logs "Max batch size exceeded"; here the result says in words what was found and which mode to use.</item>
/// <item>7 Remus, told plain (<c>no</c>): commits after the first checkpoint; later checkpoints stay unread.</item>
/// </list>
/// <para>The first checkpoint is streamed into the sink (as Xen applies it directly); later checkpoints are buffered in a
/// <see cref="LegacyCheckpointSpool"/> and replayed only when their tail is complete.</para>
/// </remarks>
internal sealed class LegacyCheckpointDecision : IDisposable
{
    private readonly LegacyStreamReader _reader;
    private readonly ILegacyRestoreSink _sink;
    private readonly LegacyCheckpointDecisionOptions _options;
    private readonly LegacyCheckpointSpool _spool;
    private readonly LegacyCompressedPages _compressed = new();
    private readonly List<string> _diagnostics = [];
    private byte[] _blobBuffer = [];

    public LegacyCheckpointDecision(LegacyStreamReader reader, ILegacyRestoreSink sink, LegacyCheckpointDecisionOptions? options = null)
    {
        _reader = reader ?? throw new ArgumentNullException(nameof(reader));
        _sink = sink ?? throw new ArgumentNullException(nameof(sink));
        _options = options ?? new LegacyCheckpointDecisionOptions();
        _spool = new LegacyCheckpointSpool(_options.SpoolDirectory, () => (_reader.ChunkIndex, _reader.ItemOffset));
    }

    private enum State
    {
        Header,
        FirstBody,
        FirstTail,
        Commit,
        Decide,
        NextBody,
        NextTail,
        Apply,
        Finish,
    }

    /// <summary>Reads the image and delivers the committed checkpoints to the sink.</summary>
    /// <exception cref="StreamFormatException">The image is bad before the first checkpoint is complete (FAIL).</exception>
    /// <exception cref="LegacyUnsupportedContentException">The image carries TMEM, which cannot be restored.</exception>
    public static LegacyRestoreResult Run(LegacyStreamReader reader, ILegacyRestoreSink sink, LegacyCheckpointDecisionOptions? options = null)
    {
        using var decision = new LegacyCheckpointDecision(reader, sink, options);
        return decision.Run();
    }

    public LegacyRestoreResult Run()
    {
        var state = State.Header;
        var committed = 0;
        var committedEnd = 0L;
        var end = LegacyRestoreEnd.EndOfStream;
        var endDetail = "";
        Exception? discarded = null;
        var reason = RestoreFinishReason.End;

        while (state != State.Finish)
        {
            switch (state)
            {
                // HEADER: p2m_size; PV: extended info and p2m frame list (§4).
                case State.Header:
                    ReadHeader();
                    state = State.FirstBody;
                    break;

                // FIRST_BODY: streamed straight into the sink. Any failure before the first tail is complete ⇒ FAIL.
                case State.FirstBody:
                    _sink.BeginCheckpoint(1);
                    Failing(1, () => ReadBody(_sink));
                    state = State.FirstTail;
                    break;

                // FIRST_TAIL: the tail (HVM: including the device-model record). Failure ⇒ FAIL.
                case State.FirstTail:
                    Failing(1, () => ReadTail(_sink));
                    state = State.Commit;
                    break;

                // COMMIT: the checkpoint just completed becomes the committed state.
                case State.Commit:
                    committed = _reader.Checkpoint;
                    _sink.CommitCheckpoint(committed);
                    committedEnd = _reader.Input.Position;
                    StartHeartbeat();
                    state = State.Decide;
                    break;

                // DECIDE: finish, or read another checkpoint (§10).
                case State.Decide:
                    (state, end, endDetail) = Decide();
                    reason = end switch
                    {
                        LegacyRestoreEnd.EndOfStream => RestoreFinishReason.Eof,
                        LegacyRestoreEnd.Silence => RestoreFinishReason.HeartbeatTimeout,
                        LegacyRestoreEnd.ReadError => RestoreFinishReason.ReadError,
                        LegacyRestoreEnd.NotAChunkConsumed => RestoreFinishReason.FormatError,
                        _ => RestoreFinishReason.End,
                    };
                    break;

                // NEXT_BODY: buffered; EOF, a bad chunk or any error ⇒ FINISH with the previous checkpoint.
                case State.NextBody:
                    _reader.BeginNextCheckpoint();
                    _spool.Reset();
                    _compressed.Reset();
                    discarded = Buffering(() => ReadBody(_spool));
                    state = discarded is null ? State.NextTail : State.Finish;
                    break;

                // NEXT_TAIL: buffered; failure ⇒ FINISH with the previous checkpoint.
                case State.NextTail:
                    discarded = Buffering(() => ReadTail(_spool));
                    state = discarded is null ? State.Apply : State.Finish;
                    break;

                // APPLY: the complete checkpoint is replayed into the sink; failures here are the sink's (FAIL).
                case State.Apply:
                    _sink.BeginCheckpoint(_reader.Checkpoint);
                    _spool.Replay(_sink);
                    _spool.Reset();
                    state = State.Commit;
                    break;
            }

            if (discarded is not null)
            {
                end = LegacyRestoreEnd.IncompleteCheckpoint;
                reason = RestoreFinishReasons.Classify(discarded, _reader.Input.ReachedEnd);
                endDetail = $"checkpoint {_reader.Checkpoint} is incomplete and was discarded ({discarded.Message}); checkpoint {committed} stands";
                _spool.Reset();
                state = State.Finish;
            }
        }

        // FINISH: the caller completes the domain from the committed state (§9.5).
        _diagnostics.Add(endDetail);
        return new LegacyRestoreResult
        {
            CheckpointsSeen = _reader.Checkpoint,
            CheckpointsCommitted = committed,
            End = end,
            EndDetail = endDetail,
            CommittedEndOffset = committedEnd,
            ConsumedAfterCommit = discarded is null ? _reader.Input.Position - committedEnd : -1,
            DiscardedBecause = discarded,
            FinishReason = reason,
            Generation = _reader.Generation,
            MinimumSenderVersion = _reader.MinimumSenderVersion,
            MinimumSenderEvidence = _reader.MinimumSenderEvidence,
            LastCheckpointSeen = _reader.LastCheckpointSeen,
            CompressionEnabled = _reader.CompressionEnabled,
            Diagnostics = _diagnostics,
        };
    }

    // DECIDE (after COMMIT of checkpoint n). Returns the next state and, when finishing, why.
    private (State, LegacyRestoreEnd, string) Decide()
    {
        var n = _reader.Checkpoint;
        var at = _reader.Input.Position;
        if (n == _options.StopAfterCheckpoint)
        {
            return (State.Finish, LegacyRestoreEnd.Requested, $"stopped after checkpoint {n}, as asked; octets from 0x{at:X} on are left unread");
        }

        // Mode no (Xen's fix): the first tail ends the image, −9 or not (rows 1, 2, 7).
        if (_options.Mode == CheckpointedMode.No)
        {
            return (State.Finish, LegacyRestoreEnd.FirstTail,
                $"committed checkpoint {n} after its tail (mode no); octets from 0x{at:X} on are left unread");
        }

        // LAST_CHECKPOINT in this checkpoint: commit at once, read nothing more (rows 2, 5).
        if (_reader.LastCheckpointInThisCheckpoint)
        {
            return (State.Finish, LegacyRestoreEnd.LastCheckpoint,
                $"checkpoint {n} carried LAST_CHECKPOINT; octets from 0x{at:X} on are left unread");
        }

        // What follows the tail? Xen would wait at most 1 s (heartbeat) for it.
        var head = PeekFollowing(4, out var broken);
        if (broken is HeartbeatTimeoutException silence)
        {
            return (State.Finish, LegacyRestoreEnd.Silence,
                $"nothing arrived within {silence.Heartbeat.TotalSeconds:0.###} s after checkpoint {n}; committed it");
        }

        if (broken is not null)
        {
            return (State.Finish, LegacyRestoreEnd.ReadError,
                $"reading after checkpoint {n} failed ({broken.Message}); committed it");
        }

        if (head.Length == 0)
        {
            return (State.Finish, LegacyRestoreEnd.EndOfStream, $"the stream ends after checkpoint {n}");
        }

        var isChunk = head.Length == 4 && LooksLikeChunkHeader(head);
        if (isChunk)
        {
            return (State.NextBody, default, "");
        }

        var found = DescribeFollowing(head);
        if (_options.Mode == CheckpointedMode.Yes)
        {
            // Xen reads the octets as a chunk id and fails ("Max batch size exceeded (1970103633)" for "Qemu"),
            // then commits the previous checkpoint; the octets are lost to the layer above (rows 4, 6).
            _reader.Input.Advance(head.Length);
            var id = head.Length == 4 ? BinaryPrimitives.ReadInt32LittleEndian(head) : 0;
            return (State.Finish, LegacyRestoreEnd.NotAChunkConsumed,
                $"after checkpoint {n}, at offset 0x{at:X}, where a page batch or chunk was expected, the stream continues with {found}"
                + (head.Length == 4 ? $" (Xen reports this as \"Max batch size exceeded ({id})\")" : "")
                + $"; these {head.Length} octets were consumed, as Xen does. The stream is not checkpointed: "
                + "restore it with --checkpointed no, or auto, which stops before those octets and leaves them to the next layer");
        }

        // Mode auto: stop before the octets, leave them intact for the layer above.
        return (State.Finish, LegacyRestoreEnd.NotAChunk,
            $"after checkpoint {n} the stream continues at offset 0x{at:X} with {found}; stopped before it (left unread)");
    }

    /// <summary>
    /// A chunk header that can start a checkpoint ≥ 2: a page batch (1…1024) or a special chunk (−1…−20), but not
    /// 0 (every sender writes VCPU_INFO in each checkpoint, so a body never starts with its end) and not the start of
    /// a Migration v2 image (eight 0xFF octets, which read as −1).
    /// </summary>
    private bool LooksLikeChunkHeader(ReadOnlySpan<byte> head4)
    {
        var id = BinaryPrimitives.ReadInt32LittleEndian(head4);
        if (id == 0 || !LegacyChunk.IsValidId(id))
        {
            return false;
        }

        if (id == -1)
        {
            var eight = _reader.Input.Peek(8);
            if (eight.Length == 8 && BinaryPrimitives.ReadUInt64LittleEndian(eight) == ulong.MaxValue)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Names what a non-chunk continuation probably is.</summary>
    internal static string DescribeFollowing(ReadOnlySpan<byte> head)
    {
        var text = $"\"{LegacyStreamReader.Printable(head)}\"";
        if (head.Length < 4)
        {
            return $"{head.Length} trailing octet(s) {text}";
        }

        var what = head[..4] switch
        {
            var h when h.SequenceEqual("Qemu"u8) || h.SequenceEqual("Devi"u8) || h.SequenceEqual("Remu"u8) => "the start of a device-model record",
            var h when h.SequenceEqual("Libx"u8) => "the start of a libxl v2 stream",
            var h when h.SequenceEqual("doma"u8) || h.SequenceEqual("my c"u8) || h.SequenceEqual("xl m"u8) => "xl migration protocol text",
            var h when h.SequenceEqual("Xen "u8) => "the start of an xl header",
            var h when h.SequenceEqual("QEVM"u8) => "raw QEMU state",
            var h when BinaryPrimitives.ReadUInt32LittleEndian(h) == uint.MaxValue => "the start of a Migration v2 image",
            _ => "octets that are not a chunk",
        };
        return $"{what} {text}";
    }

    // After a complete checkpoint every wait is bounded (§9.2); silence or a broken connection ends the image there.
    private ReadOnlySpan<byte> PeekFollowing(int count, out Exception? broken)
    {
        broken = null;
        try
        {
            return _reader.PeekFollowing(count);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            broken = e;
            return default;
        }
    }

    // COMMIT: from the first complete checkpoint on, every wait for input is bounded by the heartbeat (§9.1 completed).
    private void StartHeartbeat()
    {
        if (_reader.Input.BaseStream is HeartbeatStream heartbeat && heartbeat.Heartbeat is null)
        {
            heartbeat.Heartbeat = _options.Heartbeat;
        }
    }

    // ---- reading one checkpoint into a target (the sink, or the spool) -----------------------------

    private void ReadHeader()
    {
        while (true)
        {
            var kind = _reader.Read();
            _options.Observer?.Invoke(_reader);
            if (kind == LegacyItemKind.P2mFrameList || (kind == LegacyItemKind.P2mSize && _reader.Guest == GuestType.Hvm))
            {
                break;
            }
        }

        _sink.Header(new LegacyImageInfo(
            _reader.Width,
            _reader.Guest,
            _reader.P2mSize,
            _reader.GuestWidth,
            _reader.HasVcpuBlock,
            _reader.HasExtendedVcpuContext,
            _reader.XsaveRecordSize,
            _reader.VcpuBlock.ToArray(),
            _reader.P2mFrames.ToArray()));
    }

    // FIRST_BODY / NEXT_BODY: chunks until the end-of-body 0 (R pagebuf_get_one / pagebuf_get).
    private void ReadBody(ILegacyRestoreSink target)
    {
        while (true)
        {
            var kind = _reader.Read();
            _options.Observer?.Invoke(_reader);
            switch (kind)
            {
                case LegacyItemKind.PageBatch when _reader.IsCompressedBatch:
                    _spool.BatchEntries(_reader.PageEntries);
                    _compressed.Announce(_reader.PageEntries);
                    break;
                case LegacyItemKind.PageBatch:
                    target.PageBatch(_reader.PageEntries, _reader.PageData);
                    break;
                case LegacyItemKind.Chunk:
                    ReadSpecial(target);
                    break;
                case LegacyItemKind.EndOfBody:
                    if (_reader.CompressedFormat && (_compressed.Pending != 0 || _compressed.Carry != 0))
                    {
                        throw new StreamFormatException("END_OF_BODY", _reader.ChunkIndex, _reader.ItemOffset, _compressed.Pending != 0
                            ? $"{_compressed.Pending} compressed pages announced by the batches have no data in COMPRESSED_DATA"
                            : $"{_compressed.Carry} octets of an incomplete page encoding are left over");
                    }

                    target.EndOfBody();
                    return;
                default:
                    throw new InvalidOperationException($"unexpected {kind} in a body");
            }

            if (target == _spool && _spool.Length > _options.MaxBufferedCheckpointBytes)
            {
                throw new StreamFormatException("checkpoint", _reader.Checkpoint, _reader.ItemOffset,
                    $"more than {_options.MaxBufferedCheckpointBytes} octets buffered before its tail");
            }
        }
    }

    private void ReadSpecial(ILegacyRestoreSink target)
    {
        var id = _reader.ChunkId;
        if (LegacyChunk.IsHvmParam(id))
        {
            target.HvmParam(id, _reader.HvmParamValue);
            return;
        }

        switch (id)
        {
            case LegacyChunkId.VcpuInfo:
                target.VcpuInfo(_reader.MaxVcpuId, _reader.VcpuOnlineMap);
                break;
            case LegacyChunkId.TscInfo:
                target.TscInfo(_reader.TscInfo);
                break;
            case LegacyChunkId.Toolstack:
                target.Toolstack(_reader.ReadBlobContiguous());
                break;
            case LegacyChunkId.Tmem or LegacyChunkId.TmemExtra when !_options.RefuseTmem:
                break;
            case LegacyChunkId.Tmem or LegacyChunkId.TmemExtra:
                throw new LegacyUnsupportedContentException(LegacyChunk.Name(id), _reader.ChunkIndex, _reader.ItemOffset,
                    $"transcendent memory ({_reader.Tmem.Length} octets) cannot be restored: tmem was removed from Xen and has no v2 equivalent");
            case LegacyChunkId.CompressedData:
                FeedCompressed();
                break;
            default:
                target.Marker(id);
                break;
        }
    }

    private void FeedCompressed()
    {
        if (_blobBuffer.Length == 0)
        {
            _blobBuffer = new byte[1 << 16];
        }

        int n;
        while ((n = _reader.ReadBlob(_blobBuffer)) > 0)
        {
            var problem = _compressed.Feed(_blobBuffer.AsSpan(0, n), _spool, _sink);
            if (problem is not null)
            {
                throw new StreamFormatException(LegacyChunk.Name(LegacyChunkId.CompressedData), _reader.ChunkIndex, _reader.ItemOffset, problem);
            }
        }
    }

    // FIRST_TAIL / NEXT_TAIL: PV or HVM tail (R buffer_tail), the HVM device-model record included.
    private void ReadTail(ILegacyRestoreSink target)
    {
        while (true)
        {
            var kind = _reader.Read();
            _options.Observer?.Invoke(_reader);
            switch (kind)
            {
                case LegacyItemKind.PvUnmappedPfns:
                    target.UnmappedPfns(_reader.UnmappedPfns);
                    break;
                case LegacyItemKind.PvVcpu:
                    target.PvVcpu(_reader.VcpuId, _reader.VcpuContext, _reader.VcpuExtendedContext, _reader.VcpuXsaveRecord);
                    break;
                case LegacyItemKind.PvSharedInfo:
                    target.SharedInfo(_reader.SharedInfo);
                    break;
                case LegacyItemKind.HvmMagicPfns:
                    target.HvmMagicPfns(_reader.HvmIoreqPfn, _reader.HvmBufIoreqPfn, _reader.HvmStorePfn);
                    break;
                case LegacyItemKind.HvmContext:
                    using (var blob = new LegacyBlobStream(_reader))
                    {
                        target.HvmContext(_reader.BlobLength, blob);
                    }

                    break;
                case LegacyItemKind.DeviceModelRecord:
                    using (var blob = new LegacyBlobStream(_reader))
                    {
                        target.DeviceModel(_reader.DeviceModelSignature, _reader.BlobLength, blob);
                    }

                    break;
                case LegacyItemKind.EndOfCheckpoint:
                    return;
                default:
                    throw new InvalidOperationException($"unexpected {kind} in a tail");
            }
        }
    }

    // FAIL: a failure in the streamed first checkpoint.
    private void Failing(int checkpoint, Action read)
    {
        try
        {
            read();
        }
        catch (Exception e) when (e is StreamFormatException or LegacyUnsupportedContentException)
        {
            _sink.DiscardCheckpoint(checkpoint);
            throw;
        }
    }

    // A failure while buffering checkpoint n ≥ 2 (a bad chunk, EOF, a read error, the heartbeat) discards it (§9.3
    // NEXT_BODY, NEXT_TAIL; §9.4); TMEM stays fatal.
    private static Exception? Buffering(Action read)
    {
        try
        {
            read();
            return null;
        }
        catch (Exception e) when (RestoreFinishReasons.IsBrokenSource(e) || e is EndOfStreamException)
        {
            return e;
        }
    }

    public void Dispose()
    {
        _spool.Dispose();
        _compressed.Dispose();
    }
}
