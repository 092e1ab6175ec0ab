using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Formats.Xl;
using Xmig.Restore.Legacy;

namespace Xmig.Conversion;

/// <summary>
/// Converts a legacy libxc image (optionally inside an xl header) to a Migration v2 stream, as Xen's
/// <c>tools/python/scripts/convert-legacy-stream</c> does (v2-stream.md §9), with the same output bytes for every
/// stream Xen's converter accepts, and beyond it: detection of <c>-w</c>/<c>-g</c>, checkpointed (Remus) images
/// including compressed ones, and every validation of the legacy reader.
/// </summary>
/// <remarks>
/// The legacy reader and <see cref="LegacyCheckpointDecision"/> drive a <see cref="V2ConvertSink"/> that writes
/// through the v2 writers. Memory stays bounded: page batches pass straight from the input buffer to the output
/// buffer; later checkpoints are buffered on disk; page contents needed by compressed checkpoints are kept in the
/// input file or a sparse temporary file.
/// </remarks>
internal static class LegacyToV2Converter
{
    /// <exception cref="StreamFormatException">The input is not a valid legacy stream.</exception>
    /// <exception cref="LegacyUnsupportedContentException">The input carries content v2 cannot express (TMEM).</exception>
    public static LegacyConvertResult Convert(Stream input, Stream output, LegacyConvertOptions options)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        if (options.SkipQemu && options.Format == V2OutputFormat.Libxl)
        {
            // As Xen: --skip-qemu only takes effect with libxc output.
            options = options with { SkipQemu = false };
        }

        using var inBuffer = new InputBuffer(input);
        using var outBuffer = new OutputBuffer(output, 4 << 20);

        // xl header (legacy §3.1), copied through; with libxl output the STREAMv2 flag is set (v2 §9.1).
        var head = inBuffer.Peek(XlHeader.Size);
        if (options.Xl || XlHeader.HasMagic(head))
        {
            var xl = XlHeader.ReadLegacy(inBuffer, out var optionalData);
            options.Verbose?.WriteLine("Processed xl header");
            var flags = xl.MandatoryFlags | (options.Format == V2OutputFormat.Libxl ? (uint)XlMandatoryFlags.StreamV2 : 0);
            XlHeader.WriteTo(outBuffer, flags, xl.OptionalFlags, optionalData);
        }

        var detected = LegacyDetection.Detect(inBuffer.Peek(LegacyDetection.ProbeLength), inBuffer.Position, options.Width, options.Guest);
        if (options.Width is null || options.Guest is null)
        {
            options.Verbose?.WriteLine($"Detected: {detected.Width * 8}-bit toolstack, {(detected.Guest == GuestType.Pv ? "PV" : "HVM")} guest ({detected.Evidence})");
        }

        var readerOptions = new LegacyStreamOptions(detected.Width, detected.Guest)
        {
            DeviceModel = detected.Guest == GuestType.Hvm && !options.SkipQemu
                ? LegacyDeviceModelHandling.Required
                : LegacyDeviceModelHandling.Leave,
        };
        var reader = new LegacyStreamReader(inBuffer, readerOptions);
        var inputFile = input is FileStream { CanSeek: true } fs ? fs.SafeFileHandle : null;
        var startOffset = inBuffer.Position;
        using var sink = new V2ConvertSink(outBuffer, options, reader, () =>
            new LegacyPageStore(reader.P2mSize, inputFile, options.TempDirectory));
        var result = LegacyCheckpointDecision.Run(reader, sink, new LegacyCheckpointDecisionOptions
        {
            Mode = options.Mode,
            SpoolDirectory = options.TempDirectory,
        });
        sink.Finish();
        outBuffer.Flush();
        options.Verbose?.WriteLine($"{result.CheckpointsCommitted} checkpoint(s) converted: {result.EndDetail}");
        return new LegacyConvertResult(detected.Width, detected.Guest, detected.Evidence, result, inBuffer.Position - startOffset, outBuffer.Position);
    }
}
