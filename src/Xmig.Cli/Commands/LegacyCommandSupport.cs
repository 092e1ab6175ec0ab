using System.CommandLine;
using System.Globalization;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Inspect;
using Xmig.Restore;

namespace Xmig.Cli.Commands;

/// <summary>
/// Legacy (pre-v2) inputs for <c>inspect</c> and <c>verify</c>: <c>--format legacy</c>, or auto-detection where it
/// is unambiguous (an xl header with STREAMv2 clear, or octets from which width and guest type are detected), with
/// <c>-w</c>/<c>-g</c> for streams that do not show them and <c>--checkpointed</c> for the end of the image.
/// </summary>
internal sealed class LegacyCommandSupport
{
    private readonly Option<string?> _width = new("--width", "-w") { Description = "Legacy streams: toolstack bitness (32|64); detected when absent." };
    private readonly Option<string?> _guest = new("--guest-type", "-g") { Description = "Legacy streams: guest type (pv|hvm); detected when absent." };
    private readonly Option<string> _checkpointed = new("--checkpointed") { Description = "Legacy streams: checkpointed (Remus)? no|yes|auto.", DefaultValueFactory = _ => "auto" };

    public LegacyCommandSupport()
    {
        _width.AcceptOnlyFromAmong("32", "64");
        _guest.AcceptOnlyFromAmong("pv", "hvm");
        _checkpointed.AcceptOnlyFromAmong("no", "yes", "auto");
    }

    public void AddTo(Command command)
    {
        command.Options.Add(_width);
        command.Options.Add(_guest);
        command.Options.Add(_checkpointed);
    }

    public LegacyInspectOptions Read(ParseResult parse) => new()
    {
        Width = parse.GetValue(_width) is { } w ? int.Parse(w, CultureInfo.InvariantCulture) / 8 : null,
        Guest = parse.GetValue(_guest) switch { "pv" => GuestType.Pv, "hvm" => GuestType.Hvm, _ => null },
        Mode = parse.GetValue(_checkpointed) switch { "no" => CheckpointedMode.No, "yes" => CheckpointedMode.Yes, _ => CheckpointedMode.Auto },
    };

    /// <summary>
    /// Reads the first octets of <paramref name="stream"/> and returns a stream that still starts at the beginning
    /// (seeking back, or replaying the octets read on a pipe).
    /// </summary>
    public static Stream Rewindable(Stream stream, out byte[] head)
    {
        var buffer = new byte[LegacyInspector.ProbeLength];
        var n = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        head = buffer[..n];
        if (stream.CanSeek)
        {
            stream.Seek(-n, SeekOrigin.Current);
            return stream;
        }

        return new PrefixStream(head, stream);
    }

    /// <summary>True when the input is to be read as a legacy stream.</summary>
    public static bool IsLegacyInput(StreamFormat format, byte[] head, LegacyInspectOptions legacy, out string? why)
    {
        why = null;
        if (format == StreamFormat.Legacy)
        {
            return true;
        }

        var isLegacy = LegacyInspector.IsLegacy(head, legacy.Width, legacy.Guest, out why);
        return isLegacy && (format == StreamFormat.Auto || (format == StreamFormat.Xl && StreamDetector.Detect(head) == StreamKind.Xl));
    }

    /// <summary>The message for an input that is not v2 and not recognisably legacy.</summary>
    public static string NotRecognised(string? path, string? why) =>
        $"{StreamInput.Describe(path)} is not a Migration v2 stream" + (why is null ? "" : $", and read as a legacy stream: {why}")
        + "; for a legacy stream pass --format legacy (with -w 32|64 and -g pv|hvm if they cannot be detected)";

    public static ExitCode Inspect(CliContext ctx, Stream stream, LegacyInspectOptions legacy, bool json)
    {
        using var input = new InputBuffer(stream);
        var report = LegacyInspector.Inspect(input, legacy with { ListItems = true });
        if (json)
        {
            ctx.Out.WriteLine(LegacyInspector.ToJson(report));
        }
        else
        {
            LegacyInspector.WriteText(report, ctx.Out);
        }

        if (report.Error is { } e)
        {
            ctx.Error.WriteLine("xmig: error: " + e.Message);
            return ExitCode.Invalid;
        }

        return ExitCode.Ok;
    }

    public static ExitCode Verify(CliContext ctx, Stream stream, string? path, LegacyInspectOptions legacy, bool json, bool verbose, bool quiet)
    {
        var output = quiet ? TextWriter.Null : ctx.Out;
        var error = quiet ? TextWriter.Null : ctx.Error;
        using var input = new InputBuffer(stream);
        var report = LegacyInspector.Inspect(input, legacy with { ListItems = verbose });
        if (json)
        {
            output.WriteLine(LegacyInspector.ToJson(report));
        }
        else if (verbose)
        {
            LegacyInspector.WriteText(report, output);
        }
        else if (report.Error is null)
        {
            output.WriteLine($"{StreamInput.Describe(path)}: {LegacyInspector.Summary(report)}");
            foreach (var w in report.Warnings)
            {
                error.WriteLine("xmig: warning: " + w);
            }
        }

        if (report.Error is { } e)
        {
            error.WriteLine("xmig: error: " + e.Message);
            return ExitCode.Invalid;
        }

        return ExitCode.Ok;
    }

    /// <summary>Replays octets already read from a pipe, then reads on.</summary>
    private sealed class PrefixStream(byte[] prefix, Stream inner) : Stream
    {
        private int _used;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_used < prefix.Length)
            {
                var n = Math.Min(buffer.Length, prefix.Length - _used);
                prefix.AsSpan(_used, n).CopyTo(buffer);
                _used += n;
                return n;
            }

            return inner.Read(buffer);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
