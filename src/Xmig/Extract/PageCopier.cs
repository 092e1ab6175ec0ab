using System.Buffers;
using Microsoft.Win32.SafeHandles;
using Xmig.Domains;

namespace Xmig.Extract;

/// <summary>
/// Copies runs of a simulated domain's frames into a file, reading its memory file with pread into one pooled buffer
/// (not through the mapping, whose pages would stay resident: a 32 GiB guest would show 32 GiB of RSS). Holes of the
/// memory file and all-zero pages are skipped (they stay holes in a sparse output), and consecutive non-zero pages go
/// out in one write. Nothing is allocated per page.
/// </summary>
internal sealed class PageCopier : IDisposable
{
    public const int ChunkPages = 256;

    private readonly SimulatedDomain _domain;
    private readonly SafeFileHandle _memory;
    private byte[]? _buffer = ArrayPool<byte>.Shared.Rent(ChunkPages * GuestPage.Size);

    public PageCopier(SimulatedDomain domain)
    {
        _domain = domain;
        _memory = File.OpenHandle(Path.Combine(domain.Directory, DomainDirectory.MemoryFile), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
    }

    /// <summary>Writes frames <paramref name="first"/> … <paramref name="end"/> − 1 at <paramref name="offset"/> + (pfn − first) × 4096.</summary>
    public void CopyRun(ulong first, ulong end, SafeFileHandle output, long offset)
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(PageCopier));
        var pfn = first;
        while (pfn < end)
        {
            var (dataStart, dataEnd) = _domain.Memory.NextDataRun(pfn);
            if (dataStart >= end)
            {
                return;
            }

            var runEnd = Math.Min(dataEnd, end);
            for (var chunk = dataStart; chunk < runEnd;)
            {
                var pages = (int)Math.Min((ulong)ChunkPages, runEnd - chunk);
                var bytes = buffer.AsSpan(0, pages * GuestPage.Size);
                ReadExactly(bytes, (long)(chunk << GuestPage.Shift));
                var start = 0;
                for (var i = 0; i <= pages; i++)
                {
                    if (i == pages || !bytes.Slice(i * GuestPage.Size, GuestPage.Size).ContainsAnyExcept((byte)0))
                    {
                        if (i > start)
                        {
                            var at = offset + (long)((chunk + (ulong)start - first) << GuestPage.Shift);
                            RandomAccess.Write(output, bytes[(start * GuestPage.Size)..(i * GuestPage.Size)], at);
                        }

                        start = i + 1;
                    }
                }

                chunk += (ulong)pages;
            }

            pfn = runEnd;
        }
    }

    public void Dispose()
    {
        _memory.Dispose();
        if (_buffer != null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }

    private void ReadExactly(Span<byte> destination, long offset)
    {
        var done = 0;
        while (done < destination.Length)
        {
            var n = RandomAccess.Read(_memory, destination[done..], offset + done);
            if (n == 0)
            {
                // The memory file is p2m_size × 4096 octets (checked when the domain was opened): past its end reads zeros.
                destination[done..].Clear();
                return;
            }

            done += n;
        }
    }
}
