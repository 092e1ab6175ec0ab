using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Xmig.Domains;

/// <summary>
/// Guest memory as a memory-mapped raw file: frame <c>n</c> lives at file offset <c>n × 4096</c>. The file is
/// sparse (frames never written are holes and cost no disk or memory), so a 16 GiB guest maps a 16 GiB
/// region of address space, not of RAM. Writes go straight to the page cache (a shared mapping), so other
/// tools see the file as the guest left it.
/// </summary>
internal sealed unsafe partial class GuestMemory : IDisposable
{

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SafeFileHandle? _handle;
    private readonly SafeFileHandle _extents;
    private byte* _base;

    private GuestMemory(MemoryMappedFile file, MemoryMappedViewAccessor view, ulong pages, bool writable, SafeFileHandle? handle, SafeFileHandle extents)
    {
        _file = file;
        _view = view;
        _handle = handle;
        _extents = extents;
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
        var bytes = checked((long)(pages * GuestPage.Size));
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
            var extents = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            return new GuestMemory(file, view, pages, writable, handle, extents);
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

        if (pfn + (ulong)(frames.Length >> GuestPage.Shift) > Pages || (frames.Length & (GuestPage.Size - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"frames beyond the {Pages} mapped frames");
        }

        RandomAccess.Write(_handle, frames, (long)(pfn << GuestPage.Shift));
    }

    /// <summary>The 4096 octets of frame <paramref name="pfn"/>.</summary>
    public Span<byte> Page(ulong pfn)
    {
        if (pfn >= Pages)
        {
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"pfn beyond the {Pages} mapped frames");
        }

        ObjectDisposedException.ThrowIf(_base == null, this);
        return new Span<byte>(_base + (pfn << GuestPage.Shift), GuestPage.Size);
    }

    /// <summary>Pointer to frame <paramref name="pfn"/> (no bounds check beyond a debug assertion).</summary>
    public byte* PagePointer(ulong pfn)
    {
        System.Diagnostics.Debug.Assert(pfn < Pages);
        return _base + (pfn << GuestPage.Shift);
    }

    /// <summary>
    /// The first frame at or after <paramref name="pfn"/> that the file holds (is not a hole), and the first hole
    /// after it: <c>[Start, End)</c> is one run of allocated frames. Returns <c>(Pages, Pages)</c> when only holes
    /// follow. A hole reads as zeros, but reading it through a shared mapping allocates and clears a page (tmpfs),
    /// so readers that only need the content (the digest) take zeros for it instead. Where the file system cannot
    /// tell (no SEEK_DATA), everything counts as data.
    /// </summary>
    public (ulong Start, ulong End) NextDataRun(ulong pfn)
    {
        if (pfn >= Pages)
        {
            return (Pages, Pages);
        }

        var start = Seek(pfn, SeekData);
        if (start < 0)
        {
            // ENXIO: no data at or after the offset. Anything else: the file system cannot say; treat all as data.
            return Marshal.GetLastPInvokeError() == Enxio ? (Pages, Pages) : (pfn, Pages);
        }

        // Rounded outwards: a frame only partly allocated (blocks smaller than a page) counts as data.
        var startPfn = (ulong)start >> GuestPage.Shift;
        if (startPfn >= Pages)
        {
            return (Pages, Pages);
        }

        var end = Seek(startPfn, SeekHole);
        var endPfn = end < 0 ? Pages : Math.Min(((ulong)end + GuestPage.Size - 1) >> GuestPage.Shift, Pages);
        return (startPfn, Math.Max(endPfn, startPfn + 1));
    }

    private long Seek(ulong pfn, int whence)
    {
        var added = false;
        _extents.DangerousAddRef(ref added);
        try
        {
            return LSeek((int)_extents.DangerousGetHandle(), (long)(pfn << GuestPage.Shift), whence);
        }
        finally
        {
            if (added)
            {
                _extents.DangerousRelease();
            }
        }
    }

    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int Enxio = 6;

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);

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
            _extents.Dispose();
        }
    }
}
