using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace Xmig.Domains;

/// <summary>
/// Guest memory as a memory-mapped raw file: frame <c>n</c> lives at file offset <c>n × 4096</c>. The file is
/// sparse (frames never written are holes and cost no disk or memory), so a 16 GiB guest maps a 16 GiB
/// region of address space, not of RAM. Writes go straight to the page cache (a shared mapping), so other
/// tools see the file as the guest left it.
/// </summary>
internal sealed unsafe class GuestMemory : IDisposable
{
    public const int PageSize = 4096;
    public const int PageShift = 12;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SafeFileHandle? _handle;
    private byte* _base;

    private GuestMemory(MemoryMappedFile file, MemoryMappedViewAccessor view, ulong pages, bool writable, SafeFileHandle? handle)
    {
        _file = file;
        _view = view;
        _handle = handle;
        Pages = pages;
        Writable = writable;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + view.PointerOffset;
    }

    /// <summary>Frames mapped (the file is at least this many pages long).</summary>
    public ulong Pages { get; }

    public bool Writable { get; }

    /// <summary>
    /// Maps <paramref name="pages"/> frames of <paramref name="path"/>. Writable mappings extend a shorter file
    /// (with a hole); read-only mappings require the file to be at least that long.
    /// </summary>
    public static GuestMemory Map(string path, ulong pages, bool writable)
    {
        ArgumentOutOfRangeException.ThrowIfZero(pages);
        var bytes = checked((long)(pages * PageSize));
        var access = writable ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read;
        using (var stream = new FileStream(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            if (stream.Length < bytes)
            {
                if (!writable)
                {
                    throw new IOException($"{path}: {stream.Length} octets, need {bytes}");
                }

                stream.SetLength(bytes);
            }
        }

        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, bytes, access);
        try
        {
            var view = file.CreateViewAccessor(0, bytes, access);
            var handle = writable ? File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete) : null;
            return new GuestMemory(file, view, pages, writable, handle);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes whole frames from <paramref name="pfn"/> on through the file rather than the mapping: a store into a
    /// hole of a shared mapping takes a page fault and a block allocation per frame, a write goes to the page cache in
    /// one call (the mapping sees it: both are the same page cache).
    /// </summary>
    public void Write(ulong pfn, ReadOnlySpan<byte> frames)
    {
        if (_handle is null)
        {
            throw new InvalidOperationException("guest memory is mapped read-only");
        }

        if (pfn + (ulong)(frames.Length >> PageShift) > Pages || (frames.Length & (PageSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"frames beyond the {Pages} mapped frames");
        }

        RandomAccess.Write(_handle, frames, (long)(pfn << PageShift));
    }

    /// <summary>The 4096 octets of frame <paramref name="pfn"/>.</summary>
    public Span<byte> Page(ulong pfn)
    {
        if (pfn >= Pages)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"pfn beyond the {Pages} mapped frames");
        }

        ObjectDisposedException.ThrowIf(_base == null, this);
        return new Span<byte>(_base + (pfn << PageShift), PageSize);
    }

    /// <summary>Pointer to frame <paramref name="pfn"/> (no bounds check beyond a debug assertion).</summary>
    public byte* PagePointer(ulong pfn)
    {
        System.Diagnostics.Debug.Assert(pfn < Pages);
        return _base + (pfn << PageShift);
    }

    /// <summary>Pushes dirty pages of a writable mapping to the file.</summary>
    public void Flush()
    {
        if (Writable && _base != null)
        {
            _view.Flush();
        }
    }

    public void Dispose()
    {
        if (_base != null)
        {
            _base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
            _handle?.Dispose();
        }
    }
}
