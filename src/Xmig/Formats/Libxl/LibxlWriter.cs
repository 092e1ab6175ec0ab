using Xmig.Formats.Libxc;

namespace Xmig.Formats.Libxl;

// Usage (v2-stream.md §4.5 order, plain HVM):
//
//   var libxl = new LibxlWriter(output);
//   libxl.WriteHeader();
//   var libxc = libxl.BeginLibxcContext();     // LIBXC_CONTEXT, then the libxc stream on the same buffer
//   ... libxc.WriteImageHeader(); ... libxc.WriteEnd();
//   libxl.WriteEmulatorXenstoreData((uint)EmulatorId.QemuUpstream, 0, XenstoreData.Encode(pairs));
//   libxl.WriteEmulatorContext((uint)EmulatorId.QemuUpstream, 0, qemuBlob);
//   libxl.WriteEnd();

/// <summary>Writes a libxl Migration v2 stream (v2 spec §4) into an <see cref="OutputBuffer"/>, byte-exactly.</summary>
public sealed class LibxlWriter : RecordWriter
{
    /// <param name="output">Positioned where the libxl stream starts (after any xl header).</param>
    /// <param name="streamStart">Absolute position of the libxl stream start (defaults to the current one).</param>
    public LibxlWriter(OutputBuffer output, long? streamStart = null)
        : base(output, streamStart)
    {
    }

    private protected override long MaxRecordLength => uint.MaxValue;

    /// <summary>Writes a Stream Header (version 2, little-endian; <paramref name="legacy"/> sets options bit 1).</summary>
    public void WriteHeader(bool legacy = false) => WriteHeader(StreamHeader.Create(legacy));

    /// <summary>Writes <paramref name="header"/> as given.</summary>
    public void WriteHeader(StreamHeader header)
    {
        header.Write(Output.GetSpan(StreamHeader.Size));
        Output.Advance(StreamHeader.Size);
    }

    /// <summary>Writes a record of a libxl type.</summary>
    public void WriteRecord(LibxlRecordType type, ReadOnlySpan<byte> body) => WriteRecord((uint)type, body);

    /// <summary>END.</summary>
    public void WriteEnd() => WriteEmptyRecord((uint)LibxlRecordType.End);

    /// <summary>LIBXC_CONTEXT alone (the caller then writes the libxc stream).</summary>
    public void WriteLibxcContext() => WriteEmptyRecord((uint)LibxlRecordType.LibxcContext);

    /// <summary>Writes LIBXC_CONTEXT and returns a writer for the libxc stream that follows on the same buffer.</summary>
    public LibxcWriter BeginLibxcContext()
    {
        WriteLibxcContext();
        return new LibxcWriter(Output);
    }

    /// <summary>EMULATOR_XENSTORE_DATA: sub-header then the <c>key NUL value NUL</c> block (see <see cref="XenstoreData"/>).</summary>
    public void WriteEmulatorXenstoreData(uint emulatorId, uint index, ReadOnlySpan<byte> data) =>
        WriteEmulator(LibxlRecordType.EmulatorXenstoreData, emulatorId, index, data);

    /// <summary>EMULATOR_CONTEXT: sub-header then the emulator's save blob.</summary>
    public void WriteEmulatorContext(uint emulatorId, uint index, ReadOnlySpan<byte> data) =>
        WriteEmulator(LibxlRecordType.EmulatorContext, emulatorId, index, data);

    /// <summary>
    /// Starts an EMULATOR_* record whose <paramref name="dataLength"/> octets the caller streams through
    /// <see cref="RecordWriter.WriteBody"/> or <see cref="RecordWriter.Output"/>; close with
    /// <see cref="RecordWriter.EndRecord"/>.
    /// </summary>
    public void BeginEmulatorRecord(LibxlRecordType type, uint emulatorId, uint index, long dataLength)
    {
        if (type is not (LibxlRecordType.EmulatorXenstoreData or LibxlRecordType.EmulatorContext))
        {
            throw new ArgumentException($"{type} has no emulator sub-header", nameof(type));
        }

        BeginRecord((uint)type, checked((uint)(EmulatorRecordView.HeaderSize + dataLength)));
        Output.WriteUInt32LittleEndian(emulatorId);
        Output.WriteUInt32LittleEndian(index);
    }

    /// <summary>CHECKPOINT_END.</summary>
    public void WriteCheckpointEnd() => WriteEmptyRecord((uint)LibxlRecordType.CheckpointEnd);

    /// <summary>CHECKPOINT_STATE: length 4 (u32 control id) and 4 padding octets.</summary>
    public void WriteCheckpointState(uint controlId)
    {
        BeginRecord((uint)LibxlRecordType.CheckpointState, 4);
        Output.WriteUInt32LittleEndian(controlId);
        EndRecord();
    }

    private void WriteEmulator(LibxlRecordType type, uint emulatorId, uint index, ReadOnlySpan<byte> data)
    {
        BeginEmulatorRecord(type, emulatorId, index, data.Length);
        WriteBody(data);
        EndRecord();
    }
}
