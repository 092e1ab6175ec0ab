using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Xmig.Domains;

/// <summary>The canonical memory digest and how many frames went into it.</summary>
internal readonly record struct MemoryDigestResult(string Sha256, ulong Pages);

/// <summary>
/// The canonical memory digest, <c>memory_sha256</c>: SHA-256 over, for each frame holding page data, in
/// ascending pfn order, the pfn as 8 little-endian octets followed by the frame's 4096 octets. One incremental
/// hash, fed straight from mapped memory; frames without data (holes, XALLOC, BROKEN) are skipped by type,
/// zero pages that hold data are included. Nothing is allocated per page.
/// </summary>
internal static class MemoryDigest
{
    private const int Batch = 1024;

    private static readonly byte[] ZeroPage = new byte[GuestPage.Size];

    /// <summary>Digest of <paramref name="domain"/>'s memory as it is now (pause a running domain first for a stable result).</summary>
    public static MemoryDigestResult Compute(IDomain domain)
    {
        if (domain is SimulatedDomain simulated)
        {
            return Compute(simulated);
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> pfnBytes = stackalloc byte[8];
        Span<PageType> types = stackalloc PageType[Batch];
        ulong pages = 0;
        for (ulong first = 0; first < domain.P2mSize; first += Batch)
        {
            var n = (int)Math.Min(Batch, domain.P2mSize - first);
            domain.GetPageTypes(first, types[..n]);
            for (var i = 0; i < n; i++)
            {
                if (types[i].HasData())
                {
                    var pfn = first + (ulong)i;
                    BinaryPrimitives.WriteUInt64LittleEndian(pfnBytes, pfn);
                    hash.AppendData(pfnBytes);
                    hash.AppendData(domain.GetPage(pfn));
                    pages++;
                }
            }
        }

        return Finish(hash, pages);
    }

    /// <summary>
    /// Digest of a simulated domain, walking its populated bitmap word by word. A populated frame that is a hole in
    /// the memory file (a zero page never written) is hashed from a zero page rather than read through the mapping,
    /// which would allocate and clear a page of the file (the restored domain would grow by every zero page).
    /// </summary>
    public static MemoryDigestResult Compute(SimulatedDomain domain)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> pfnBytes = stackalloc byte[8];
        ReadOnlySpan<byte> zeroPage = ZeroPage;
        var populated = domain.Populated;
        var memory = domain.Memory;
        ulong pages = 0;
        (ulong Start, ulong End) data = (0, 0);
        for (var pfn = populated.NextSet(0); pfn < domain.P2mSize; pfn = populated.NextSet(pfn + 1))
        {
            if (pfn >= data.End)
            {
                data = memory.NextDataRun(pfn);
            }

            BinaryPrimitives.WriteUInt64LittleEndian(pfnBytes, pfn);
            hash.AppendData(pfnBytes);
            hash.AppendData(pfn < data.Start ? zeroPage : memory.Page(pfn));
            pages++;
        }

        return Finish(hash, pages);
    }

    private static MemoryDigestResult Finish(IncrementalHash hash, ulong pages)
    {
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return new MemoryDigestResult(Convert.ToHexStringLower(digest), pages);
    }
}
