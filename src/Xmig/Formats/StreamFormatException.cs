using System.Globalization;

namespace Xmig.Formats;

/// <summary>
/// The one exception a reader throws for a bad stream. It names the record (or header) that is wrong,
/// its index in its layer, and the absolute byte offset where that record starts (or where the bad field
/// is, for headers), so that the message reads like
/// <c>PAGE_DATA #12 at offset 0x1F400: count 70000 exceeds 1024</c>.
/// </summary>
public sealed class StreamFormatException : Exception
{
    public StreamFormatException(string what, long index, long offset, string detail)
        : base(Format(what, index, offset, detail))
    {
        What = what;
        Index = index;
        Offset = offset;
        Detail = detail;
    }

    public StreamFormatException(string what, long index, long offset, string detail, Exception inner)
        : base(Format(what, index, offset, detail), inner)
    {
        What = what;
        Index = index;
        Offset = offset;
        Detail = detail;
    }

    /// <summary>Record type name (<c>PAGE_DATA</c>) or structure name (<c>libxc image header</c>).</summary>
    public string What { get; }

    /// <summary>Record index within its layer, or -1 for a header.</summary>
    public long Index { get; }

    /// <summary>Absolute byte offset in the input.</summary>
    public long Offset { get; }

    /// <summary>What is wrong, without the location.</summary>
    public string Detail { get; }

    private static string Format(string what, long index, long offset, string detail) =>
        index >= 0
            ? string.Create(CultureInfo.InvariantCulture, $"{what} #{index} at offset 0x{offset:X}: {detail}")
            : string.Create(CultureInfo.InvariantCulture, $"{what} at offset 0x{offset:X}: {detail}");
}
