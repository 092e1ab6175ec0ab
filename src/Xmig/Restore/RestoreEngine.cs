using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.IO;

namespace Xmig.Restore;

/// <summary>
/// THE restore engine: reads any stream kind (xl, libxl, libxc v2 including checkpointed streams, and legacy) from
/// a <see cref="Stream"/> (a file, a pipe, a socket) and builds the domain through a <see cref="DomainFactory"/>.
/// Memory is written into the domain as it arrives; state is applied at completion; a checkpointed stream's
/// final image is its last complete checkpoint.
/// </summary>
/// <remarks>
/// Errors in the stream surface as <see cref="StreamFormatException"/> naming the record and offset. The engine
/// never leaves a half-built domain on its own: the caller owns the domain the factory made and discards it on
/// error (the CLI builds into a working directory and renames it only on success).
/// </remarks>
internal sealed partial class RestoreEngine
{
    private readonly RestoreOptions _options;
    private readonly RestoreState _state;
    private HeartbeatStream? _heartbeat;

    public RestoreEngine(DomainFactory factory, RestoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _options = options ?? new RestoreOptions();
        _state = new RestoreState(factory, _options);
    }

    /// <summary>The domain being (or that was) built; null until the stream said enough to create it.</summary>
    public IDomain? Domain => _state.Domain;

    /// <summary>
    /// Reads the whole stream from <paramref name="input"/> and completes the domain. After the first complete
    /// checkpoint every wait is bounded by <see cref="RestoreOptions.Heartbeat"/> (unless the input is a regular file).
    /// </summary>
    public RestoreResult Run(Stream input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var source = input as HeartbeatStream ?? new HeartbeatStream(input);
        using var buffer = new InputBuffer(source);
        return Run(buffer);
    }

    /// <summary>
    /// Reads the whole stream from <paramref name="input"/> (positioned at its start) and completes the domain. The
    /// heartbeat applies when the buffer reads from a <see cref="HeartbeatStream"/>.
    /// </summary>
    public RestoreResult Run(InputBuffer input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _heartbeat = input.BaseStream as HeartbeatStream;
        var kind = StreamDetector.Detect(input);
        try
        {
            return kind switch
            {
                StreamKind.Unknown => throw new StreamFormatException("stream", -1, input.Position, "empty input"),
                StreamKind.Legacy => RunLegacy(input, "legacy"),
                _ => RunV2(input, kind),
            };
        }
        catch (EndOfStreamException e)
        {
            // Readers report truncation themselves; this catches any primitive that did not.
            throw new StreamFormatException("stream", -1, input.Position, "truncated: " + e.Message, e);
        }
    }

    private static string KindName(StreamKind kind) => kind switch
    {
        StreamKind.Xl => "xl",
        StreamKind.Libxl => "libxl",
        StreamKind.Libxc => "libxc",
        _ => "legacy",
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>Runs stream completion, throwing at <paramref name="offset"/> when the domain cannot be completed.</summary>
    private void Complete(long offset)
    {
        var problem = _state.Complete();
        if (problem != null)
        {
            throw new StreamFormatException("stream completion", -1, offset, problem);
        }
    }

    /// <summary>From the first complete checkpoint on, every wait for input is bounded (legacy-stream.md §9.2).</summary>
    private void StartHeartbeat()
    {
        if (_heartbeat is not null)
        {
            _heartbeat.Heartbeat = _options.Heartbeat;
        }
    }

    private static GuestType ToGuestType(GuestType type) => type == GuestType.Pv ? GuestType.Pv : GuestType.Hvm;
}
