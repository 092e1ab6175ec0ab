using System.Numerics;
using System.Runtime.InteropServices;

namespace Xmig.Domains;

/// <summary>
/// A bitmap over guest frames in native memory (one bit per pfn, bit <c>pfn % 64</c> of word <c>pfn / 64</c>,
/// the layout of Xen's dirty bitmap). Large bitmaps are allocated lazily by the C runtime, so untouched words
/// cost no memory. Setting and taking bits can be done lock-free with <see cref="SetAtomic"/> and
/// <see cref="ReadAndClear"/>.
/// </summary>
internal sealed unsafe class NativeBitmap : IDisposable
{
    private ulong* _words;

    public NativeBitmap(ulong bits)
    {
        Bits = bits;
        WordCount = WordsFor(bits);
        _words = (ulong*)NativeMemory.AllocZeroed((nuint)Math.Max(WordCount, 1), sizeof(ulong));
    }

    /// <summary>Number of bits (frames) covered.</summary>
    public ulong Bits { get; }

    public ulong WordCount { get; }

    public static ulong WordsFor(ulong bits) => (bits + 63) / 64;

    /// <summary>The words, for bulk I/O (only for bitmaps below 2^37 bits).</summary>
    public Span<ulong> Words => new(Checked(), checked((int)WordCount));

    public bool Get(ulong bit)
    {
        Check(bit);
        return (_words[bit >> 6] & (1UL << (int)(bit & 63))) != 0;
    }

    public void Set(ulong bit)
    {
        Check(bit);
        _words[bit >> 6] |= 1UL << (int)(bit & 63);
    }

    public void Clear(ulong bit)
    {
        Check(bit);
        _words[bit >> 6] &= ~(1UL << (int)(bit & 63));
    }

    /// <summary>Sets a bit with an interlocked OR, safe against concurrent setters and <see cref="ReadAndClear"/>.</summary>
    public void SetAtomic(ulong bit)
    {
        Check(bit);
        var mask = 1UL << (int)(bit & 63);
        ref var word = ref _words[bit >> 6];
        if ((Volatile.Read(ref word) & mask) == 0)
        {
            Interlocked.Or(ref word, mask);
        }
    }

    /// <summary>
    /// Copies the first <paramref name="destination"/>.Length words (at most <see cref="WordCount"/>) into
    /// <paramref name="destination"/> and clears them, one interlocked exchange per word. Returns the number of set bits.
    /// </summary>
    public long ReadAndClear(Span<ulong> destination)
    {
        var n = (int)Math.Min((ulong)destination.Length, WordCount);
        long count = 0;
        var words = Checked();
        for (var i = 0; i < n; i++)
        {
            ref var word = ref words[i];
            var value = Volatile.Read(ref word) == 0 ? 0 : Interlocked.Exchange(ref word, 0);
            destination[i] = value;
            count += BitOperations.PopCount(value);
        }

        return count;
    }

    /// <summary>Clears every bit.</summary>
    public void ClearAll() => NativeMemory.Clear(Checked(), (nuint)(WordCount * sizeof(ulong)));

    /// <summary>Number of set bits.</summary>
    public ulong PopCount()
    {
        ulong count = 0;
        var words = Checked();
        for (ulong i = 0; i < WordCount; i++)
        {
            count += (ulong)BitOperations.PopCount(words[i]);
        }

        return count;
    }

    /// <summary>The first set bit at or after <paramref name="from"/>, or <see cref="Bits"/> when there is none.</summary>
    public ulong NextSet(ulong from)
    {
        if (from >= Bits)
        {
            return Bits;
        }

        var words = Checked();
        var index = from >> 6;
        var word = words[index] & (ulong.MaxValue << (int)(from & 63));
        while (true)
        {
            if (word != 0)
            {
                var bit = (index << 6) + (ulong)BitOperations.TrailingZeroCount(word);
                return Math.Min(bit, Bits);
            }

            if (++index >= WordCount)
            {
                return Bits;
            }

            word = words[index];
        }
    }

    /// <summary>The first clear bit at or after <paramref name="from"/>, or <see cref="Bits"/> when there is none.</summary>
    public ulong NextClear(ulong from)
    {
        if (from >= Bits)
        {
            return Bits;
        }

        var words = Checked();
        var index = from >> 6;
        var word = ~words[index] & (ulong.MaxValue << (int)(from & 63));
        while (true)
        {
            if (word != 0)
            {
                var bit = (index << 6) + (ulong)BitOperations.TrailingZeroCount(word);
                return Math.Min(bit, Bits);
            }

            if (++index >= WordCount)
            {
                return Bits;
            }

            word = ~words[index];
        }
    }

    public void Dispose()
    {
        if (_words != null)
        {
            NativeMemory.Free(_words);
            _words = null;
        }
    }

    private ulong* Checked()
    {
        ObjectDisposedException.ThrowIf(_words == null, this);
        return _words;
    }

    private void Check(ulong bit)
    {
        ObjectDisposedException.ThrowIf(_words == null, this);
        if (bit >= Bits)
        {
            throw new ArgumentOutOfRangeException(nameof(bit), bit, $"pfn beyond the bitmap's {Bits} frames");
        }
    }
}
