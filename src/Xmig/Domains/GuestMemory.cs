using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Xmig.Domains;

/// <summary>
/// Guest memory as a memory-mapped raw file: frame <c>n</c> lives at file offset <c>n × 4096</c>. The file is
/// sparse (frames never written are holes and cost no disk or memory), so a 16 GiB guest maps a 16 GiB
/// region of address space, not of RAM. Writes go straight to the page cache (a shared mapping), so other
/// tools see the file as the guest left it.
/// </summary>
/// <remarks>
/// The mapping is made with mmap(2) itself, not through <c>MemoryMappedFile</c>: disposing a .NET view accessor
/// msyncs its whole range with <c>MS_SYNC</c>, which on a disk-backed directory wrote a received guest's memory to disk
/// synchronously inside a migration's downtime (400 ms for 64 MiB). The page cache already holds every write, so the
/// file is complete for any reader once it is unmapped; <see cref="Flush"/> is there for a caller that wants it on disk.
/// </remarks>
internal sealed unsafe partial class GuestMemory : IDisposable
{

    private readonly SafeFileHandle? _handle;
    private readonly SafeFileHandle _extents;
    private readonly nuint _length;
    private byte* _base;

    private GuestMemory(byte* mapping, nuint length, ulong pages, bool writable, SafeFileHandle? handle, SafeFileHandle extents)
    {
        _base = mapping;
        _length = length;
        _handle = handle;
        _extents = extents;
        Pages = pages;
        Writable = writable;
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

        SafeFileHandle? handle = null;
        var extents = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        try
        {
            handle = writable ? File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete) : null;
            var mapped = Mmap((handle ?? extents).DangerousGetHandle(), (nuint)bytes, writable);
            if (mapped is null)
            {
                throw new IOException($"{path}: cannot map {bytes} octets: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }

            return new GuestMemory(mapped, (nuint)bytes, pages, writable, handle, extents);
        }
        catch
        {
            handle?.Dispose();
            extents.Dispose();
            throw;
        }
    }

    private static byte* Mmap(nint fd, nuint length, bool writable)
    {
        const int protRead = 1, protWrite = 2, mapShared = 1;
        var p = MMap(null, length, writable ? protRead | protWrite : protRead, mapShared, (int)fd, 0);
        return p == (void*)-1 ? null : (byte*)p;
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

    /// <summary>Writes the mapping's dirty pages to disk and waits for it (msync <c>MS_SYNC</c>).</summary>
    public void Flush()
    {
        const int msSync = 4;
        if (Writable && _base != null && MSync(_base, _length, msSync) != 0)
        {
            throw new IOException($"msync: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
    }

    public void Dispose()
    {
        if (_base != null)
        {
            MUnmap(_base, _length);
            _base = null;
            _handle?.Dispose();
            _extents.Dispose();
        }
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* MMap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int MUnmap(void* address, nuint length);

    [LibraryImport("libc", EntryPoint = "msync", SetLastError = true)]
    private static partial int MSync(void* address, nuint length, int flags);
}
