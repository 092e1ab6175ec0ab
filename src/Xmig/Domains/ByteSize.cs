using System.Globalization;

namespace Xmig.Domains;

/// <summary>Parses and prints sizes such as <c>4GiB</c>, <c>512MiB</c>, <c>16G</c>, <c>4096</c>.</summary>
internal static class ByteSize
{
    private static readonly (string Suffix, ulong Factor)[] Suffixes =
    [
        ("TiB", 1UL << 40), ("GiB", 1UL << 30), ("MiB", 1UL << 20), ("KiB", 1UL << 10),
        ("TB", 1UL << 40), ("GB", 1UL << 30), ("MB", 1UL << 20), ("KB", 1UL << 10),
        ("T", 1UL << 40), ("G", 1UL << 30), ("M", 1UL << 20), ("K", 1UL << 10), ("B", 1),
    ];

    /// <summary>Parses a size; binary multiples whatever the spelling (<c>4G</c> = <c>4GB</c> = <c>4GiB</c>).</summary>
    public static bool TryParse(string? text, out ulong bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var s = text.Trim();
        ulong factor = 1;
        foreach (var (suffix, f) in Suffixes)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                factor = f;
                s = s[..^suffix.Length].TrimEnd();
                break;
            }
        }

        if (!decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value < 0)
        {
            return false;
        }

        // Checked before multiplying: 99999999999999999999GiB overflows decimal itself.
        if (value > ulong.MaxValue / (decimal)factor)
        {
            return false;
        }

        var total = value * factor;
        if (total > ulong.MaxValue || total != decimal.Truncate(total))
        {
            return false;
        }

        bytes = (ulong)total;
        return true;
    }

    /// <summary>
    /// Parses a guest memory size as xl reads <c>memory =</c>: a bare number is MiB (<c>1024</c> = 1 GiB); with a suffix
    /// it is a size as <see cref="TryParse"/> reads it.
    /// </summary>
    public static bool TryParseMemory(string? text, out ulong bytes)
    {
        var s = (text ?? "").Trim();
        if (s.Length > 0 && s.All(c => char.IsAsciiDigit(c) || c == '.'))
        {
            return TryParse(s + "MiB", out bytes);
        }

        return TryParse(s, out bytes);
    }

    /// <summary>
    /// Parses a rate in octets per second: a size with an optional <c>/s</c> (<c>12MiB/s</c>, <c>64M</c>, as QEMU's
    /// <c>max-bandwidth</c>), or bits per second in decimal multiples as <c>tc</c> writes them (<c>100mbit</c>,
    /// <c>1gbit</c>, <c>500kbit</c>).
    /// </summary>
    public static bool TryParseRate(string? text, out long bytesPerSecond)
    {
        bytesPerSecond = 0;
        var s = (text ?? "").Trim();
        if (s.EndsWith("/s", StringComparison.OrdinalIgnoreCase))
        {
            s = s[..^2];
        }

        foreach (var (suffix, bits) in (ReadOnlySpan<(string, decimal)>)[("gbit", 1e9m), ("mbit", 1e6m), ("kbit", 1e3m), ("bit", 1m)])
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                if (!decimal.TryParse(s[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > 1e15m)
                {
                    return false;
                }

                bytesPerSecond = (long)Math.Max(1, decimal.Truncate(n * bits / 8));
                return true;
            }
        }

        if (!TryParse(s, out var octets) || octets == 0 || octets > long.MaxValue)
        {
            return false;
        }

        bytesPerSecond = (long)octets;
        return true;
    }

    public static string Format(ulong bytes)
    {
        foreach (var (suffix, factor) in Suffixes[..4])
        {
            if (bytes >= factor && bytes % factor == 0)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{bytes / factor}{suffix}");
            }
        }

        return string.Create(CultureInfo.InvariantCulture, $"{bytes}B");
    }
}
