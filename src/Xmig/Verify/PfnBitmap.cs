namespace Xmig.Verify;

/// <summary>
/// Counts distinct pfns with a sparse bitmap of 4 KiB chunks (32768 pfns each), allocated on first use and
/// bounded by <see cref="MaxChunks"/>; past the bound, counting stops and <see cref="Saturated"/> is set.
/// </summary>
internal sealed class PfnBitmap
{
    /// <summary>32 MiB of bits at most: 2^28 distinct pfns (1 TiB of guest memory).</summary>
    public const int MaxChunks = 8192;

    private const int ChunkShift = 15;
    private const int WordsPerChunk = (1 << ChunkShift) / 64;

    private readonly Dictionary<ulong, ulong[]> _chunks = [];
    private ulong _lastKey = ulong.MaxValue;
    private ulong[]? _last;

    public long Count { get; private set; }

    public bool Saturated { get; private set; }

    public void Add(ulong pfn)
    {
        var key = pfn >> ChunkShift;
        var chunk = key == _lastKey ? _last : Lookup(key);
        if (chunk is null)
        {
            return;
        }

        var bit = (int)(pfn & ((1 << ChunkShift) - 1));
        ref var word = ref chunk[bit >> 6];
        var mask = 1UL << (bit & 63);
        if ((word & mask) == 0)
        {
            word |= mask;
            Count++;
        }
    }

    private ulong[]? Lookup(ulong key)
    {
        if (!_chunks.TryGetValue(key, out var chunk))
        {
            if (_chunks.Count >= MaxChunks)
            {
                Saturated = true;
                return null;
            }

            chunk = new ulong[WordsPerChunk];
            _chunks.Add(key, chunk);
        }

        _lastKey = key;
        _last = chunk;
        return chunk;
    }
}
