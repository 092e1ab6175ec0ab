using Microsoft.Win32.SafeHandles;
using Xmig.Domains;

namespace Xmig.Extract;

/// <summary>
/// Copies runs of a simulated domain's frames into a file, straight from the memory mapping: holes of the memory file
/// and all-zero pages are skipped (they stay holes in a sparse output), and consecutive non-zero pages go out in one
/// write of up to <see cref="MaxChunkPages"/> pages. Nothing is allocated per page.
/// </summary>
internal static unsafe class PageCopier
{
    public const int MaxChunkPages = 256;

    /// <summary>Writes frames <paramref name="first"/> … <paramref name="end"/> − 1 at <paramref name="offset"/> + (pfn − first) × 4096.</summary>
    public static void CopyRun(SimulatedDomain domain, ulong first, ulong end, SafeFileHandle output, long offset)
    {
        var memory = domain.Memory;
        var pfn = first;
        while (pfn < end)
        {
            var (dataStart, dataEnd) = memory.NextDataRun(pfn);
            if (dataStart >= end)
            {
                return;
            }

            var runEnd = Math.Min(dataEnd, end);
            var chunkStart = dataStart;
            for (var p = dataStart; p < runEnd; p++)
            {
                var zero = !memory.Page(p).ContainsAnyExcept((byte)0);
                if (zero || p - chunkStart == MaxChunkPages)
                {
                    Flush(memory, chunkStart, p, output, offset + (long)((chunkStart - first) << GuestPage.Shift));
                    chunkStart = zero ? p + 1 : p;
                }
            }

            Flush(memory, chunkStart, runEnd, output, offset + (long)((chunkStart - first) << GuestPage.Shift));
            pfn = runEnd;
        }
    }

    private static void Flush(GuestMemory memory, ulong start, ulong end, SafeFileHandle output, long offset)
    {
        if (end > start)
        {
            var bytes = new ReadOnlySpan<byte>(memory.PagePointer(start), checked((int)((end - start) << GuestPage.Shift)));
            RandomAccess.Write(output, bytes, offset);
        }
    }
}
