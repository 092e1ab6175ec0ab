using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Xmig.Domains;

/// <summary>
/// The replication digest of a guest image, <c>checkpoint_digest</c>: kept up to date page by page, so that a Remus
/// primary can name the image each checkpoint carries without reading all of memory while its guest is paused.
/// </summary>
/// <remarks>
/// <para>Definition (both ends compute the same value; <see cref="Compute"/> does it from scratch):</para>
/// <list type="bullet">
/// <item>leaf of a frame holding page data: XXH128 of its 4096 octets, as 16 little-endian octets (low half first);
/// a frame without data (hole, XTAB, XALLOC, BROKEN) has the leaf 0;</item>
/// <item>group <i>g</i> covers frames 1024·g … 1024·g + 1023: XXH128 over its 1024 leaves (16 KiB, frames past the
/// p2m size count as 0);</item>
/// <item>digest: SHA-256 over, for each group holding a non-zero leaf, in ascending order, its number (8 octets LE)
/// and its hash (16 octets LE), as lower-case hex. Empty groups do not count, so a p2m that ends in holes (an HVM
/// restore sizes its p2m by the highest pfn received) does not change the digest.</item>
/// </list>
/// <para>An update touches one leaf and marks its group; <see cref="Digest"/> rehashes only the marked groups
/// (16 KiB each) and then the group array (16 octets per 4 MiB of guest), so a checkpoint of a few hundred dirty pages
/// costs microseconds beyond hashing those pages. Nothing is allocated per page.</para>
/// </remarks>
internal sealed class CheckpointDigest : IDisposable
{
    public const int GroupFrames = 1024;

    private UInt128[] _leaves;
    private UInt128[] _groups;
    private ulong[] _stale;
    private ulong _p2mSize;

    public CheckpointDigest(ulong p2mSize)
    {
        _leaves = [];
        _groups = [];
        _stale = [];
        Resize(p2mSize);
    }

    public ulong P2mSize => _p2mSize;

    /// <summary>The digest of a domain's memory as it is now, from scratch (pause a running domain first).</summary>
    public static string Compute(IDomain domain)
    {
        using var tree = new CheckpointDigest(domain.P2mSize);
        tree.Load(domain);
        return tree.Digest();
    }

    /// <summary>Sets every leaf from <paramref name="domain"/>'s memory (grows to its p2m size).</summary>
    public void Load(IDomain domain)
    {
        Resize(domain.P2mSize);
        Array.Clear(_leaves);
        if (domain is SimulatedDomain simulated)
        {
            // Populated frames only: a hole of the memory file is a zero page, hashed without reading the mapping.
            var zero = ZeroLeaf;
            var populated = simulated.Populated;
            var memory = simulated.Memory;
            (ulong Start, ulong End) data = (0, 0);
            for (var pfn = populated.NextSet(0); pfn < domain.P2mSize; pfn = populated.NextSet(pfn + 1))
            {
                if (pfn >= data.End)
                {
                    data = memory.NextDataRun(pfn);
                }

                _leaves[pfn] = pfn < data.Start ? zero : Leaf(memory.Page(pfn));
            }
        }
        else
        {
            Span<PageType> types = stackalloc PageType[GroupFrames];
            for (ulong first = 0; first < domain.P2mSize; first += GroupFrames)
            {
                var n = (int)Math.Min(GroupFrames, domain.P2mSize - first);
                domain.GetPageTypes(first, types[..n]);
                for (var i = 0; i < n; i++)
                {
                    if (types[i].HasData())
                    {
                        _leaves[first + (ulong)i] = Leaf(domain.GetPage(first + (ulong)i));
                    }
                }
            }
        }

        Array.Fill(_stale, ulong.MaxValue);
    }

    /// <summary>Frame <paramref name="pfn"/> now holds <paramref name="page"/> (4096 octets).</summary>
    public void Set(ulong pfn, ReadOnlySpan<byte> page)
    {
        if (pfn >= _p2mSize)
        {
            Resize(pfn + 1);
        }

        _leaves[pfn] = Leaf(page);
        Mark(pfn);
    }

    /// <summary>Frame <paramref name="pfn"/> holds no data (XTAB, a hole).</summary>
    public void Clear(ulong pfn)
    {
        if (pfn < _p2mSize && _leaves[pfn] != UInt128.Zero)
        {
            _leaves[pfn] = UInt128.Zero;
            Mark(pfn);
        }
    }

    /// <summary>The digest of the image the leaves describe.</summary>
    public string Digest()
    {
        var groups = _groups.Length;
        for (var g = 0; g < groups; g++)
        {
            if ((_stale[g >> 6] & (1UL << (g & 63))) != 0)
            {
                var leaves = MemoryMarshal.AsBytes(_leaves.AsSpan(g * GroupFrames, GroupFrames));
                _groups[g] = XxHash128.HashToUInt128(leaves);
            }
        }

        Array.Clear(_stale);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> entry = stackalloc byte[24];
        var empty = EmptyGroup;
        for (var g = 0; g < groups; g++)
        {
            if (_groups[g] != empty)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(entry, (ulong)g);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt128LittleEndian(entry[8..], _groups[g]);
                sha.AppendData(entry);
            }
        }

        Span<byte> digest = stackalloc byte[32];
        sha.GetHashAndReset(digest);
        return Convert.ToHexStringLower(digest);
    }

    public void Dispose()
    {
        _leaves = [];
        _groups = [];
    }

    private static UInt128 ZeroLeaf { get; } = Leaf(new byte[GuestPage.Size]);

    private static UInt128 EmptyGroup { get; } = XxHash128.HashToUInt128(new byte[GroupFrames * 16]);

    private static UInt128 Leaf(ReadOnlySpan<byte> page) => XxHash128.HashToUInt128(page);

    private void Mark(ulong pfn)
    {
        var g = pfn / GroupFrames;
        _stale[g >> 6] |= 1UL << (int)(g & 63);
    }

    private void Resize(ulong p2mSize)
    {
        if (p2mSize > SimulatedDomain.P2mLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(p2mSize), p2mSize, "beyond the p2m sizes a domain can have");
        }

        var groups = (int)((p2mSize + GroupFrames - 1) / GroupFrames);
        if (groups > _groups.Length)
        {
            Array.Resize(ref _leaves, groups * GroupFrames);
            Array.Resize(ref _groups, groups);
            Array.Resize(ref _stale, (groups + 63) / 64);
            Array.Fill(_stale, ulong.MaxValue);
        }

        _p2mSize = Math.Max(_p2mSize, p2mSize);
    }
}
