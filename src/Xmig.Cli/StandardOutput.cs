using Microsoft.Win32.SafeHandles;

namespace Xmig.Cli;

/// <summary>A failed write to standard output (a full device, a closed pipe): named as such, never as the input.</summary>
internal sealed class StandardOutputException(string message, Exception inner) : IOException(message, inner);

/// <summary>
/// The process's standard output for text results. .NET's console stream drops EPIPE silently, so
/// <c>xmig inspect F | head -1</c> exited 0 with its output cut; this writes through fd 1 itself, so that a closed
/// pipe, <c>/dev/full</c> or a full disk is an <see cref="StandardOutputException"/> the verb reports in one line and
/// exits 2 on.
/// </summary>
internal sealed class StandardOutput : TextWriter
{
    private readonly TextWriter _inner;

    private StandardOutput(TextWriter inner) => _inner = inner;

    public override System.Text.Encoding Encoding => _inner.Encoding;

    /// <summary>fd 1 as a checked writer, or the console's writer where fd 1 cannot be opened as a stream.</summary>
    public static TextWriter Open()
    {
        try
        {
            var stream = new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 1);
            return new StandardOutput(new StreamWriter(stream, new System.Text.UTF8Encoding(false), 16 << 10) { AutoFlush = true });
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return Console.Out;
        }
    }

    public override void Write(char value) => Checked(() => _inner.Write(value));

    public override void Write(string? value) => Checked(() => _inner.Write(value));

    public override void Write(char[] buffer, int index, int count) => Checked(() => _inner.Write(buffer, index, count));

    public override void WriteLine(string? value) => Checked(() => _inner.WriteLine(value));

    public override void Flush() => Checked(_inner.Flush);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    private static void Checked(Action write)
    {
        try
        {
            write();
        }
        catch (IOException e) when (e is not StandardOutputException)
        {
            throw new StandardOutputException("standard output: " + e.Message, e);
        }
    }
}
