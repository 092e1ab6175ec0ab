using System.Diagnostics;

namespace Xmig.Formats;

/// <summary>
/// Record mechanics shared by <see cref="Libxc.LibxcWriter"/> and <see cref="Libxl.LibxlWriter"/>: writes the
/// 8-octet record header, lets the caller put the body straight into the <see cref="OutputBuffer"/>, then
/// checks the body length and writes the zero padding (v2 spec §1, §3.3).
/// </summary>
/// <remarks>
/// Alignment is relative to the start of this layer's stream, which need not be 8-aligned in the file (an xl
/// header is 48 octets plus a variable block). Caller misuse (a body of the wrong length, a record begun
/// inside another) is <see cref="InvalidOperationException"/>.
/// </remarks>
public abstract class RecordWriter
{
    private long _bodyEnd = -1;
    private int _padding;

    private protected RecordWriter(OutputBuffer output, long? streamStart)
    {
        ArgumentNullException.ThrowIfNull(output);
        Output = output;
        StreamStart = streamStart ?? output.Position;
    }

    /// <summary>The buffer written to (shared with the other layer when streams are nested).</summary>
    public OutputBuffer Output { get; }

    /// <summary>Absolute position of this layer's stream start in the output.</summary>
    public long StreamStart { get; }

    /// <summary>Records written so far by this writer.</summary>
    public long RecordCount { get; private set; }

    /// <summary>True between <see cref="BeginRecord"/> and <see cref="EndRecord"/>.</summary>
    public bool InRecord => _bodyEnd >= 0;

    /// <summary>Largest body this layer may carry.</summary>
    private protected abstract long MaxRecordLength { get; }

    /// <summary>
    /// Writes a record header. The caller then writes exactly <paramref name="length"/> body octets (through
    /// <see cref="WriteBody"/> or <see cref="Output"/>) and calls <see cref="EndRecord"/>.
    /// </summary>
    public void BeginRecord(uint type, uint length)
    {
        if (InRecord)
        {
            throw new InvalidOperationException("a record is already open");
        }

        if (length > MaxRecordLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "record body exceeds the layer's limit");
        }

        if (((Output.Position - StreamStart) & 7) != 0)
        {
            throw new InvalidOperationException("record does not start on an 8-octet boundary of its stream");
        }

        new RecordHeader(type, length).Write(Output.GetSpan(RecordHeader.Size));
        Output.Advance(RecordHeader.Size);
        _bodyEnd = Output.Position + length;
        _padding = RecordHeader.PaddingFor(length);
    }

    /// <summary>Appends body octets to the open record.</summary>
    public void WriteBody(ReadOnlySpan<byte> data)
    {
        Debug.Assert(InRecord);
        if (Output.Position + data.Length > _bodyEnd)
        {
            throw new InvalidOperationException("body longer than the length in its header");
        }

        Output.Write(data);
    }

    /// <summary>Checks the body is complete and writes the zero padding.</summary>
    public void EndRecord()
    {
        if (!InRecord)
        {
            throw new InvalidOperationException("no record is open");
        }

        if (Output.Position != _bodyEnd)
        {
            throw new InvalidOperationException(
                $"body is {Output.Position - (_bodyEnd - 0)} octets off the length in its header");
        }

        Output.WriteZeros(_padding);
        _bodyEnd = -1;
        RecordCount++;
    }

    /// <summary>Writes a whole record: header, body, padding.</summary>
    public void WriteRecord(uint type, ReadOnlySpan<byte> body)
    {
        BeginRecord(type, checked((uint)body.Length));
        WriteBody(body);
        EndRecord();
    }

    /// <summary>Writes a record with an empty body.</summary>
    public void WriteEmptyRecord(uint type)
    {
        BeginRecord(type, 0);
        EndRecord();
    }
}
