using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.2: PAGE_DATA.
//
//  0       4          8                 8+8C                      8+8C+4096N
//  +-------+----------+-----------------+-------------------------+
//  | count | reserved | pfn[count] (u64)| page_data[N] (4096 each)|
//  +-------+----------+-----------------+-------------------------+
//  pfn entry: bits 63-60 type nibble, 59-52 reserved, 51-0 pfn. N = entries whose type carries data.

/// <summary>Sizes and limits of PAGE_DATA (v2 spec §3.5.2).</summary>
public static class PageData
{
    /// <summary>count + reserved.</summary>
    public const int HeaderSize = 8;


    /// <summary>
    /// xmig's limit on entries per record: the reference sender's batch size (<c>MAX_BATCH_SIZE</c>). The
    /// reference receiver is bounded only by the 128 MiB record limit; xmig documents and enforces 1024.
    /// </summary>
    public const int MaxCount = 1024;

    /// <summary>Largest body xmig accepts: 1024 entries, every one with data.</summary>
    public const int MaxBodyLength = HeaderSize + (8 * MaxCount) + (GuestPage.Size * MaxCount);

    /// <summary>The exact body length for <paramref name="count"/> entries of which <paramref name="pages"/> carry data.</summary>
    public static long BodyLength(long count, long pages) => HeaderSize + (8 * count) + (GuestPage.Size * pages);

    /// <summary>Counts the entries that carry page data.</summary>
    public static int CountPages(ReadOnlySpan<ulong> entries)
    {
        var n = 0;
        foreach (var e in entries)
        {
            if (PageTypes.HasData(PageTypes.TypeOf(e)))
            {
                n++;
            }
        }

        return n;
    }
}

/// <summary>
/// A PAGE_DATA body as it sits in the read buffer: the entry array and (unless only the entries were read)
/// the page data, neither copied. Valid until the next call on the reader.
/// </summary>
public readonly ref struct PageDataView
{
    public PageDataView(uint count, uint reserved, ReadOnlySpan<byte> entries, int pageCount, ReadOnlySpan<byte> pages)
    {
        Count = count;
        Reserved = reserved;
        Entries = entries;
        PageCount = pageCount;
        Pages = pages;
    }

    /// <summary>Number of pfn entries.</summary>
    public uint Count { get; }

    /// <summary>The reserved u32 after the count.</summary>
    public uint Reserved { get; }

    /// <summary>The raw entries, 8 octets each, little-endian.</summary>
    public ReadOnlySpan<byte> Entries { get; }

    /// <summary>Entries whose type carries data (N).</summary>
    public int PageCount { get; }

    /// <summary>N × 4096 octets of page data; empty if the reader left the page data in the stream.</summary>
    public ReadOnlySpan<byte> Pages { get; }

    /// <summary>True when <see cref="Pages"/> holds the page data.</summary>
    public bool HasPages => Pages.Length == PageCount * GuestPage.Size && (PageCount > 0 || Pages.IsEmpty);

    /// <summary>The encoded entry <paramref name="i"/>.</summary>
    public ulong Entry(int i) => BinaryPrimitives.ReadUInt64LittleEndian(Entries.Slice(i * 8, 8));

    /// <summary>The pfn of entry <paramref name="i"/> (bits 51–0).</summary>
    public ulong Pfn(int i) => PageTypes.PfnOf(Entry(i));

    /// <summary>The type nibble of entry <paramref name="i"/>.</summary>
    public PageType Type(int i) => (PageType)PageTypes.TypeOf(Entry(i));

    /// <summary>Page <paramref name="k"/> of the N data pages (the k-th entry that carries data).</summary>
    public ReadOnlySpan<byte> Page(int k) => Pages.Slice(k * GuestPage.Size, GuestPage.Size);
}
