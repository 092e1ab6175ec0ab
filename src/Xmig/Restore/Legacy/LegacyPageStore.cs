using Microsoft.Win32.SafeHandles;

using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Restore.Legacy;

/// <summary>
/// The committed content of every page, kept for decoding compressed checkpoints (legacy-stream.md §5.6: a "skip"
/// run keeps the receiver's previous bytes). Memory holds only an index (8 octets per pfn seen, allocated in chunks);
/// page contents stay where they already are — in the input file, when it can be read at an offset — or go to a
/// sparse temporary file at <c>pfn × 4096</c>.
/// </summary>
internal sealed class LegacyPageStore : IDisposable
{
    private const int ChunkShift = 12;
    private const int ChunkLength = 1 << ChunkShift;
    private const long InTempFile = -1;

    private readonly SafeFileHandle? _input;
    private readonly string? _directory;
    private readonly long[]?[] _index;
    private FileStream? _temp;

    /// <param name="p2mSize">Number of pfns.</param>
    /// <param name="input">The input file when it can be read at offsets (pages of the streamed checkpoint stay there).</param>
    public LegacyPageStore(ulong p2mSize, SafeFileHandle? input, string? directory)
    {
        _input = input;
        _directory = directory;
        _index = new long[]?[(int)((p2mSize + ChunkLength - 1) >> ChunkShift)];
    }

    /// <summary>True when pages of the streamed checkpoint can be recorded by input offset.</summary>
    public bool CanReferToInput => _input is not null;

    /// <summary>Records that <paramref name="pfn"/>'s committed content is at <paramref name="inputOffset"/> in the input.</summary>
    public void RecordInput(uint pfn, long inputOffset) => Slot(pfn) = inputOffset + 1;

    /// <summary>Stores <paramref name="pfn"/>'s committed content.</summary>
    public void Store(uint pfn, ReadOnlySpan<byte> page)
    {
        _temp ??= new FileStream(
            Path.Combine(_directory ?? Path.GetTempPath(), $"xmig-pages-{Guid.NewGuid():N}.tmp"),
            FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        RandomAccess.Write(_temp.SafeFileHandle, page, (long)pfn * 4096);
        Slot(pfn) = InTempFile;
    }

    public bool TryRead(uint pfn, Span<byte> destination)
    {
        var chunk = _index[pfn >> ChunkShift];
        var at = chunk?[pfn & (ChunkLength - 1)] ?? 0;
        if (at == 0)
        {
            return false;
        }

        var page = destination[..4096];
        var n = at == InTempFile
            ? RandomAccess.Read(_temp!.SafeFileHandle, page, (long)pfn * 4096)
            : RandomAccess.Read(_input!, page, at - 1);
        if (n != 4096)
        {
            throw new IOException($"page store: short read of pfn 0x{pfn:X}");
        }

        return true;
    }

    public void Dispose() => _temp?.Dispose();

    private ref long Slot(uint pfn)
    {
        ref var chunk = ref _index[pfn >> ChunkShift];
        chunk ??= new long[ChunkLength];
        return ref chunk[pfn & (ChunkLength - 1)];
    }
}
