using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;

namespace Xmig.Formats;

/// <summary>What <see cref="V2StreamReader.Read"/> stopped on.</summary>
public enum V2Item
{
    None = 0,

    /// <summary>The xl header and its optional data (<see cref="V2StreamReader.XlHeader"/>).</summary>
    XlHeader,

    /// <summary>The libxl Stream Header (<see cref="V2StreamReader.Libxl"/>).</summary>
    LibxlHeader,

    /// <summary>A libxl record header; its body is pending on <see cref="V2StreamReader.Libxl"/>.</summary>
    LibxlRecord,

    /// <summary>The libxc Image Header (<see cref="V2StreamReader.Libxc"/>).</summary>
    LibxcImageHeader,

    /// <summary>The libxc Domain Header.</summary>
    LibxcDomainHeader,

    /// <summary>A libxc record header; its body is pending on <see cref="V2StreamReader.Libxc"/>.</summary>
    LibxcRecord,

    /// <summary>
    /// The payload (after an xl header without STREAMv2, or the whole input) is a legacy stream. Reading stops;
    /// the buffer is positioned at the payload for a legacy reader.
    /// </summary>
    LegacyPayload,

    /// <summary>
    /// Octets after the outermost END, at <see cref="V2StreamReader.ItemOffset"/> (not consumed). Only octets that can
    /// be seen without waiting count (<see cref="InputBuffer.HasTrailingOctets"/>): a live sender may keep its
    /// connection open after END.
    /// </summary>
    TrailingData,
}

/// <summary>
/// Walks a v2 stream through its layers (v2 spec §2): xl header → libxl → the libxc stream embedded after
/// LIBXC_CONTEXT → back to libxl after libxc END, including checkpointed streams (libxc CHECKPOINT → libxl
/// records up to CHECKPOINT_END [→ CHECKPOINT_STATE] → libxc again; §4.5, §6.3).
/// </summary>
/// <remarks>
/// <para>Each <see cref="Read"/> stops on one item. For a record, the header is read and the body is left
/// pending on <see cref="Libxc"/> or <see cref="Libxl"/>: consume it with their typed <c>Read*</c> methods,
/// <c>SkipBody</c> or <c>CopyBodyTo</c>; the next <see cref="Read"/> skips whatever is left.</para>
/// <para>The walker enforces only what it needs to find the next item: headers (via the layer readers),
/// CHECKPOINT_END only inside a checkpoint. A checkpointed stream may end (without END) where a new checkpoint
/// would start, as the reference sender's streams do; <see cref="EndedAtCheckpoint"/> then tells so.</para>
/// </remarks>
public sealed class V2StreamReader
{
    private enum State
    {
        Start,
        XlPayload,
        LibxlRecords,
        LibxcImageHeader,
        LibxcDomainHeader,
        LibxcRecords,
        AfterCheckpointEnd,
        Trailing,
        Done,
    }

    private readonly InputBuffer _input;
    private State _state;
    private bool _embedded;
    private bool _libxcMayEnd;

    /// <param name="input">Positioned at the start of the stream.</param>
    /// <param name="kind">The outermost layer; <see cref="StreamKind.Unknown"/> detects it.</param>
    public V2StreamReader(InputBuffer input, StreamKind kind = StreamKind.Unknown)
    {
        ArgumentNullException.ThrowIfNull(input);
        _input = input;
        Kind = kind == StreamKind.Unknown ? StreamDetector.Detect(input) : kind;
        if (Kind == StreamKind.Unknown)
        {
            throw new StreamFormatException("stream", -1, input.Position, "empty input");
        }
    }

    /// <summary>The outermost layer.</summary>
    public StreamKind Kind { get; }

    /// <summary>The item the last <see cref="Read"/> stopped on.</summary>
    public V2Item Item { get; private set; }

    /// <summary>Absolute offset of the current item (record header, or header start).</summary>
    public long ItemOffset { get; private set; }

    /// <summary>The buffer being walked.</summary>
    public InputBuffer Input => _input;

    /// <summary>The xl header, once read.</summary>
    public XlHeader XlHeader { get; private set; }

    /// <summary>The xl optional data block, once read.</summary>
    public byte[] XlOptionalData { get; private set; } = [];

    /// <summary>The libxl layer reader (null for bare libxc streams).</summary>
    public LibxlReader? Libxl { get; private set; }

    /// <summary>The libxc layer reader of the current (latest) libxc stream.</summary>
    public LibxcReader? Libxc { get; private set; }

    /// <summary>True while the libxc stream being read is embedded in a libxl stream.</summary>
    public bool IsEmbedded => _embedded;

    /// <summary>libxc CHECKPOINT records seen so far.</summary>
    public int Checkpoints { get; private set; }

    /// <summary>True between a libxc CHECKPOINT and the libxl CHECKPOINT_END that closes it.</summary>
    public bool InCheckpoint { get; private set; }

    /// <summary>True when the stream ended cleanly where a new checkpoint could have begun (no END).</summary>
    public bool EndedAtCheckpoint { get; private set; }

    /// <summary>Advances to the next item; false at the end.</summary>
    public bool Read()
    {
        Libxc?.FinishBody();
        Libxl?.FinishBody();
        switch (_state)
        {
            case State.Start:
                return Start();
            case State.XlPayload:
                return XlPayload();
            case State.LibxlRecords:
                return LibxlRecord(Libxl!.ReadRecordHeader());
            case State.LibxcImageHeader:
                ItemOffset = _input.Position;
                Libxc = new LibxcReader(_input);
                Libxc.ReadImageHeader();
                _state = State.LibxcDomainHeader;
                return Yield(V2Item.LibxcImageHeader);
            case State.LibxcDomainHeader:
                ItemOffset = _input.Position;
                Libxc!.ReadDomainHeader();
                _state = State.LibxcRecords;
                _libxcMayEnd = false;
                return Yield(V2Item.LibxcDomainHeader);
            case State.LibxcRecords:
                return LibxcRecord();
            case State.AfterCheckpointEnd:
                return AfterCheckpointEnd();
            case State.Trailing:
                _state = State.Done;
                ItemOffset = _input.Position;
                return HasTrailing() && Yield(V2Item.TrailingData);
            default:
                Item = V2Item.None;
                return false;
        }
    }

    // v2-stream.md §2, §9.1: reading stops at the outermost END; what follows is looked at only when it can be seen
    // without waiting on a live sender. A bare libxc HVM stream is the exception: its QEMU record follows END (as in
    // Xen's legacy conversion, read to the end of the input).
    private bool HasTrailing() =>
        Kind == StreamKind.Libxc && Libxc?.DomainHeader.GuestType == GuestType.Hvm
            ? !_input.AtEnd
            : _input.HasTrailingOctets();

    private bool Start()
    {
        ItemOffset = _input.Position;
        switch (Kind)
        {
            case StreamKind.Xl:
                XlHeader = XlHeader.ReadFrom(_input, out var optional);
                XlOptionalData = optional;
                _state = State.XlPayload;
                return Yield(V2Item.XlHeader);
            case StreamKind.Libxl:
                return StartLibxl();
            case StreamKind.Libxc:
                _embedded = false;
                _state = State.LibxcImageHeader;
                return Read();
            default:
                _state = State.Done;
                return Yield(V2Item.LegacyPayload);
        }
    }

    // v2-stream.md §5, §8 V2: STREAMv2 ⇒ libxl; otherwise a legacy payload (or, as verify-stream-v2 allows, libxc).
    private bool XlPayload()
    {
        ItemOffset = _input.Position;
        if (XlHeader.IsStreamV2)
        {
            return StartLibxl();
        }

        if (StreamDetector.IsLibxcMarker(_input.Peek(8)))
        {
            _embedded = false;
            _state = State.LibxcImageHeader;
            return Read();
        }

        _state = State.Done;
        return Yield(V2Item.LegacyPayload);
    }

    private bool StartLibxl()
    {
        ItemOffset = _input.Position;
        Libxl = new LibxlReader(_input);
        Libxl.ReadHeader();
        _state = State.LibxlRecords;
        return Yield(V2Item.LibxlHeader);
    }

    private bool LibxlRecord(RecordHeader header)
    {
        ItemOffset = Libxl!.RecordOffset;
        switch ((LibxlRecordType)header.Type)
        {
            case LibxlRecordType.LibxcContext:
                _embedded = true;
                _state = State.LibxcImageHeader;
                break;
            case LibxlRecordType.End:
                _state = State.Trailing;
                break;
            case LibxlRecordType.CheckpointEnd:
                if (!InCheckpoint)
                {
                    throw Libxl.Error("CHECKPOINT_END outside a checkpoint (no libxc CHECKPOINT before it)");
                }

                InCheckpoint = false;
                _state = State.AfterCheckpointEnd;
                break;
            case LibxlRecordType.CheckpointState when _state == State.AfterCheckpointEnd:
                _state = State.LibxcRecords;
                _libxcMayEnd = true;
                break;
        }

        return Yield(V2Item.LibxlRecord);
    }

    private bool LibxcRecord()
    {
        var libxc = Libxc!;
        RecordHeader header;
        if (_libxcMayEnd)
        {
            if (!libxc.TryReadRecordHeader(out header))
            {
                EndedAtCheckpoint = true;
                _state = State.Done;
                Item = V2Item.None;
                return false;
            }
        }
        else
        {
            header = libxc.ReadRecordHeader();
        }

        _libxcMayEnd = false;
        ItemOffset = libxc.RecordOffset;
        switch ((RecordType)header.Type)
        {
            case RecordType.End:
                _state = _embedded ? State.LibxlRecords : State.Trailing;
                break;
            case RecordType.Checkpoint:
                Checkpoints++;
                if (_embedded)
                {
                    InCheckpoint = true;
                    _state = State.LibxlRecords;
                }
                else
                {
                    _libxcMayEnd = true;
                }

                break;
        }

        return Yield(V2Item.LibxcRecord);
    }

    // v2-stream.md §6.3, §6.6: after CHECKPOINT_END comes (COLO) CHECKPOINT_STATE, the next checkpoint's libxc
    // records, or the end of the stream. CHECKPOINT_STATE (libxl type 5, body 4) is told from the libxc type 5
    // (X86_PV_VCPU_EXTENDED, body at least 8) by its length.
    private bool AfterCheckpointEnd()
    {
        var head = _input.Peek(RecordHeader.Size);
        if (head.IsEmpty)
        {
            EndedAtCheckpoint = true;
            _state = State.Done;
            Item = V2Item.None;
            return false;
        }

        if (head.Length == RecordHeader.Size)
        {
            var h = RecordHeader.Read(head);
            if (h.Type == (uint)LibxlRecordType.CheckpointState && h.Length < 8)
            {
                return LibxlRecord(Libxl!.ReadRecordHeader());
            }
        }

        _state = State.LibxcRecords;
        _libxcMayEnd = false;
        return LibxcRecord();
    }

    private bool Yield(V2Item item)
    {
        Item = item;
        return true;
    }
}
