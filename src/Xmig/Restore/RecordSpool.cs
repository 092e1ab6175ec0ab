using System.Globalization;
using Xmig.Formats;
using Xmig.Formats.Libxc;

namespace Xmig.Restore;

/// <summary>
/// The libxc records of a checkpoint not yet complete (v2-stream.md §6.4, BUFFERING): appended whole (header, body,
/// padding) to a temporary file, in order, uninterpreted; replayed through the normal record processing when the
/// checkpoint commits; dropped when it does not. Memory stays bounded by one record; the file is bounded by
/// <see cref="Limit"/>. Each record keeps its index and offset in the original stream, so that an error found
/// while replaying names the record where it was received.
/// </summary>
internal sealed class RecordSpool : IDisposable
{
    private readonly string? _directory;
    private readonly List<(long Index, long Offset, long SpoolOffset)> _origins = [];
    private FileStream? _file;

    public RecordSpool(string? directory, long limit)
    {
        _directory = directory;
        Limit = limit;
    }

    /// <summary>Largest spool in octets.</summary>
    public long Limit { get; }

    /// <summary>Octets buffered.</summary>
    public long Length => _file?.Length ?? 0;

    /// <summary>Records buffered.</summary>
    public int Count => _origins.Count;

    /// <summary>
    /// Appends the current record of <paramref name="reader"/> (its header has been read, its body not) and consumes
    /// it. Throws <see cref="StreamFormatException"/> naming the record when the spool would exceed its limit.
    /// </summary>
    public void Append(LibxcReader reader, int checkpoint)
    {
        var header = reader.Header;
        var file = File();
        if (file.Length + header.WireSize > Limit)
        {
            throw reader.Error(string.Create(CultureInfo.InvariantCulture,
                $"checkpoint {checkpoint} buffers more than {Limit} octets (the restore bound)"));
        }

        _origins.Add((reader.RecordIndex, reader.RecordOffset, file.Position));
        Span<byte> head = stackalloc byte[RecordHeader.Size];
        header.Write(head);
        file.Write(head);
        reader.CopyBodyTo(file);
        Span<byte> padding = stackalloc byte[8];
        padding.Clear();
        file.Write(padding[..header.PaddingLength]);
    }

    /// <summary>
    /// Replays every buffered record in order through <paramref name="process"/>, then empties the spool. An error
    /// raised for a record is re-raised with the record's original index and offset.
    /// </summary>
    public void Replay(Action<LibxcReader> process, int checkpoint)
    {
        if (_file == null || _origins.Count == 0)
        {
            Clear();
            return;
        }

        _file.Flush();
        _file.Position = 0;
        using (var input = new InputBuffer(_file, InputBuffer.DefaultSize, leaveOpen: true))
        {
            var reader = new LibxcReader(input, streamStart: 0);
            foreach (var (index, offset, spoolOffset) in _origins)
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
                    var at = offset + Math.Max(0, e.Offset - spoolOffset);
                    throw new StreamFormatException(e.What, index, at,
                        string.Create(CultureInfo.InvariantCulture, $"{e.Detail} (committing checkpoint {checkpoint})"), e);
                }
            }
        }

        Clear();
    }

    /// <summary>Drops everything buffered.</summary>
    public void Clear()
    {
        _origins.Clear();
        if (_file != null)
        {
            _file.SetLength(0);
            _file.Position = 0;
        }
    }

    public void Dispose()
    {
        _file?.Dispose();
        _file = null;
    }

    private FileStream File() => _file ??= new FileStream(
        Path.Combine(_directory ?? Path.GetTempPath(), $".xmig-spool-{Environment.ProcessId}-{Guid.NewGuid():N}"),
        FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
}
