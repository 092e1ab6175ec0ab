using System.Buffers;
using System.Globalization;
using Xmig.Formats;
using Xmig.Formats.Libxc;

namespace Xmig.Restore;

/// <summary>
/// The libxc records of a checkpoint not yet complete (v2-stream.md §6.4, BUFFERING), kept whole (header, body,
/// padding), in order and uninterpreted in a <see cref="CheckpointBuffer"/>; replayed through the normal record
/// processing when the checkpoint commits; dropped when it does not. Each record keeps its index and offset in the
/// original stream, so that an error found while replaying names the record where it was received.
/// </summary>
internal sealed class RecordSpool : IDisposable
{
    private readonly CheckpointBuffer _buffer;

    public RecordSpool(string? directory, long limit)
    {
        _buffer = new CheckpointBuffer(directory, limit);
    }

    /// <summary>Largest spool in octets.</summary>
    public long Limit => _buffer.Limit;

    /// <summary>Octets buffered.</summary>
    public long Length => _buffer.Length;

    /// <summary>Records buffered.</summary>
    public int Count => _buffer.Count;

    /// <summary>
    /// Appends the current record of <paramref name="reader"/> (its header has been read, its body not) and consumes
    /// it. Throws <see cref="StreamFormatException"/> naming the record when the spool would exceed its limit.
    /// </summary>
    public void Append(LibxcReader reader, int checkpoint)
    {
        var header = reader.Header;
        if (_buffer.WouldExceed(header.WireSize))
        {
            throw reader.Error(string.Create(CultureInfo.InvariantCulture,
                $"checkpoint {checkpoint} buffers more than {Limit} octets (the restore bound)"));
        }

        _buffer.BeginItem(reader.RecordIndex, reader.RecordOffset);
        Span<byte> head = stackalloc byte[RecordHeader.Size];
        header.Write(head);
        _buffer.Write(head);
        var chunk = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            var left = (long)header.Length;
            while (left > 0)
            {
                var part = chunk.AsSpan(0, (int)Math.Min(left, chunk.Length));
                reader.ReadBodyInto(part); // consumes the padding after the last part
                _buffer.Write(part);
                left -= part.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        Span<byte> padding = stackalloc byte[8];
        padding.Clear();
        _buffer.Write(padding[..header.PaddingLength]);
    }

    /// <summary>
    /// Replays every buffered record in order through <paramref name="process"/>, then empties the spool. An error
    /// raised for a record is re-raised with the record's original index and offset.
    /// </summary>
    public void Replay(Action<LibxcReader> process, int checkpoint)
    {
        if (_buffer.Count == 0)
        {
            Clear();
            return;
        }

        using (var stream = _buffer.OpenRead())
        using (var input = new InputBuffer(stream, InputBuffer.DefaultSize, leaveOpen: true))
        {
            var reader = new LibxcReader(input, streamStart: 0);
            foreach (var origin in _buffer.Items)
            {
                try
                {
                    if (!reader.TryReadRecordHeader(out _))
                    {
                        throw new InvalidOperationException("record spool is shorter than its index");
                    }

                    process(reader);
                    reader.FinishBody();
                }
                catch (StreamFormatException e)
                {
                    var at = origin.Offset + Math.Max(0, e.Offset - origin.Position);
                    throw new StreamFormatException(e.What, origin.Index, at,
                        string.Create(CultureInfo.InvariantCulture, $"{e.Detail} (committing checkpoint {checkpoint})"), e);
                }
            }
        }

        Clear();
    }

    /// <summary>Drops everything buffered.</summary>
    public void Clear() => _buffer.Clear();

    public void Dispose() => _buffer.Dispose();
}
