using System.Text.Json;
using System.Text.Json.Serialization;

namespace Xmig.Migration;

/// <summary>
/// The one JSON document <c>xmig migrate --json</c> prints. Where a figure means what it means in QEMU's
/// <c>query-migrate</c>, it has that name: <c>status</c>, <c>total-time</c>, <c>setup-time</c>, <c>downtime</c> (ms),
/// <c>transferred</c> (octets), <c>mbps</c>, <c>dirty-sync-count</c>.
/// </summary>
internal sealed class MigrationSendReport
{
    public string Status { get; set; } = "";

    public string? Error { get; set; }

    public string? FailedAt { get; set; }

    public string Stream { get; set; } = "";

    public string Workload { get; set; } = "";

    public double TotalTime { get; set; }

    public double SetupTime { get; set; }

    public double? Downtime { get; set; }

    public long Transferred { get; set; }

    public double Mbps { get; set; }

    public int DirtySyncCount { get; set; }

    public long PagesSent { get; set; }

    public long FinalDirtyPages { get; set; }

    public int? DestinationStatus { get; set; }

    public MigrationEnd Source { get; set; } = new();

    public static MigrationSendReport From(MigrationSendResult r, string stream, string workload) => new()
    {
        Status = r.Completed ? "completed" : "failed",
        Error = r.Error,
        FailedAt = r.FailedAt,
        Stream = stream,
        Workload = workload,
        TotalTime = Math.Round(r.TotalTimeMs, 3),
        SetupTime = Math.Round(r.SetupTimeMs, 3),
        Downtime = r.DowntimeMs is { } d ? Math.Round(d, 3) : null,
        Transferred = r.Transferred,
        Mbps = r.TotalTimeMs > 0 ? Math.Round(r.Transferred * 8 / (r.TotalTimeMs / 1000) / 1e6, 3) : 0,
        DirtySyncCount = r.Iterations,
        PagesSent = r.PagesSent,
        FinalDirtyPages = r.FinalDirtyPages,
        DestinationStatus = r.DestinationStatus,
        Source = new MigrationEnd
        {
            State = r.Source switch
            {
                SourceState.Running => "running",
                SourceState.MigratedAway => "migrated-away",
                _ => "undefined",
            },
            Directory = r.SourceDirectory,
            MemorySha256 = r.SourceDigest,
            Pages = r.SourcePages,
        },
    };

    public string ToJson() => JsonSerializer.Serialize(this, MigrationJson.Default.MigrationSendReport);
}

/// <summary>The one JSON document <c>xmig migrate-receive --json</c> prints.</summary>
internal sealed class MigrationReceiveReport
{
    public string Status { get; set; } = "";

    public string? Error { get; set; }

    public string? FailedAt { get; set; }

    public string StreamKind { get; set; } = "";

    public string SenderGeneration { get; set; } = "";

    public string Checkpointed { get; set; } = "";

    public string End { get; set; } = "";

    public long Received { get; set; }

    public double TotalTime { get; set; }

    public MigrationEnd Destination { get; set; } = new();

    public IReadOnlyList<string> Warnings { get; set; } = [];

    public static MigrationReceiveReport From(MigrationReceiveResult r) => new()
    {
        Status = r.Completed ? "completed" : "failed",
        Error = r.Error,
        FailedAt = r.FailedAt,
        StreamKind = r.StreamKind,
        SenderGeneration = r.SenderGeneration,
        Checkpointed = r.Checkpointed,
        End = r.End,
        Received = r.Received,
        TotalTime = Math.Round(r.TotalTimeMs, 3),
        Destination = new MigrationEnd
        {
            State = r.Completed ? "received" : "nothing kept",
            Directory = r.Directory,
            MemorySha256 = r.Completed ? r.Digest : null,
            Pages = r.Completed ? r.Pages : 0,
        },
        Warnings = r.Warnings,
    };

    public string ToJson() => JsonSerializer.Serialize(this, MigrationJson.Default.MigrationReceiveReport);
}

/// <summary>One end of a migration in a report: where its domain is and its memory digest.</summary>
internal sealed class MigrationEnd
{
    public string State { get; set; } = "";

    public string Directory { get; set; } = "";

    public string? MemorySha256 { get; set; }

    public ulong Pages { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(MigrationSendReport))]
[JsonSerializable(typeof(MigrationReceiveReport))]
internal sealed partial class MigrationJson : JsonSerializerContext;
