using Xmig.Formats;

namespace Xmig.Verify;

/// <summary>Options of <see cref="StreamVerifier"/>.</summary>
public sealed record VerifyOptions
{
    public static VerifyOptions Default { get; } = new();

    /// <summary>On a seekable input, skip page data by seeking (only the pfn arrays are read).</summary>
    public bool SeekPageData { get; init; } = true;

    /// <summary>Warnings kept in <see cref="VerifyResult.Warnings"/> (the rest are only counted).</summary>
    public int MaxWarnings { get; init; } = 100;
}

/// <summary>The outcome of verifying one stream.</summary>
public sealed class VerifyResult
{
    internal VerifyResult(StreamSummary summary) => Summary = summary;

    /// <summary>True when the stream is a valid v2 stream.</summary>
    public bool IsValid => Error is null && !IsLegacy;

    /// <summary>The first violation found (verification stops there).</summary>
    public StreamFormatException? Error { get; internal set; }

    /// <summary>
    /// The input (or an xl file's payload) is a legacy stream, which this verifier does not handle: the caller
    /// should point at <c>--format legacy</c>.
    /// </summary>
    public bool IsLegacy { get; internal set; }

    public List<VerifyWarning> Warnings { get; } = [];

    /// <summary>All warnings, including those not kept.</summary>
    public long WarningCount { get; internal set; }

    public StreamSummary Summary { get; }
}
