using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;

namespace Xmig.Verify;

// The xl and libxl layers: v2-stream.md §4, §5, §6.3; §7 L1-L9; §8 V2-V12b.
public sealed partial class StreamVerifier
{
    private bool _libxcContext;
    private bool _afterCheckpointEnd;

    private void OnXlHeader(V2StreamReader walker)
    {
        var h = walker.XlHeader;
        var offset = walker.ItemOffset;
        const string What = "xl header";
        _observer?.OnXlHeader(h, walker.XlOptionalData, offset);
        if (h.OptionalFlags != 0)
        {
            Warn(What, -1, offset + 40, Invariant($"optional flags 0x{h.OptionalFlags:X8} set (not understood)"));
        }

        if (h.OptionalDataLength > 0 && !XlHeader.TryGetConfig(walker.XlOptionalData, out _))
        {
            Warn(What, -1, offset + XlHeader.Size, "optional data does not hold a u32 config_len and config (xl restore would report it truncated)");
        }

        if (!h.IsStreamV2 && StreamDetector.IsLibxcMarker(_input.Peek(8)))
        {
            Warn(What, -1, offset + 36, "STREAMv2 flag clear but the payload is a libxc v2 stream (read as libxc, as verify-stream-v2 does)");
        }
    }

    private void OnLibxlHeader(V2StreamReader walker)
    {
        var reader = walker.Libxl!;
        V2RecordChecks.Begin(reader);
        var h = reader.StreamHeader;

        // V5 (V3, V4, V6 are checked by the reader).
        V2RecordChecks.LibxlHeader(h, walker.ItemOffset);

        _observer?.OnLibxlHeader(h, walker.ItemOffset);
    }

    private void OnLibxlRecord(V2StreamReader walker)
    {
        var r = walker.Libxl!;
        var h = r.Header;
        var type = h.Type;
        var afterCheckpointEnd = _afterCheckpointEnd;
        _afterCheckpointEnd = false;
        _info.Reset(RecordLayer.Libxl, r.RecordIndex, r.RecordOffset, type, r.RecordName(type), h.Length, _checkpoint);
        if (!LibxlRecordTypes.IsDefined(type))
        {
            // V7, §7 L3: the reference libxl rejects every unknown type, optional or not (as restore does).
            throw V2RecordChecks.UnknownLibxlRecord(r);
        }

        _summary.LibxlRecords[type]++;
        switch ((LibxlRecordType)type)
        {
            case LibxlRecordType.End:
                RequireEmpty(r);
                if (walker.InCheckpoint)
                {
                    throw r.Error("libxl END inside a checkpoint (before CHECKPOINT_END)");
                }

                if (!_libxcContext)
                {
                    throw r.Error("no LIBXC_CONTEXT (the stream carries no domain)");
                }

                break;
            case LibxlRecordType.LibxcContext:
                RequireEmpty(r);
                if (_libxcContext)
                {
                    throw r.Error("LIBXC_CONTEXT repeated");
                }

                _libxcContext = true;
                break;
            case LibxlRecordType.EmulatorXenstoreData:
                OnEmulatorXenstoreData(r);
                break;
            case LibxlRecordType.EmulatorContext:
                RequireEmulatorGuest(r);
                var (id, index) = r.ReadEmulatorHeader();
                CheckEmulatorId(r, id);
                _summary.EmulatorRecords++;
                _info.Add("emulator_id", id);
                _info.Add("index", index);
                _info.Add("data", h.Length - (ulong)EmulatorRecordView.HeaderSize);
                r.SkipBody();
                break;
            case LibxlRecordType.CheckpointEnd:
                // V12a; the walker has checked it closes a checkpoint (§7 L7).
                RequireEmpty(r);
                _afterCheckpointEnd = true;
                break;
            case LibxlRecordType.CheckpointState:
                // V12b, §7 L8, §10 row 5: body of at least 4 octets; in the forward stream only NEW, right after
                // CHECKPOINT_END.
                if (!afterCheckpointEnd)
                {
                    throw r.Error("CHECKPOINT_STATE not expected here (only right after CHECKPOINT_END)");
                }

                var control = r.ReadCheckpointState();
                if (control != (uint)CheckpointStateId.CheckpointNew)
                {
                    throw r.Error(Invariant($"control id {control} in the forward stream (expected 0, CHECKPOINT_NEW)"));
                }

                _info.Add("control_id", control);
                break;
        }

        _observer?.OnRecord(_info);
    }

    // V11, §7 L5: emulator id known, data NUL-terminated key/value pairs, keys relative and non-empty.
    private void OnEmulatorXenstoreData(LibxlReader r)
    {
        RequireEmulatorGuest(r);
        var view = r.ReadEmulatorRecord();
        CheckEmulatorId(r, view.EmulatorId);
        _summary.EmulatorRecords++;
        var data = view.Data;
        if (!data.IsEmpty && data[^1] != 0)
        {
            throw r.Error("xenstore data is not NUL-terminated");
        }

        var pairs = 0UL;
        var rest = data;
        while (!rest.IsEmpty)
        {
            var k = rest.IndexOf((byte)0);
            var key = rest[..k];
            rest = rest[(k + 1)..];
            if (key.IsEmpty)
            {
                throw r.Error(Invariant($"xenstore pair {pairs}: empty key"));
            }

            if (key[0] == (byte)'/')
            {
                throw r.Error(Invariant($"xenstore pair {pairs}: key is an absolute path"));
            }

            if (rest.IsEmpty)
            {
                throw r.Error(Invariant($"xenstore pair {pairs}: key without a value (odd number of strings)"));
            }

            var v = rest.IndexOf((byte)0);
            if (_detail)
            {
                _info.AddDetail(System.Text.Encoding.ASCII.GetString(key) + " = " + System.Text.Encoding.ASCII.GetString(rest[..v]));
            }

            rest = rest[(v + 1)..];
            pairs++;
        }

        _info.Add("emulator_id", view.EmulatorId);
        _info.Add("index", view.Index);
        _info.Add("pairs", pairs);
    }

    private void RequireEmulatorGuest(LibxlReader r)
    {
        if (!_guestKnown)
        {
            Warn(r, "before the libxc stream: the guest type is not known yet");
        }
        else if (_guest != GuestType.Hvm)
        {
            throw r.Error("emulator record for a PV guest (accepted only for HVM)");
        }
    }

    private static void CheckEmulatorId(LibxlReader r, uint id) => V2RecordChecks.EmulatorId(r, id);

    private void OnTrailingData(V2StreamReader walker)
    {
        var offset = walker.ItemOffset;
        uint? qemu = null;
        if (walker.Kind == StreamKind.Libxc || (walker.Libxl is null && walker.Libxc is not null))
        {
            var head = _input.Peek(QemuDeviceModelRecord.HeaderSize);
            if (QemuDeviceModelRecord.TryParse(head, out var length))
            {
                qemu = length;
                var want = QemuDeviceModelRecord.HeaderSize + (long)length;
                var skipped = Skip(want);
                if (skipped < want)
                {
                    throw new StreamFormatException("QEMU record", -1, offset, Invariant($"truncated: {length} data octets declared, {skipped - QemuDeviceModelRecord.HeaderSize} present"));
                }
            }
        }

        // Trailing octets are counted on a file, or a source that has closed; never waited for on a live pipe or socket.
        var total = _input.Position - offset;
        var extra = Skip(_input.EndIsKnowable ? long.MaxValue : _input.Buffered);
        total += extra;
        _summary.TrailingBytes = total;
        if (qemu is null || extra > 0)
        {
            Warn("stream", -1, offset + (total - extra), Invariant($"{extra} octets after the end of the stream (ignored)"));
        }

        _observer?.OnTrailingData(offset, total, qemu);
    }

    private long Skip(long count)
    {
        long skipped = 0;
        while (skipped < count)
        {
            var want = Math.Min(count - skipped, 1L << 30);
            var n = _input.Skip(want);
            skipped += n;
            if (n < want)
            {
                break;
            }
        }

        return skipped;
    }

    private void OnStreamEnd(V2StreamReader walker)
    {
        if (walker.EndedAtCheckpoint && _checkpoint == 0)
        {
            throw new StreamFormatException("stream", -1, _input.Position, "ends without END");
        }

        if (_libxcStreams == 0 && walker.Kind != StreamKind.Legacy)
        {
            throw new StreamFormatException("stream", -1, _input.Position, "no libxc stream");
        }
    }
}
