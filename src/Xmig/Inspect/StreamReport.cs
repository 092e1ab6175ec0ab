using System.Globalization;
using System.Text.Json.Serialization;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Verify;

namespace Xmig.Inspect;

/// <summary>The JSON shape of a verification result (<c>xmig verify --json</c>, the tail of <c>inspect --json</c>).</summary>
public sealed class StreamReport
{
    public string Kind { get; set; } = "";

    public bool Valid { get; set; }

    /// <summary>True when the input is a legacy stream (see <c>--format legacy</c>).</summary>
    public bool Legacy { get; set; }

    public ReportError? Error { get; set; }

    public List<ReportError> Warnings { get; set; } = [];

    public long WarningCount { get; set; }

    public ReportSummary Summary { get; set; } = new();

    /// <summary>Builds the report of <paramref name="result"/>.</summary>
    public static StreamReport From(VerifyResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var s = result.Summary;
        var report = new StreamReport
        {
            Kind = KindName(s.Kind),
            Valid = result.IsValid,
            Legacy = result.IsLegacy,
            Error = result.Error is { } e ? new ReportError(e.What, e.Index, Hex(e.Offset), e.Detail, e.Message) : null,
            WarningCount = result.WarningCount,
            Summary = ReportSummary.From(s),
        };
        foreach (var w in result.Warnings)
        {
            report.Warnings.Add(new ReportError(w.What, w.Index, Hex(w.Offset), w.Detail, w.ToString()));
        }

        return report;
    }

    internal static string KindName(StreamKind kind) => kind switch
    {
        StreamKind.Xl => "xl",
        StreamKind.Libxl => "libxl",
        StreamKind.Libxc => "libxc",
        StreamKind.Legacy => "legacy",
        _ => "unknown",
    };

    internal static string Hex(long value) => string.Create(CultureInfo.InvariantCulture, $"0x{value:X}");
}

/// <summary>An error or warning with its location.</summary>
public sealed record ReportError(string What, long Index, string Offset, string Detail, string Message);

/// <summary>The JSON shape of <see cref="StreamSummary"/>.</summary>
public sealed class ReportSummary
{
    public string Kind { get; set; } = "";

    public string? Guest { get; set; }

    public uint LibxcVersion { get; set; }

    public string? XenVersion { get; set; }

    public long TotalRecords { get; set; }

    public Dictionary<string, long> Records { get; set; } = [];

    public Dictionary<string, long> PagesByType { get; set; } = [];

    public long DataPages { get; set; }

    public long DistinctPfns { get; set; }

    public bool DistinctPfnsSaturated { get; set; }

    public string? PfnMin { get; set; }

    public string? PfnMax { get; set; }

    public int Checkpoints { get; set; }

    public bool EndedAtCheckpoint { get; set; }

    public long EmulatorRecords { get; set; }

    public long TotalBytes { get; set; }

    public long TrailingBytes { get; set; }

    public static ReportSummary From(StreamSummary s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var r = new ReportSummary
        {
            Kind = StreamReport.KindName(s.Kind),
            Guest = s.Guest switch { GuestType.Pv => "x86 PV", GuestType.Hvm => "x86 HVM", _ => null },
            LibxcVersion = s.LibxcVersion,
            XenVersion = s.LibxcVersion == 0 ? null
                : s.XenMajor == 0 ? string.Create(CultureInfo.InvariantCulture, $"legacy converter v{s.XenMinor}")
                : string.Create(CultureInfo.InvariantCulture, $"{s.XenMajor}.{s.XenMinor}"),
            TotalRecords = s.TotalRecords,
            DataPages = s.DataPages,
            DistinctPfns = s.DistinctPfns,
            DistinctPfnsSaturated = s.DistinctPfnsSaturated,
            PfnMin = s.PfnMin == ulong.MaxValue ? null : StreamReport.Hex((long)s.PfnMin),
            PfnMax = s.PfnMin == ulong.MaxValue ? null : StreamReport.Hex((long)s.PfnMax),
            Checkpoints = s.Checkpoints,
            EndedAtCheckpoint = s.EndedAtCheckpoint,
            EmulatorRecords = s.EmulatorRecords,
            TotalBytes = s.TotalBytes,
            TrailingBytes = s.TrailingBytes,
        };
        for (var t = 0; t < s.LibxcRecords.Length; t++)
        {
            if (s.LibxcRecords[t] > 0)
            {
                r.Records[RecordTypes.Name((uint)t)] = s.LibxcRecords[t];
            }
        }

        for (var t = 0; t < s.LibxlRecords.Length; t++)
        {
            if (s.LibxlRecords[t] > 0)
            {
                r.Records[LibxlRecordTypes.Name((uint)t)] = s.LibxlRecords[t];
            }
        }

        foreach (var (name, count) in s.UnknownRecords)
        {
            r.Records[name] = count;
        }

        for (var t = 0; t < s.PagesByType.Length; t++)
        {
            if (s.PagesByType[t] > 0)
            {
                r.PagesByType[PageTypes.Name(t)] = s.PagesByType[t];
            }
        }

        return r;
    }
}

/// <summary>System.Text.Json source generation for the reports (no reflection; AOT-friendly).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(StreamReport))]
[JsonSerializable(typeof(ReportSummary))]
[JsonSerializable(typeof(ReportError))]
[JsonSerializable(typeof(List<string>))]
public sealed partial class ReportJsonContext : JsonSerializerContext;
