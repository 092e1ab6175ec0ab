using System.CommandLine;
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using Xmig.Conversion;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig convert -i IN -o OUT [-w 32|64] [-g pv|hvm] [-f libxc|libxl] [-x] [--skip-qemu] [-v] [--checkpointed no|yes|auto]</c>:
/// a drop-in for Xen's <c>convert-legacy-stream</c> (v2-stream.md §9.2): same options, meanings and exit codes
/// (0 converted; 1 missing <c>-i</c>/<c>-o</c>, truncated or bad input; 2 unsupported content or I/O error).
/// <c>-w</c> and <c>-g</c> are detected when absent; checkpointed legacy streams convert to checkpointed v2 streams.
/// </summary>
internal static class ConvertCommand
{
    public static Command Create(CliContext ctx)
    {
        var input = new Option<string?>("--in", "-i") { Description = "Legacy input: a file, '-' for stdin, or a file descriptor number." };
        var output = new Option<string?>("--out", "-o") { Description = "v2 output: a file, '-' for stdout, or a file descriptor number." };
        var width = new Option<string?>("--width", "-w") { Description = "Bitness of the toolstack that wrote the legacy stream (32|64); detected when absent." };
        width.AcceptOnlyFromAmong("32", "64");
        var guest = new Option<string?>("--guest-type", "-g", "--guest") { Description = "Guest type in the stream (pv|hvm); detected when absent." };
        guest.AcceptOnlyFromAmong("pv", "hvm");
        var format = new Option<string>("--format", "-f") { Description = "Output format (libxc|libxl).", DefaultValueFactory = _ => "libxc" };
        format.AcceptOnlyFromAmong("libxc", "libxl");
        var xl = new Option<bool>("--xl", "-x") { Description = "The input starts with an xl header (copied to the output); detected when absent." };
        var skipQemu = new Option<bool>("--skip-qemu") { Description = "Do not process the HVM device-model record (libxc output only)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Summarise the stream (to stdout, or stderr when the output is stdout); stack traces on errors." };
        var syslog = new Option<bool>("--syslog") { Description = "Accepted for compatibility; messages go to stderr." };
        var checkpointed = new Option<string>("--checkpointed") { Description = "Is the legacy stream checkpointed (Remus)? no: stop after the first checkpoint (Xen's behaviour); yes: read checkpoints until the end; auto: decide after each checkpoint from what follows.", DefaultValueFactory = _ => "auto" };
        checkpointed.AcceptOnlyFromAmong("no", "yes", "auto");
        var command = new Command("convert", "Convert a legacy (pre-v2) save stream to a Migration v2 stream, as Xen's convert-legacy-stream. Exit codes: 0 ok, 1 missing -i/-o or invalid input, 2 unsupported content or I/O error.")
        {
            input, output, width, guest, format, xl, skipQemu, verbose, syslog, checkpointed,
        };
        command.SetAction(parse => (int)Run(ctx, new Arguments(
            parse.GetValue(input),
            parse.GetValue(output),
            parse.GetValue(width) is { } w ? int.Parse(w, CultureInfo.InvariantCulture) / 8 : null,
            parse.GetValue(guest) switch { "pv" => GuestType.Pv, "hvm" => GuestType.Hvm, _ => null },
            parse.GetValue(format) == "libxl" ? V2OutputFormat.Libxl : V2OutputFormat.Libxc,
            parse.GetValue(xl),
            parse.GetValue(skipQemu),
            parse.GetValue(verbose),
            parse.GetValue(checkpointed) switch { "no" => CheckpointedMode.No, "yes" => CheckpointedMode.Yes, _ => CheckpointedMode.Auto })));
        return command;
    }

    internal sealed record Arguments(string? In, string? Out, int? Width, GuestType? Guest, V2OutputFormat Format, bool Xl, bool SkipQemu, bool Verbose, CheckpointedMode Mode);

    internal static ExitCode Run(CliContext ctx, Arguments a)
    {
        if (a.In is null || a.Out is null)
        {
            // As convert-legacy-stream: usage on stderr and exit 1.
            ctx.Error.WriteLine("xmig: error: convert needs -i INPUT and -o OUTPUT (usage: xmig convert -i IN -o OUT [-w 32|64] [-g pv|hvm] [-f libxc|libxl] [-x] [--skip-qemu] [-v])");
            return ExitCode.Invalid;
        }

        string? createdFile = null;
        var ok = false;
        using var interruption = Interruption.Register(ctx);
        try
        {
            // SIGINT/SIGTERM: the next write ends the conversion and the partial output is removed; a conversion that
            // writes nothing more (its input stalled) is ended by the interruption, which removes the file itself.
            using var input = OpenInput(a.In);
            using var file = OpenOutput(a.Out, out createdFile);
            if (createdFile is { } created)
            {
                interruption.OnGiveUp(() => File.Delete(created));
            }

            using var output = new CancellableWrites(file, interruption.Token);

            var toStdout = a.Out == "-" || a.Out == "1";
            var result = LegacyToV2Converter.Convert(input, output, new LegacyConvertOptions
            {
                Width = a.Width,
                Guest = a.Guest,
                Format = a.Format,
                Xl = a.Xl,
                SkipQemu = a.SkipQemu,
                Mode = a.Mode,
                Verbose = a.Verbose ? (toStdout ? ctx.Error : ctx.Out) : null,
            });
            if (result.Checkpoints.End is LegacyRestoreEnd.IncompleteCheckpoint or LegacyRestoreEnd.NotAChunkConsumed)
            {
                ctx.Error.WriteLine("xmig: warning: " + result.Checkpoints.EndDetail);
            }

            ok = true;
            return ExitCode.Ok;
        }
        catch (Exception e) when (interruption.Received is not null && (e is OperationCanceledException || ExitCodes.Of(e) is not null))
        {
            interruption.End();
            ctx.Error.WriteLine(interruption.Line(createdFile is null ? "stopped" : $"stopped; the partial {createdFile} was removed"));
            return ExitCode.UsageOrIo;
        }
        catch (Exception e) when (ExitCodes.Of(e) is { } code)
        {
            return Fail(ctx, a, e, code);
        }
        finally
        {
            if (!ok && createdFile is not null)
            {
                TryDelete(createdFile);
            }
        }
    }

    private static ExitCode Fail(CliContext ctx, Arguments a, Exception e, ExitCode code)
    {
        ctx.Error.WriteLine("xmig: error: " + e.Message);
        if (a.Verbose)
        {
            ctx.Error.WriteLine(e);
        }

        return code;
    }

    private static Stream OpenInput(string path) => StreamInput.Open(path, decimalIsFd: true);

    /// <summary><c>-</c> is stdout; a decimal is a file descriptor (as Xen); otherwise a file, created or truncated.</summary>
    private static FileStream OpenOutput(string path, out string? createdFile)
    {
        createdFile = null;
        // stdout as a plain file descriptor: the console stream would swallow EPIPE, and a closed pipe must fail.
        if (path == "-")
        {
            return new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 1);
        }

        if (int.TryParse(path, NumberStyles.None, CultureInfo.InvariantCulture, out var fd))
        {
            return new FileStream(new SafeFileHandle(fd, ownsHandle: false), FileAccess.Write, 1);
        }

        var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1);
        createdFile = path;
        return stream;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>A write-only pass-through that ends the conversion at its next write once cancelled.</summary>
    private sealed class CancellableWrites(Stream inner, CancellationToken cancellationToken) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            cancellationToken.ThrowIfCancellationRequested();
            inner.Write(buffer);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
