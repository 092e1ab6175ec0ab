using System.Text.Json;
using Xmig.Formats;
using Xmig.Verify;

namespace Xmig.Inspect;

/// <summary>Options of <see cref="StreamInspector"/>.</summary>
public sealed record InspectOptions
{
    /// <summary>One JSON document instead of text.</summary>
    public bool Json { get; init; }

    /// <summary>Per-record detail (page runs, HVM params, xenstore pairs, policies).</summary>
    public bool Verbose { get; init; }
}

/// <summary>
/// <c>xmig inspect</c>: shows the headers and every record (index, offset, type, length, decoded fields) of a v2
/// stream as the verifier reads it, then a summary, as text or one JSON document. Output is streamed: memory
/// stays bounded whatever the stream size.
/// </summary>
public static class StreamInspector
{
    /// <summary>Inspects <paramref name="stream"/>, writing the rendering to <paramref name="output"/>.</summary>
    /// <returns>The verification result (the stream is inspected up to its first violation).</returns>
    public static VerifyResult Inspect(Stream stream, StreamFormat format, TextWriter output, InspectOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(output);
        options ??= new InspectOptions();
        if (options.Json)
        {
            using var json = new JsonInspectRenderer(output, options.Verbose);
            var result = StreamVerifier.Verify(stream, format, null, json);
            json.Finish(result);
            return result;
        }

        var text = new TextInspectRenderer(output, options.Verbose);
        var r = StreamVerifier.Verify(stream, format, null, text);
        text.Finish(r);
        return r;
    }

    /// <summary>Serialises a verification result as one JSON document (<c>xmig verify --json</c>).</summary>
    public static string ToJson(VerifyResult result) =>
        JsonSerializer.Serialize(StreamReport.From(result), ReportJsonContext.Default.StreamReport);
}
