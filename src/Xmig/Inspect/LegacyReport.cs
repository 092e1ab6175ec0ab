using System.Text.Json.Serialization;

namespace Xmig.Inspect;

/// <summary>One item of a legacy image as listed by <c>xmig inspect --format legacy</c>.</summary>
public sealed class LegacyReportItem
{
    /// <summary>Running chunk index (body chunks), or −1 for header and tail items.</summary>
    public long Index { get; set; }

    /// <summary>Absolute offset, hex.</summary>
    public string Offset { get; set; } = "";

    public int Checkpoint { get; set; }

    /// <summary>Chunk name (<c>PAGE_BATCH</c>, <c>VCPU_INFO</c>, …) or header/tail part.</summary>
    public string Name { get; set; } = "";

    public string Detail { get; set; } = "";
}

/// <summary>The JSON shape of a legacy stream's inspection or verification (<c>--json</c>).</summary>
public sealed class LegacyReport
{
    public string Kind { get; set; } = "legacy";

    public bool Valid { get; set; }

    public ReportError? Error { get; set; }

    public List<string> Warnings { get; set; } = [];

    /// <summary>The image sits inside an xl header (STREAMv2 clear).</summary>
    public bool Xl { get; set; }

    /// <summary>Toolstack word width in bits (32 or 64).</summary>
    public int Width { get; set; }

    /// <summary><c>pv</c> or <c>hvm</c>.</summary>
    public string Guest { get; set; } = "";

    /// <summary>How width and guest type were found (given, or the octets that showed them).</summary>
    public string Detection { get; set; } = "";

    public string P2mSize { get; set; } = "";

    /// <summary>PV guest width in bits (32 or 64); 0 for HVM.</summary>
    public int GuestBits { get; set; }

    public List<string> ExtendedInfo { get; set; } = [];

    /// <summary><c>legacy-4.0</c> (no LAST_CHECKPOINT), <c>legacy-4.1</c> (LAST_CHECKPOINT), <c>checkpointed</c>, or <c>unknown</c>.</summary>
    public string SenderGeneration { get; set; } = "";

    /// <summary>Earliest Xen release whose sender writes what the stream contains, if it shows.</summary>
    public string? MinimumSenderVersion { get; set; }

    public string? MinimumSenderEvidence { get; set; }

    public bool LastCheckpoint { get; set; }

    public bool Compressed { get; set; }

    public int CheckpointsSeen { get; set; }

    public int CheckpointsCommitted { get; set; }

    /// <summary>Why reading stopped (<c>LastCheckpoint</c>, <c>EndOfStream</c>, <c>NotAChunk</c>, …).</summary>
    public string End { get; set; } = "";

    public string EndDetail { get; set; } = "";

    public long Chunks { get; set; }

    public long PageBatches { get; set; }

    public long DataPages { get; set; }

    public string? DeviceModel { get; set; }

    public long Bytes { get; set; }

    /// <summary>Every item (inspect only).</summary>
    public List<LegacyReportItem>? Items { get; set; }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(LegacyReport))]
public sealed partial class LegacyReportJsonContext : JsonSerializerContext;
