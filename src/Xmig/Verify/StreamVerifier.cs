using System.Globalization;
using Xmig.Formats;
using Xmig.Formats.Libxc;

namespace Xmig.Verify;

/// <summary>
/// Verifies a Migration v2 stream (xl, libxl or bare libxc): every check of Xen's <c>verify-stream-v2</c>
/// (v2 spec §8, V1–V43, without its Python 3 bugs and also for libxl checkpointed streams) plus the restore-side
/// validations of §7 (record order per §3.6, repeated singletons, lengths against counts, pfns within what the
/// stream declares, END present). Stops at the first violation.
/// </summary>
/// <remarks>
/// Memory is bounded: one record or page batch in the pooled buffer, plus the distinct-pfn bitmap (bounded).
/// On a seekable input the page data is skipped by seeking; only the pfn arrays are read. Nothing is allocated
/// per page. An optional <see cref="IStreamObserver"/> sees every header and record (that is how
/// <c>Xmig.Inspect</c> renders a stream).
/// </remarks>
public sealed partial class StreamVerifier
{
    /// <summary>Buffer for seekable inputs: small, so that page data is skipped by seeking.</summary>
    internal const int SeekableBufferSize = 256 << 10;

    private readonly InputBuffer _input;
    private readonly VerifyOptions _options;
    private readonly IStreamObserver? _observer;
    private readonly bool _detail;
    private readonly VerifyResult _result;
    private readonly StreamSummary _summary;
    private readonly RecordInfo _info = new();
    private readonly PfnBitmap _pfns = new();
    private readonly List<VerifyWarning> _pendingWarnings = [];

    private StreamVerifier(InputBuffer input, VerifyOptions options, IStreamObserver? observer)
    {
        _input = input;
        _options = options;
        _observer = observer;
        _detail = observer?.WantsDetail ?? false;
        _summary = new StreamSummary();
        _result = new VerifyResult(_summary);
    }

    /// <summary>Verifies the stream read from <paramref name="stream"/> (a file, a pipe, a socket).</summary>
    /// <exception cref="IOException">Reading failed (not a format problem).</exception>
    public static VerifyResult Verify(Stream stream, StreamFormat format = StreamFormat.Auto, VerifyOptions? options = null, IStreamObserver? observer = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= VerifyOptions.Default;
        var size = stream.CanSeek && options.SeekPageData ? SeekableBufferSize : InputBuffer.DefaultSize;
        using var input = new InputBuffer(stream, size);
        return Verify(input, format, options, observer);
    }

    /// <summary>Verifies the stream at the buffer's position.</summary>
    public static VerifyResult Verify(InputBuffer input, StreamFormat format = StreamFormat.Auto, VerifyOptions? options = null, IStreamObserver? observer = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        var verifier = new StreamVerifier(input, options ?? VerifyOptions.Default, observer);
        var start = input.Position;
        try
        {
            verifier.Run(format);
        }
        catch (StreamFormatException e)
        {
            verifier._result.Error = e;
        }
        finally
        {
            verifier.FlushWarnings();
        }

        verifier.FinishSummary(start);
        return verifier._result;
    }

    private void Run(StreamFormat format)
    {
        var kind = StreamDetector.Resolve(_input, format);
        _summary.Kind = kind;
        if (kind == StreamKind.Unknown)
        {
            throw new StreamFormatException("stream", -1, _input.Position, "empty input");
        }

        if (kind == StreamKind.Legacy)
        {
            VerifyLegacy();
            return;
        }

        var walker = new V2StreamReader(_input, kind);
        while (walker.Read())
        {
            switch (walker.Item)
            {
                case V2Item.XlHeader:
                    OnXlHeader(walker);
                    break;
                case V2Item.LegacyPayload:
                    VerifyLegacy();
                    return;
                case V2Item.LibxlHeader:
                    OnLibxlHeader(walker);
                    break;
                case V2Item.LibxlRecord:
                    OnLibxlRecord(walker);
                    break;
                case V2Item.LibxcImageHeader:
                    OnImageHeader(walker);
                    break;
                case V2Item.LibxcDomainHeader:
                    OnDomainHeader(walker);
                    break;
                case V2Item.LibxcRecord:
                    OnLibxcRecord(walker);
                    break;
                case V2Item.TrailingData:
                    OnTrailingData(walker);
                    break;
            }

            FlushWarnings();
        }

        _summary.EndedAtCheckpoint = walker.EndedAtCheckpoint;
        OnStreamEnd(walker);
    }

    // Hook for the legacy format (legacy-stream.md): the input, or an xl file's payload, is not a v2 stream.
    // The legacy reader plugs in here; until then the result says so and the CLI points at --format legacy.
    private void VerifyLegacy()
    {
        _summary.Kind = StreamKind.Legacy;
        _result.IsLegacy = true;
    }

    private void FinishSummary(long start)
    {
        _summary.DistinctPfns = _pfns.Count;
        _summary.DistinctPfnsSaturated = _pfns.Saturated;
        _summary.TotalBytes = _input.Position - start;
    }

    private void Warn(string what, long index, long offset, string detail)
    {
        var warning = new VerifyWarning(what, index, offset, detail);
        _result.WarningCount++;
        if (_result.Warnings.Count < _options.MaxWarnings)
        {
            _result.Warnings.Add(warning);
        }

        if (_observer is not null)
        {
            _pendingWarnings.Add(warning);
        }
    }

    // Warnings reach the observer after the header or record they are about.
    private void FlushWarnings()
    {
        if (_observer is null)
        {
            return;
        }

        foreach (var w in _pendingWarnings)
        {
            _observer.OnWarning(w);
        }

        _pendingWarnings.Clear();
    }

    private void Warn(RecordReader reader, string detail) =>
        Warn(reader.RecordName(reader.Header.Type), reader.RecordIndex, reader.RecordOffset, detail);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static void RequireEmpty(RecordReader reader) => V2RecordChecks.EmptyBody(reader);
}
