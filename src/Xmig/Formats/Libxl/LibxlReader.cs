using System.Buffers.Binary;

namespace Xmig.Formats.Libxl;

// Usage (v2-stream.md §4):
//
//   var reader = new LibxlReader(input);
//   reader.ReadHeader();
//   while (true)
//   {
//       var header = reader.ReadRecordHeader();            // throws "missing libxl END" at end of stream
//       if (header.Type == (uint)LibxlRecordType.LibxcContext)
//       {
//           var libxc = new LibxcReader(input);             // same buffer: the libxc stream follows directly
//           ... read libxc up to END (or CHECKPOINT), then continue here ...
//       }
//   }
//
// V2StreamReader does this nesting (and checkpoints) for you.

/// <summary>
/// Pull reader for a libxl Migration v2 stream (v2 spec §4) over an <see cref="InputBuffer"/>. The embedded
/// libxc stream after LIBXC_CONTEXT is read with a <see cref="Libxc.LibxcReader"/> on the same buffer.
/// </summary>
public sealed class LibxlReader : RecordReader
{
    /// <summary>Largest body <see cref="RecordReader.ReadBody"/> holds in memory (libxl itself has no limit).</summary>
    public const int MaxBodyInMemoryLength = 16 << 20;

    public LibxlReader(InputBuffer input, long? streamStart = null)
        : base(input, streamStart)
    {
    }

    /// <summary>The Stream Header, once read.</summary>
    public StreamHeader StreamHeader { get; private set; }

    public LibxlRecordType Type => (LibxlRecordType)Header.Type;

    private protected override string LayerName => "libxl";

    private protected override long MaxRecordLength => uint.MaxValue;

    public override string RecordName(uint type) => LibxlRecordTypes.Name(type);

    /// <summary>Reads and validates the Stream Header (v2 spec §4.1, §7 L2).</summary>
    public StreamHeader ReadHeader()
    {
        var offset = Input.Position;
        if (!Input.TryRead(StreamHeader.Size, out var bytes, out var available))
        {
            throw new StreamFormatException(
                "libxl stream header", -1, offset, Invariant($"truncated: {available} of {StreamHeader.Size} octets"));
        }

        var header = StreamHeader.Read(bytes);
        header.Validate(offset);
        StreamHeader = header;
        return header;
    }

    /// <summary>Reads the next record header; throws "missing libxl END" at a clean end of stream.</summary>
    public RecordHeader ReadRecordHeader()
    {
        if (!TryReadRecordHeader(out var header))
        {
            throw new StreamFormatException(
                "libxl stream", -1, Input.Position, Invariant($"missing libxl END: stream ends after {RecordCount} records"));
        }

        return header;
    }

    /// <summary>EMULATOR_XENSTORE_DATA / EMULATOR_CONTEXT, whole body (length ≥ 8).</summary>
    public EmulatorRecordView ReadEmulatorRecord()
    {
        RequireEmulatorHeader();
        return new EmulatorRecordView(ReadBody());
    }

    /// <summary>
    /// The emulator sub-header only; the data stays in the stream (copy it with
    /// <see cref="RecordReader.CopyBodyTo(Stream)"/> or skip it).
    /// </summary>
    public (uint EmulatorId, uint Index) ReadEmulatorHeader()
    {
        RequireEmulatorHeader();
        var head = ReadBodyPrefix(EmulatorRecordView.HeaderSize);
        return (BinaryPrimitives.ReadUInt32LittleEndian(head), BinaryPrimitives.ReadUInt32LittleEndian(head[4..]));
    }

    /// <summary>CHECKPOINT_STATE: the u32 control id (length ≥ 4, v2 spec §10 row 5).</summary>
    public uint ReadCheckpointState()
    {
        if (Header.Length < 4)
        {
            throw Error(Invariant($"length {Header.Length} is shorter than the 4-octet control id"));
        }

        return BinaryPrimitives.ReadUInt32LittleEndian(ReadBody());
    }

    private protected override int MaxBodyInMemory(uint type) => MaxBodyInMemoryLength;

    private void RequireEmulatorHeader()
    {
        if (Header.Length < EmulatorRecordView.HeaderSize)
        {
            throw Error(Invariant($"length {Header.Length} is shorter than the 8-octet emulator header"));
        }
    }
}
