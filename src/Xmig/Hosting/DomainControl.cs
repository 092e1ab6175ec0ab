using System.Net.Sockets;
using System.Text;

namespace Xmig.Hosting;

/// <summary>
/// The control endpoint of a hosted domain: a Unix stream socket <c>DIR/control.sock</c>, owned by the user, mode
/// 0600, with a line protocol. A client sends one request line; the host answers with zero or more
/// <c>log TEXT</c> lines and ends with one <c>ok TEXT</c> or <c>error TEXT</c> line, then closes.
/// </summary>
/// <remarks>
/// Requests: <c>status</c> (answer: the status JSON), <c>pause</c>, <c>unpause</c>, <c>stop</c> (persist and exit),
/// <c>migrate HOST:PORT STREAM [digest] [stall=SECONDS]</c> (the host, which owns the domain, migrates it; answer: the
/// migration's JSON document, after <c>log</c> lines of progress). While it migrates, a <c>cancel</c> line from the
/// client, or the client going away, cancels the migration (before GO the source runs on).
/// </remarks>
internal static class DomainControl
{
    public const string SocketName = "control.sock";

    /// <summary>Bound on a request or answer line.</summary>
    public const int MaxLine = 64 << 10;

    public static string SocketPath(string directory) => Path.Combine(Path.GetFullPath(directory), SocketName);

    /// <summary>
    /// Binds the control socket for <paramref name="directory"/>: in a private (0700) directory first, made 0600,
    /// then renamed into place, so it is never reachable with wider permissions. A socket left by a host that is gone
    /// is replaced; one whose host answers is refused.
    /// </summary>
    public static Socket Listen(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("the control socket needs Unix file modes");
        }

        var path = SocketPath(directory);
        if (File.Exists(path))
        {
            if (TryConnect(directory, out var live))
            {
                live.Dispose();
                throw new IOException($"{directory}: the domain is already hosted (its control socket answers)");
            }

            File.Delete(path);
        }

        var full = Path.GetFullPath(directory);
        // Short: the socket's path, bound inside it, must fit sun_path's 108 octets.
        var privateDir = Path.Combine(full, string.Create(System.Globalization.CultureInfo.InvariantCulture, $".ctl-{Environment.ProcessId}-{Random.Shared.Next():x8}"));
        Directory.CreateDirectory(privateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            var temporary = Path.Combine(privateDir, "s");
            socket.Bind(new UnixDomainSocketEndPoint(temporary));
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            socket.Listen(8);
            File.Move(temporary, path);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        finally
        {
            try
            {
                Directory.Delete(privateDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Connects to the host of <paramref name="directory"/>; false when no host answers.</summary>
    public static bool TryConnect(string directory, out Socket socket)
    {
        socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var path = SocketPath(directory);
        if (!File.Exists(path))
        {
            socket.Dispose();
            return false;
        }

        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            socket.Dispose();
            return false;
        }
    }

    /// <summary>
    /// Sends <paramref name="request"/> to the host of <paramref name="directory"/> and returns the final line's
    /// text, handing each <c>log</c> line to <paramref name="log"/>. Null when no host answers.
    /// </summary>
    /// <remarks>Cancelling <paramref name="cancellationToken"/> sends <c>cancel</c> and still reads the final answer.</remarks>
    public static (bool Ok, string Text)? Request(string directory, string request, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        if (!TryConnect(directory, out var socket))
        {
            return null;
        }

        using (socket)
        using (var stream = new NetworkStream(socket, ownsSocket: false))
        using (var reader = new StreamReader(stream, Encoding.UTF8))
        {
            stream.Write(Encoding.UTF8.GetBytes(request + "\n"));
            using var cancel = cancellationToken.Register(() =>
            {
                try
                {
                    socket.Send("cancel\n"u8);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }
            });
            while (ReadLine(reader) is { } line)
            {
                if (line.StartsWith("log ", StringComparison.Ordinal))
                {
                    log?.Invoke(line[4..]);
                }
                else if (line.StartsWith("ok", StringComparison.Ordinal))
                {
                    return (true, line.Length > 3 ? line[3..] : "");
                }
                else if (line.StartsWith("error", StringComparison.Ordinal))
                {
                    return (false, line.Length > 6 ? line[6..] : "");
                }
                else
                {
                    return (false, $"the domain host answered something unexpected: {line}");
                }
            }

            return (false, "the domain host closed the control connection without an answer");
        }
    }

    /// <summary>Reads one line of at most <see cref="MaxLine"/> characters; null at the end.</summary>
    public static string? ReadLine(TextReader reader)
    {
        var line = new StringBuilder();
        while (true)
        {
            var c = reader.Read();
            if (c < 0)
            {
                return line.Length > 0 ? line.ToString() : null;
            }

            if (c == '\n')
            {
                return line.ToString();
            }

            if (line.Length >= MaxLine)
            {
                throw new IOException($"control line longer than {MaxLine} characters");
            }

            line.Append((char)c);
        }
    }
}
