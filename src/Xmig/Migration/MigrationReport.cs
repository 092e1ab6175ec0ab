using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xmig.Save;

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

    /// <summary>The convergence policy (<c>--policy</c>): xen, xen-legacy or downtime.</summary>
    public string Policy { get; set; } = "";

    /// <summary>The downtime target of the <c>downtime</c> policy, in ms (QEMU's <c>downtime-limit</c>).</summary>
    public double? DowntimeLimit { get; set; }

    /// <summary>Octets per second the stream was held to (<c>--max-bandwidth</c>; QEMU's <c>max-bandwidth</c>), null when unlimited.</summary>
    public long? MaxBandwidth { get; set; }

    /// <summary>The downtime the last pass predicted: remaining dirty octets at the measured bandwidth, in ms.</summary>
    public double? ExpectedDowntime { get; set; }

    /// <summary>Octets of dirty memory left when the guest was paused (what stop-and-copy sent).</summary>
    public long Remaining { get; set; }

    /// <summary>Pages the guest dirtied per second in the last pre-copy pass.</summary>
    public double DirtyPagesRate { get; set; }

    /// <summary>The guest's throttle at the end, in percent of its CPU taken away (<c>--auto-converge</c>; 0 when never throttled).</summary>
    public int CpuThrottlePercentage { get; set; }

    /// <summary>Why pre-copy stopped: converged, max-iterations, timeout, non-live...</summary>
    public string? StopReason { get; set; }

    /// <summary>Every memory pass, the paused one last.</summary>
    public IReadOnlyList<MigrationRound> Rounds { get; set; } = [];

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
        Policy = r.Policy,
        DowntimeLimit = r.DowntimeLimitMs,
        MaxBandwidth = r.MaxBandwidth,
        ExpectedDowntime = LastLive(r.Rounds)?.ExpectedDowntime is { } e ? Math.Round(e.TotalMilliseconds, 3) : null,
        Remaining = r.FinalDirtyPages * PrecopyStats.BytesPerPage,
        DirtyPagesRate = LastLive(r.Rounds) is { } live ? Math.Round(live.DirtyPagesPerSecond, 1) : 0,
        CpuThrottlePercentage = r.ThrottlePercent,
        StopReason = r.StopReason.Length > 0 ? r.StopReason : null,
        Rounds = [.. r.Rounds.Select(MigrationRound.From)],
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

    private static SaveRound? LastLive(IReadOnlyList<SaveRound> rounds)
    {
        for (var i = rounds.Count - 1; i >= 0; i--)
        {
            if (!rounds[i].Paused)
            {
                return rounds[i];
            }
        }

        return null;
    }
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

/// <summary>
/// One memory pass of a migration, as the per-round line on stderr shows it. Times in ms, rates per second, as
/// <c>query-migrate</c>.
/// </summary>
internal sealed class MigrationRound
{
    /// <summary>The pass number, from 1 (the full first pass).</summary>
    public int Iteration { get; set; }

    /// <summary>True for the stop-and-copy pass, sent with the guest paused.</summary>
    public bool Paused { get; set; }

    /// <summary>Data pages this pass sent.</summary>
    public long Pages { get; set; }

    /// <summary>Stream octets this pass wrote.</summary>
    public long Transferred { get; set; }

    /// <summary>How long the pass took.</summary>
    public double Duration { get; set; }

    /// <summary>Stream megabits per second over the pass.</summary>
    public double Mbps { get; set; }

    /// <summary>Frames the guest dirtied during the pass (what the next pass sends).</summary>
    public long DirtyPages { get; set; }

    /// <summary>Frames the guest dirtied per second during the pass.</summary>
    public double DirtyPagesRate { get; set; }

    /// <summary>The dirty set's octets at this pass's bandwidth, in ms: what stopping now would cost.</summary>
    public double ExpectedDowntime { get; set; }

    /// <summary>The guest's throttle during the pass, in percent.</summary>
    public int CpuThrottlePercentage { get; set; }

    public static MigrationRound From(SaveRound r) => new()
    {
        Iteration = r.Iteration,
        Paused = r.Paused,
        Pages = r.Pages,
        Transferred = r.Bytes,
        Duration = Math.Round(r.Duration.TotalMilliseconds, 3),
        Mbps = Math.Round(r.BytesPerSecond * 8 / 1e6, 3),
        DirtyPages = r.DirtyPages,
        DirtyPagesRate = Math.Round(r.DirtyPagesPerSecond, 1),
        ExpectedDowntime = r.ExpectedDowntime is { } e ? Math.Round(e.TotalMilliseconds, 3) : 0,
        CpuThrottlePercentage = r.ThrottlePercent,
    };
}

/// <summary>The per-round line a migration writes on stderr (and a domain host sends back as a log line).</summary>
internal static class MigrationRoundLine
{
    public static string Format(in SaveRound r)
    {
        var mbps = r.BytesPerSecond * 8 / 1e6;
        var size = Octets(r.Bytes);
        var ms = r.Duration.TotalMilliseconds;
        if (r.Paused)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"migration: round {r.Iteration} (paused): {r.Pages} pages, {size} in {ms:0.0} ms ({mbps:0} Mbit/s)");
        }

        var expected = r.ExpectedDowntime is { } e ? string.Create(CultureInfo.InvariantCulture, $"{e.TotalMilliseconds:0.0} ms") : "unknown";
        var throttle = r.ThrottlePercent > 0 ? string.Create(CultureInfo.InvariantCulture, $", throttle {r.ThrottlePercent}%") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"migration: round {r.Iteration}: {r.Pages} pages, {size} in {ms:0.0} ms ({mbps:0} Mbit/s); dirtied {r.DirtyPages} pages ({r.DirtyPagesPerSecond:0}/s); expected downtime {expected}{throttle}");
    }

    private static string Octets(long n) => n switch
    {
        >= 1 << 30 => string.Create(CultureInfo.InvariantCulture, $"{n / (double)(1 << 30):0.00} GiB"),
        >= 1 << 20 => string.Create(CultureInfo.InvariantCulture, $"{n / (double)(1 << 20):0.0} MiB"),
        >= 1 << 10 => string.Create(CultureInfo.InvariantCulture, $"{n / 1024.0:0.0} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{n} B"),
    };
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
[JsonSerializable(typeof(MigrationRound))]
internal sealed partial class MigrationJson : JsonSerializerContext;
