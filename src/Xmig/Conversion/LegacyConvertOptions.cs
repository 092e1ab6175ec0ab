using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Conversion;

/// <summary>Outer format of a converted stream (<c>-f libxc|libxl</c>).</summary>
internal enum V2OutputFormat
{
    Libxc,
    Libxl,
}

/// <summary>
/// Options of <see cref="LegacyToV2Converter"/>, those of Xen's <c>convert-legacy-stream</c> (v2-stream.md §9.2) plus
/// what xmig adds: <c>-w</c>/<c>-g</c> may be left out (detected) and checkpointed streams are converted.
/// </summary>
internal sealed record LegacyConvertOptions
{
    /// <summary><c>-w</c>: toolstack word width in octets (4 or 8); null = detect.</summary>
    public int? Width { get; init; }

    /// <summary><c>-g</c>: guest type; null = detect.</summary>
    public GuestType? Guest { get; init; }

    /// <summary><c>-f</c>.</summary>
    public V2OutputFormat Format { get; init; } = V2OutputFormat.Libxc;

    /// <summary><c>-x</c>: the input starts with an xl header (copied to the output). Detected when absent.</summary>
    public bool Xl { get; init; }

    /// <summary><c>--skip-qemu</c>: leave the HVM device-model record unread (only with libxc output).</summary>
    public bool SkipQemu { get; init; }

    /// <summary><c>--checkpointed</c>: how the end of the legacy image is decided.</summary>
    public CheckpointedMode Mode { get; init; } = CheckpointedMode.Auto;

    /// <summary><c>-v</c>: a summary of the stream is written here.</summary>
    public TextWriter? Verbose { get; init; }

    /// <summary>Where uncommitted checkpoints and page contents for compressed checkpoints are kept.</summary>
    public string? TempDirectory { get; init; }
}

/// <summary>What a conversion did.</summary>
internal sealed record LegacyConvertResult(
    int Width,
    GuestType Guest,
    string DetectionEvidence,
    LegacyRestoreResult Checkpoints,
    long BytesRead,
    long BytesWritten);
