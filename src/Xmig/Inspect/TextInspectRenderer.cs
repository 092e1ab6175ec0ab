using System.Globalization;
using System.Text;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Xl;
using Xmig.Verify;
using LibxlStreamHeader = Xmig.Formats.Libxl.StreamHeader;

namespace Xmig.Inspect;

/// <summary>Renders what the verifier reads as text lines, one per header and record, then a summary.</summary>
internal sealed class TextInspectRenderer(TextWriter output, bool verbose) : IStreamObserver
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private readonly StringBuilder _sb = new(256);
    private bool _inLibxl;

    public bool WantsDetail => verbose;

    public void OnXlHeader(XlHeader header, ReadOnlySpan<byte> optionalData, long offset)
    {
        _sb.Clear();
        _sb.Append(Inv, $"xl header at 0x{offset:X}: mandatory 0x{header.MandatoryFlags:X} ({FlagNames(header.MandatoryFlags)}), optional 0x{header.OptionalFlags:X}, optional data {header.OptionalDataLength} octets");
        if (XlHeader.TryGetConfig(optionalData, out var config))
        {
            _sb.Append(Inv, $", config {config.Length} octets");
            if (verbose)
            {
                var text = Encoding.UTF8.GetString(config).TrimEnd('\0');
                _sb.AppendLine().Append("    config: ").Append(text);
            }
        }

        Flush();
    }

    public void OnLibxlHeader(LibxlStreamHeader header, long offset)
    {
        _inLibxl = true;
        _sb.Clear();
        _sb.Append(Inv, $"libxl stream header at 0x{offset:X}: version {header.Version}, options 0x{header.Options:X}");
        if (header.IsLegacy)
        {
            _sb.Append(" (legacy: produced by the converter)");
        }

        Flush();
    }

    public void OnImageHeader(ImageHeader header, long offset)
    {
        _sb.Clear();
        Indent(RecordLayer.Libxc);
        _sb.Append(Inv, $"libxc image header at 0x{offset:X}: version {header.Version}, options 0x{header.Options:X}");
        Flush();
    }

    public void OnDomainHeader(DomainHeader header, long offset)
    {
        _sb.Clear();
        Indent(RecordLayer.Libxc);
        var type = header.GuestType switch { GuestType.Pv => "x86 PV", GuestType.Hvm => "x86 HVM", _ => "?" };
        _sb.Append(Inv, $"libxc domain header at 0x{offset:X}: type {header.Type} ({type}), page_shift {header.PageShift}, ");
        if (header.XenMajor == 0)
        {
            _sb.Append(Inv, $"legacy converter v{header.XenMinor}");
        }
        else
        {
            _sb.Append(Inv, $"Xen {header.XenMajor}.{header.XenMinor}");
        }

        Flush();
    }

    public void OnRecord(RecordInfo record)
    {
        _sb.Clear();
        Indent(record.Layer);
        _sb.Append(record.Layer == RecordLayer.Libxc ? "libxc #" : "libxl #")
            .Append(record.Index)
            .Append(Inv, $" at 0x{record.Offset:X}: ")
            .Append(record.Name)
            .Append(" length ")
            .Append(record.Length);
        foreach (var f in record.Fields)
        {
            _sb.Append(' ').Append(f.Name).Append('=');
            if (f.Format == FieldFormat.Hex)
            {
                _sb.Append(Inv, $"0x{f.Value:X}");
            }
            else
            {
                _sb.Append(f.Value);
            }
        }

        if (record.Layer == RecordLayer.Libxc && record.Type == (uint)RecordType.PageData)
        {
            var counts = record.PageTypeCounts;
            for (var t = 0; t < counts.Length; t++)
            {
                if (counts[t] > 0)
                {
                    _sb.Append(' ').Append(PageTypes.Name(t)).Append('=').Append(counts[t]);
                }
            }
        }

        if (record.IsUnknownOptional)
        {
            _sb.Append(" (unknown optional, skipped)");
        }

        if (verbose)
        {
            foreach (var line in record.Detail)
            {
                _sb.AppendLine();
                Indent(record.Layer);
                _sb.Append("    ").Append(line);
            }
        }

        Flush();
    }

    public void OnTrailingData(long offset, long length, uint? qemuLength)
    {
        _sb.Clear();
        _sb.Append(Inv, $"trailing data at 0x{offset:X}: {length} octets");
        if (qemuLength is { } q)
        {
            _sb.Append(Inv, $" (QEMU record DeviceModelRecord0002, {q} octets of device state)");
        }

        Flush();
    }

    public void OnWarning(VerifyWarning warning)
    {
        _sb.Clear();
        _sb.Append("warning: ").Append(warning.ToString());
        Flush();
    }

    public void Finish(VerifyResult result)
    {
        if (result.IsLegacy)
        {
            return;
        }

        var s = ReportSummary.From(result.Summary);
        _sb.Clear();
        _sb.AppendLine().AppendLine("summary");
        _sb.Append("  kind: ").Append(s.Kind);
        if (s.Guest is not null)
        {
            _sb.Append(", guest: ").Append(s.Guest);
        }

        if (s.XenVersion is not null)
        {
            _sb.Append(Inv, $", libxc version {s.LibxcVersion}, from {(s.XenVersion.StartsWith('l') ? s.XenVersion : "Xen " + s.XenVersion)}");
        }

        _sb.AppendLine();
        _sb.Append(Inv, $"  records: {s.TotalRecords}");
        AppendCounts(s.Records);
        _sb.AppendLine();
        _sb.Append(Inv, $"  page entries by type:");
        AppendCounts(s.PagesByType);
        _sb.AppendLine();
        _sb.Append(Inv, $"  data pages: {s.DataPages}, distinct pfns: {s.DistinctPfns}{(s.DistinctPfnsSaturated ? "+ (bitmap limit reached)" : "")}");
        if (s.PfnMin is not null)
        {
            _sb.Append(Inv, $", pfn range {s.PfnMin}-{s.PfnMax}");
        }

        _sb.AppendLine();
        _sb.Append(Inv, $"  checkpoints: {s.Checkpoints}{(s.EndedAtCheckpoint ? " (ends after the last checkpoint, no END)" : "")}, emulator records: {s.EmulatorRecords}").AppendLine();
        _sb.Append(Inv, $"  total bytes: {s.TotalBytes}");
        if (s.TrailingBytes > 0)
        {
            _sb.Append(Inv, $" ({s.TrailingBytes} after the end of the stream)");
        }

        _sb.AppendLine();
        _sb.Append(Inv, $"  warnings: {result.WarningCount}").AppendLine();
        _sb.Append("  result: ").Append(result.IsValid ? "valid" : "INVALID: " + result.Error?.Message);
        Flush();
    }

    private void AppendCounts(Dictionary<string, long> counts)
    {
        var first = true;
        foreach (var (name, count) in counts)
        {
            _sb.Append(first ? " (" : ", ").Append(name).Append(' ').Append(count);
            first = false;
        }

        if (!first)
        {
            _sb.Append(')');
        }
    }

    private static string FlagNames(uint flags)
    {
        var names = new List<string>();
        if ((flags & (uint)XlMandatoryFlags.Json) != 0)
        {
            names.Add("JSON");
        }

        if ((flags & (uint)XlMandatoryFlags.StreamV2) != 0)
        {
            names.Add("STREAMv2");
        }

        return names.Count == 0 ? "none" : string.Join('|', names);
    }

    private void Indent(RecordLayer layer)
    {
        if (_inLibxl)
        {
            _sb.Append("  ");
            if (layer == RecordLayer.Libxc)
            {
                _sb.Append("  ");
            }
        }
    }

    private void Flush()
    {
        _sb.AppendLine();
        output.Write(_sb);
    }
}
