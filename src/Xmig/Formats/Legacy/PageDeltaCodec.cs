using System.Buffers;
using System.Buffers.Binary;

namespace Xmig.Formats.Legacy;

/// <summary>
/// The Remus page-delta codec of compressed checkpoints (legacy-stream.md §5.6). One encoding per data-carrying
/// page, in entry order, over the concatenated COMPRESSED_DATA payloads of a checkpoint.
/// </summary>
/// <remarks>
/// <code>
/// first octet 0x00            page unchanged since the receiver's copy             (1 octet)
/// first octet 0x80            full page: 4096 literal octets follow                 (4097 octets)
/// otherwise                   run descriptors d until the page offset is exactly 4096:
///   n = d &amp; 0x7F words (1…127, 0 invalid), WORD = 4 octets
///   d &amp; 0x80 == 0  copy: 4·n literal octets overwrite the page at the offset
///   d &amp; 0x80 != 0  skip: the offset advances by 4·n, the receiver's octets stay
/// </code>
/// The data are the new words verbatim (the codec's own comment speaks of XOR; the octets are not XORed).
/// </remarks>
internal static class PageDeltaCodec
{
    public const byte Unchanged = 0x00;
    public const byte FullPage = 0x80;
    private const byte SkipFlag = 0x80;
    private const int WordSize = 4;
    private const int MaxRunWords = 0x7F;

    /// <summary>Longest encoding a decoder accepts (a copy of every word, in runs of 127 words).</summary>
    public const int MaxEncodedLength = GuestPage.Size + (GuestPage.Size / WordSize + MaxRunWords - 1) / MaxRunWords;

    /// <summary>Longest encoding <see cref="Encode"/> produces (it falls back to a full page).</summary>
    public const int MaxEncoderOutput = 1 + GuestPage.Size;

    /// <summary>
    /// Finds the length of the page encoding at the start of <paramref name="input"/>.
    /// <see cref="OperationStatus.NeedMoreData"/> when it continues past the end of the input;
    /// <see cref="OperationStatus.InvalidData"/> (with <paramref name="error"/>) for a zero-length run or an overshoot.
    /// </summary>
    public static OperationStatus TryMeasure(ReadOnlySpan<byte> input, out int length, out string? error)
    {
        length = 0;
        error = null;
        if (input.IsEmpty)
        {
            return OperationStatus.NeedMoreData;
        }

        switch (input[0])
        {
            case Unchanged:
                length = 1;
                return OperationStatus.Done;
            case FullPage:
                if (input.Length < 1 + GuestPage.Size)
                {
                    return OperationStatus.NeedMoreData;
                }

                length = 1 + GuestPage.Size;
                return OperationStatus.Done;
        }

        var offset = 0;
        var i = 0;
        while (offset < GuestPage.Size)
        {
            if (i >= input.Length)
            {
                return OperationStatus.NeedMoreData;
            }

            var d = input[i];
            var words = d & MaxRunWords;
            if (words == 0)
            {
                error = $"zero-length run at octet {i} of the page encoding";
                return OperationStatus.InvalidData;
            }

            offset += words * WordSize;
            if (offset > GuestPage.Size)
            {
                error = $"run at octet {i} of the page encoding overshoots the page (to offset {offset})";
                return OperationStatus.InvalidData;
            }

            i += (d & SkipFlag) != 0 ? 1 : 1 + (words * WordSize);
            if (i > input.Length)
            {
                return OperationStatus.NeedMoreData;
            }
        }

        length = i;
        return OperationStatus.Done;
    }

    /// <summary>
    /// Applies one encoding (already measured by <see cref="TryMeasure"/>) to <paramref name="page"/>, which holds
    /// the receiver's previous copy of the page.
    /// </summary>
    public static void Decode(ReadOnlySpan<byte> encoding, Span<byte> page)
    {
        if (page.Length != GuestPage.Size)
        {
            throw new ArgumentException("page must be 4096 octets", nameof(page));
        }

        switch (encoding[0])
        {
            case Unchanged:
                return;
            case FullPage:
                encoding.Slice(1, GuestPage.Size).CopyTo(page);
                return;
        }

        var offset = 0;
        var i = 0;
        while (offset < GuestPage.Size)
        {
            var d = encoding[i];
            var bytes = (d & MaxRunWords) * WordSize;
            if ((d & SkipFlag) != 0)
            {
                i++;
            }
            else
            {
                encoding.Slice(i + 1, bytes).CopyTo(page[offset..]);
                i += 1 + bytes;
            }

            offset += bytes;
        }
    }

    /// <summary>
    /// Encodes <paramref name="current"/> against <paramref name="previous"/> (empty when the receiver holds no
    /// copy, which yields a full page). Returns the octets written to <paramref name="destination"/>
    /// (at least <see cref="MaxEncoderOutput"/> long).
    /// </summary>
    public static int Encode(ReadOnlySpan<byte> previous, ReadOnlySpan<byte> current, Span<byte> destination)
    {
        if (current.Length != GuestPage.Size || (previous.Length != 0 && previous.Length != GuestPage.Size))
        {
            throw new ArgumentException("pages must be 4096 octets");
        }

        if (destination.Length < MaxEncoderOutput)
        {
            throw new ArgumentException("destination too small", nameof(destination));
        }

        if (previous.IsEmpty)
        {
            return WriteFull(current, destination);
        }

        if (previous.SequenceEqual(current))
        {
            destination[0] = Unchanged;
            return 1;
        }

        var o = 0;
        var word = 0;
        const int totalWords = GuestPage.Size / WordSize;
        while (word < totalWords)
        {
            var same = Word(previous, word) == Word(current, word);
            var run = 1;
            while (word + run < totalWords && run < MaxRunWords && (Word(previous, word + run) == Word(current, word + run)) == same)
            {
                run++;
            }

            var cost = same ? 1 : 1 + (run * WordSize);
            if (o + cost > GuestPage.Size)
            {
                // No smaller than a full page: send the page whole.
                return WriteFull(current, destination);
            }

            if (same)
            {
                destination[o++] = (byte)(SkipFlag | run);
            }
            else
            {
                destination[o++] = (byte)run;
                current.Slice(word * WordSize, run * WordSize).CopyTo(destination[o..]);
                o += run * WordSize;
            }

            word += run;
        }

        return o;
    }

    private static uint Word(ReadOnlySpan<byte> page, int index) => BinaryPrimitives.ReadUInt32LittleEndian(page[(index * WordSize)..]);

    private static int WriteFull(ReadOnlySpan<byte> current, Span<byte> destination)
    {
        destination[0] = FullPage;
        current.CopyTo(destination[1..]);
        return 1 + GuestPage.Size;
    }
}
