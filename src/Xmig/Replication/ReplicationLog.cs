using System.Text;
using System.Text.Json;

namespace Xmig.Replication;

/// <summary>
/// The replication log (<c>--log FILE</c>): JSON lines, one event each, flushed as written so that a process killed
/// with SIGKILL leaves every line it wrote whole. Each line has <c>event</c> and <c>time</c> (UTC, ISO 8601) and the
/// event's fields (README "Replication log").
/// </summary>
internal sealed class ReplicationLog : IDisposable
{
    private readonly Stream? _file;
    private readonly Lock _lock = new();
    private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new(512);

    private ReplicationLog(Stream? file) => _file = file;

    /// <summary>A log that writes nothing.</summary>
    public static ReplicationLog None { get; } = new(null);

    /// <summary>Opens <paramref name="path"/> for appending (created when missing).</summary>
    public static ReplicationLog Open(string path) =>
        new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None));

    public bool Enabled => _file is not null;

    /// <summary>Writes one line: <c>{"event": NAME, "time": …, fields…}</c>.</summary>
    public void Write(string name, Action<Utf8JsonWriter>? fields = null)
    {
        if (_file is null)
        {
            return;
        }

        lock (_lock)
        {
            var buffer = _buffer;
            buffer.ResetWrittenCount();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("event", name);
                json.WriteString("time", DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
                fields?.Invoke(json);
                json.WriteEndObject();
            }

            System.Buffers.BuffersExtensions.Write(buffer, "\n"u8);
            _file.Write(buffer.WrittenSpan);
            _file.Flush();
        }
    }

    public void Dispose()
    {
        if (_file is not null)
        {
            lock (_lock)
            {
                _file.Dispose();
            }
        }
    }
}

/// <summary>Reads a replication log back (tests, bench and <c>xmig report</c>).</summary>
internal static class ReplicationLogReader
{
    /// <summary>The events of <paramref name="path"/> in order; a last line cut short (a SIGKILL mid-write) is skipped.</summary>
    public static List<JsonElement> Read(string path)
    {
        var events = new List<JsonElement>();
        foreach (var line in File.ReadAllText(path, Encoding.UTF8).Split('\n'))
        {
            if (line.Length == 0)
            {
                continue;
            }

            try
            {
                using var document = JsonDocument.Parse(line);
                events.Add(document.RootElement.Clone());
            }
            catch (JsonException)
            {
            }
        }

        return events;
    }
}
