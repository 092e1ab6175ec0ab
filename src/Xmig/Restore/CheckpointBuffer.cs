using System.Globalization;

namespace Xmig.Restore;

/// <summary>
/// THE buffer of a checkpoint not yet complete, for both generations (v2-stream.md §6.4 BUFFERING, §6.5;
/// legacy-stream.md §9.3 NEXT_BODY/NEXT_TAIL, §11 "buffered checkpoints"): octets appended in order and left
/// uninterpreted, held in memory up to <see cref="MemoryLimit"/>, beyond that in a temporary file deleted on close.
/// Its contents are read back (replayed) only once the checkpoint is complete, and dropped (<see cref="Clear"/>)
/// when it is not.
/// </summary>
/// <remarks>
/// Each item (a v2 record, a legacy chunk or tail part) is marked with <see cref="BeginItem"/> and keeps its index
/// and offset in the original stream, so that an error found while replaying names where the item was received
/// (<see cref="OriginAt"/>). The buffer does not refuse to grow: callers check <see cref="Length"/> against
/// <see cref="Limit"/> where they can name the record that crossed it.
/// </remarks>
internal sealed class CheckpointBuffer : IDisposable
{
    /// <summary>Default octets held in memory before spilling to a temporary file.</summary>
    public const int DefaultMemoryLimit = 4 << 20;

    private readonly string? _directory;
    private readonly List<CheckpointItemOrigin> _items = [];
    private MemoryStream? _memory;
    private FileStream? _file;
    private long _length;

    /// <param name="directory">Where the temporary file goes (default: the system temporary directory).</param>
    /// <param name="limit">Largest checkpoint in octets (see <see cref="Limit"/>).</param>
    /// <param name="memoryLimit">Octets kept in memory before the buffer moves to a temporary file.</param>
    public CheckpointBuffer(string? directory, long limit, int memoryLimit = DefaultMemoryLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(memoryLimit);
        _directory = directory;
        Limit = limit;
        MemoryLimit = memoryLimit;
    }

    /// <summary>Largest checkpoint in octets; callers refuse the item that would cross it.</summary>
    public long Limit { get; }

    public int MemoryLimit { get; }

    /// <summary>Octets buffered.</summary>
    public long Length => _length;

    /// <summary>Items buffered.</summary>
    public int Count => _items.Count;

    /// <summary>The buffered items, in order.</summary>
    public IReadOnlyList<CheckpointItemOrigin> Items => _items;

    /// <summary>True once the contents moved to a temporary file.</summary>
    public bool Spilled => _file is not null;

    /// <summary>True when <paramref name="more"/> octets would take the buffer beyond <see cref="Limit"/>.</summary>
    public bool WouldExceed(long more) => _length + more > Limit;

    /// <summary>Marks the start of an item at the current end; <paramref name="index"/> and <paramref name="offset"/> say where it arrived.</summary>
    public void BeginItem(long index, long offset) => _items.Add(new CheckpointItemOrigin(index, offset, _length));

    /// <summary>Appends octets to the current item.</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        Target(data.Length).Write(data);
        _length += data.Length;
    }

    /// <summary>Appends one octet.</summary>
    public void WriteByte(byte value) => Write([value]);

    /// <summary>Appends everything <paramref name="data"/> yields; returns the number of octets.</summary>
    public long CopyFrom(Stream data, Span<byte> scratch)
    {
        long total = 0;
        int n;
        while ((n = data.Read(scratch)) > 0)
        {
            Write(scratch[..n]);
            total += n;
        }

        return total;
    }

    /// <summary>Reads exactly <paramref name="destination"/>.Length octets at <paramref name="position"/>.</summary>
    public void ReadAt(long position, Span<byte> destination)
    {
        if (position < 0 || position + destination.Length > _length)
        {
            throw new ArgumentOutOfRangeException(nameof(position), string.Create(CultureInfo.InvariantCulture,
                $"{destination.Length} octets at {position} are beyond the {_length} buffered"));
        }

        if (_file is not null)
        {
            _file.Flush();
            var n = RandomAccess.Read(_file.SafeFileHandle, destination, position);
            if (n != destination.Length)
            {
                throw new IOException(string.Create(CultureInfo.InvariantCulture, $"checkpoint buffer: short read at {position}"));
            }

            return;
        }

        _memory!.GetBuffer().AsSpan((int)position, destination.Length).CopyTo(destination);
    }

    /// <summary>
    /// A read-only stream over the contents from the start, for replaying. Nothing may be appended while it is in
    /// use.
    /// </summary>
    public Stream OpenRead() => new Reader(this);

    /// <summary>The item that holds octet <paramref name="position"/> (null when the buffer is empty).</summary>
    public CheckpointItemOrigin? OriginAt(long position)
    {
        if (_items.Count == 0)
        {
            return null;
        }

        int lo = 0, hi = _items.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (_items[mid].Position <= position)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return _items[lo];
    }

    /// <summary>Drops everything buffered (the temporary file, if any, is kept open and emptied for the next checkpoint).</summary>
    public void Clear()
    {
        _items.Clear();
        _length = 0;
        _memory?.SetLength(0);
        _file?.SetLength(0);
        if (_file is not null)
        {
            _file.Position = 0;
        }
    }

    /// <summary>Releases the memory and closes (so deletes) the temporary file.</summary>
    public void Dispose()
    {
        _file?.Dispose();
        _file = null;
        _memory?.Dispose();
        _memory = null;
        _items.Clear();
        _length = 0;
    }

    private Stream Target(int adding)
    {
        if (_file is not null)
        {
            return _file;
        }

        _memory ??= new MemoryStream();
        if (_length + adding <= MemoryLimit)
        {
            return _memory;
        }

        _file = new FileStream(
            Path.Combine(_directory ?? Path.GetTempPath(), $".xmig-checkpoint-{Environment.ProcessId}-{Guid.NewGuid():N}"),
            FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        _file.Write(_memory.GetBuffer().AsSpan(0, (int)_memory.Length));
        _memory.Dispose();
        _memory = null;
        return _file;
    }

    private sealed class Reader(CheckpointBuffer owner) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => owner.Length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> destination)
        {
            var n = (int)Math.Min(destination.Length, owner.Length - _position);
            if (n <= 0)
            {
                return 0;
            }

            owner.ReadAt(_position, destination[..n]);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>Where a buffered item arrived in the original stream (<paramref name="Index"/>, <paramref name="Offset"/>) and where it sits in the buffer.</summary>
internal readonly record struct CheckpointItemOrigin(long Index, long Offset, long Position);
