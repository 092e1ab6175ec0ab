using System.Buffers;
using System.Text;
using System.Text.Json;
using Xmig.Formats.Libxc;
using Xmig.Formats.Xl;
using Xmig.Verify;
using LibxlStreamHeader = Xmig.Formats.Libxl.StreamHeader;

namespace Xmig.Inspect;

/// <summary>
/// Renders what the verifier reads as one JSON document, streamed: <c>{"items": [...], ...report}</c>. Items are
/// written with <see cref="Utf8JsonWriter"/> as they come; the report tail uses the source-generated context.
/// </summary>
internal sealed class JsonInspectRenderer : IStreamObserver, IDisposable
{
    private const int FlushThreshold = 64 << 10;
    private readonly TextWriter _output;
    private readonly bool _verbose;
    private readonly ArrayBufferWriter<byte> _buffer = new(FlushThreshold * 2);
    private readonly Utf8JsonWriter _json;

    public JsonInspectRenderer(TextWriter output, bool verbose)
    {
        _output = output;
        _verbose = verbose;
        _json = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Indented = true });
        _json.WriteStartObject();
        _json.WriteStartArray("items");
    }

    public bool WantsDetail => _verbose;

    public void OnXlHeader(XlHeader header, ReadOnlySpan<byte> optionalData, long offset)
    {
        Begin("xl_header", offset);
        _json.WriteNumber("mandatory_flags", header.MandatoryFlags);
        _json.WriteNumber("optional_flags", header.OptionalFlags);
        _json.WriteNumber("optional_data_length", header.OptionalDataLength);
        if (XlHeader.TryGetConfig(optionalData, out var config))
        {
            _json.WriteString("config", Encoding.UTF8.GetString(config).TrimEnd('\0'));
        }

        End();
    }

    public void OnLibxlHeader(LibxlStreamHeader header, long offset)
    {
        Begin("libxl_header", offset);
        _json.WriteNumber("version", header.Version);
        _json.WriteNumber("options", header.Options);
        _json.WriteBoolean("legacy", header.IsLegacy);
        End();
    }

    public void OnImageHeader(ImageHeader header, long offset)
    {
        Begin("libxc_image_header", offset);
        _json.WriteNumber("version", header.Version);
        _json.WriteNumber("options", header.Options);
        End();
    }

    public void OnDomainHeader(DomainHeader header, long offset)
    {
        Begin("libxc_domain_header", offset);
        _json.WriteNumber("type", header.Type);
        _json.WriteNumber("page_shift", header.PageShift);
        _json.WriteNumber("xen_major", header.XenMajor);
        _json.WriteNumber("xen_minor", header.XenMinor);
        End();
    }

    public void OnRecord(RecordInfo record)
    {
        Begin("record", record.Offset);
        _json.WriteString("layer", record.Layer == RecordLayer.Libxc ? "libxc" : "libxl");
        _json.WriteNumber("index", record.Index);
        _json.WriteNumber("type", record.Type);
        _json.WriteString("name", record.Name);
        _json.WriteNumber("length", record.Length);
        _json.WriteNumber("checkpoint", record.Checkpoint);
        if (record.IsUnknownOptional)
        {
            _json.WriteBoolean("unknown_optional", true);
        }

        foreach (var f in record.Fields)
        {
            _json.WriteNumber(f.Name, f.Value);
        }

        if (record.Layer == RecordLayer.Libxc && record.Type == (uint)RecordType.PageData)
        {
            _json.WriteStartObject("page_types");
            var counts = record.PageTypeCounts;
            for (var t = 0; t < counts.Length; t++)
            {
                if (counts[t] > 0)
                {
                    _json.WriteNumber(PageTypes.Name(t), counts[t]);
                }
            }

            _json.WriteEndObject();
        }

        if (_verbose && record.Detail.Count > 0)
        {
            _json.WriteStartArray("detail");
            foreach (var line in record.Detail)
            {
                _json.WriteStringValue(line);
            }

            _json.WriteEndArray();
        }

        End();
    }

    public void OnTrailingData(long offset, long length, uint? qemuLength)
    {
        Begin("trailing_data", offset);
        _json.WriteNumber("length", length);
        if (qemuLength is { } q)
        {
            _json.WriteNumber("qemu_record_length", q);
        }

        End();
    }

    public void OnWarning(VerifyWarning warning)
    {
    }

    /// <summary>Closes the items array and appends the report fields.</summary>
    public void Finish(VerifyResult result)
    {
        _json.WriteEndArray();
        using (var doc = JsonSerializer.SerializeToDocument(StreamReport.From(result), ReportJsonContext.Default.StreamReport))
        {
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                property.WriteTo(_json);
            }
        }

        _json.WriteEndObject();
        _json.Flush();
        Drain();
        _output.WriteLine();
    }

    public void Dispose() => _json.Dispose();

    private void Begin(string item, long offset)
    {
        _json.WriteStartObject();
        _json.WriteString("item", item);
        _json.WriteNumber("offset", offset);
    }

    private void End()
    {
        _json.WriteEndObject();
        if (_json.BytesPending + _buffer.WrittenCount >= FlushThreshold)
        {
            _json.Flush();
            Drain();
        }
    }

    private void Drain()
    {
        _output.Write(Encoding.UTF8.GetString(_buffer.WrittenSpan));
        _buffer.ResetWrittenCount();
    }
}
