using Xmig.Formats.Xl;

namespace Xmig.Formats;

/// <summary>What a stream is, judged by its first octets (v2 spec §2, §3.1, §4.1, §5).</summary>
public enum StreamKind
{
    /// <summary>Empty input: nothing to judge.</summary>
    Unknown = 0,

    /// <summary>Not a v2 stream: a legacy (pre-4.6) libxc stream, handled by <c>Xmig.Formats.Legacy</c>.</summary>
    Legacy,

    /// <summary>A bare libxc v2 stream (Image Header first).</summary>
    Libxc,

    /// <summary>A libxl v2 stream (Stream Header first).</summary>
    Libxl,

    /// <summary>An xl save file / migration stream (xl header first).</summary>
    Xl,
}

/// <summary>The format a user asks for (<c>--format</c>); <see cref="Auto"/> detects it.</summary>
public enum StreamFormat
{
    Auto = 0,
    Xl,
    Libxl,
    Libxc,
    Legacy,
}

/// <summary>
/// Recognises xl, libxl and libxc streams by their headers; anything else is <see cref="StreamKind.Legacy"/>
/// ("not v2"), which is where the legacy reader plugs in.
/// </summary>
public static class StreamDetector
{
    /// <summary>Octets needed to decide (the xl magic is the longest signature).</summary>
    public const int HeadLength = 32;

    private static ReadOnlySpan<byte> LibxlIdent => "LibxlFmt"u8;

    /// <summary>
    /// Classifies <paramref name="head"/> (the first up to <see cref="HeadLength"/> octets). A short head that is a
    /// prefix of a v2 signature is classified as that kind, so that its reader reports the truncation.
    /// </summary>
    public static StreamKind Detect(ReadOnlySpan<byte> head)
    {
        if (head.IsEmpty)
        {
            return StreamKind.Unknown;
        }

        if (IsPrefixOrMatch(head, XlHeader.Magic))
        {
            return StreamKind.Xl;
        }

        if (IsPrefixOrMatch(head, LibxlIdent))
        {
            return StreamKind.Libxl;
        }

        var marker = head[..Math.Min(head.Length, 8)];
        return marker.IndexOfAnyExcept((byte)0xFF) < 0 ? StreamKind.Libxc : StreamKind.Legacy;
    }

    /// <summary>Classifies the stream at the buffer's position without consuming anything.</summary>
    public static StreamKind Detect(InputBuffer input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Detect(input.Peek(HeadLength));
    }

    /// <summary>Maps a user format choice to a kind, detecting when <see cref="StreamFormat.Auto"/>.</summary>
    public static StreamKind Resolve(InputBuffer input, StreamFormat format) => format switch
    {
        StreamFormat.Xl => StreamKind.Xl,
        StreamFormat.Libxl => StreamKind.Libxl,
        StreamFormat.Libxc => StreamKind.Libxc,
        StreamFormat.Legacy => StreamKind.Legacy,
        _ => Detect(input),
    };

    /// <summary>True if the first 8 octets are the libxc all-ones marker.</summary>
    public static bool IsLibxcMarker(ReadOnlySpan<byte> head) =>
        head.Length >= 8 && head[..8].IndexOfAnyExcept((byte)0xFF) < 0;

    private static bool IsPrefixOrMatch(ReadOnlySpan<byte> head, ReadOnlySpan<byte> signature) =>
        head.Length >= signature.Length ? head.StartsWith(signature) : signature.StartsWith(head);
}
