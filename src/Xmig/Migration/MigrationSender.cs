using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xmig.Domains;
using Xmig.Formats.Xl;
using Xmig.Save;
using Xmig.Transport;

namespace Xmig.Migration;

/// <summary>
/// The sending end of a live migration, as <c>xl migrate</c> (Xen <c>tools/xl/xl_migrate.c</c>,
/// legacy-stream.md §3.2): wait for the banner, send the xl header, config and stream while the guest runs
/// (pre-copy through <see cref="SaveEngine"/>), wait for "ready to unpause", rename the source away, give GO,
/// and read the receiver's report.
/// </summary>
/// <remarks>
/// <para>Before GO, any failure resumes the source: unpaused, log-dirty off, its directory unchanged (xl's
/// <c>failed_resume</c>). After GO a failure to read the report leaves it paused and renamed, and says so (xl's
/// <c>failed_badly</c>: two copies must never run). A non-zero status followed by the receiver's permission
/// renames the source back and resumes it (the resume path).</para>
/// <para>On the channel the xl header is always sent (message 2 is "xl header + config + stream"): the save
/// engine writes it for <c>--stream xl</c>; for the other kinds this class writes it in front of the payload, as the
/// xl of that generation did (legacy: pre-JSON flags and an xl config text; libxl: STREAMv2; libxc: a v2 image that
/// xmig and <c>verify-stream-v2</c> accept behind a header without STREAMv2).</para>
/// </remarks>
internal sealed class MigrationSender(SimulatedDomain domain, MigrationSendOptions options, Action<string>? log = null)
{
    /// <summary>The suffix xl gives the old domain between GO and its destruction.</summary>
    public const string MigratedAwaySuffix = "--migratedaway";

    /// <summary>Called as each memory pass ends, on the saving thread: the feed of the per-round lines (<see cref="MigrationRoundLine"/>) or a live display.</summary>
    public Action<SaveRound>? Round { get; set; }


    /// <summary>
    /// Runs one migration over <paramref name="channel"/>. Cancelling <paramref name="cancellationToken"/> (SIGINT,
    /// SIGTERM) before GO abandons it as any failure does: the channel is aborted (a blocked write or read ends), the
    /// save is abandoned and the source resumes, its directory unchanged. From GO on it is ignored (the xl resume path).
    /// </summary>
    public MigrationSendResult Run(XlMigrationChannel channel, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var clock = Stopwatch.StartNew();
        var directory = domain.Directory;
        var away = directory.TrimEnd(Path.DirectorySeparatorChar) + MigratedAwaySuffix;
        var output = new CountingWriteStream(options.MaxBandwidth is { } bandwidth ? new RateLimitedWriteStream(channel.Output, bandwidth) : channel.Output);
        var rounds = new List<SaveRound>();
        double? setupMs = null;
        double? pausedMs = null;
        double? downtimeMs = null;
        SaveResult? save = null;
        Task<MemoryDigestResult>? digest = null;
        var step = "setup";
        var save0 = options.Save with { Checkpoints = 0, Live = true };
        var policyName = (save0.Policy ?? PrecopyPolicies.For(save0.Kind)).Name;
        var downtimeLimit = (save0.Policy as DowntimePrecopyPolicy)?.DowntimeLimit;

        MigrationSendResult Result(bool completed, SourceState source, string? error, byte? status = null) => new()
        {
            Completed = completed,
            Error = error,
            FailedAt = completed ? null : step,
            Source = source,
            SourceDirectory = domain.Directory,
            TotalTimeMs = clock.Elapsed.TotalMilliseconds,
            SetupTimeMs = setupMs ?? clock.Elapsed.TotalMilliseconds,
            DowntimeMs = downtimeMs,
            Transferred = output.Written,
            PagesSent = save?.PagesSent ?? 0,
            Iterations = save?.Iterations ?? 0,
            FinalDirtyPages = save?.FinalDirtyPages ?? 0,
            DestinationStatus = status,
            SourceDigest = digest is { IsCompletedSuccessfully: true } ? digest.Result.Sha256 : null,
            SourcePages = digest is { IsCompletedSuccessfully: true } ? digest.Result.Pages : 0,
            Policy = policyName,
            DowntimeLimitMs = downtimeLimit?.TotalMilliseconds,
            MaxBandwidth = options.MaxBandwidth,
            StopReason = save?.StopReason ?? "",
            ThrottlePercent = save?.ThrottlePercent ?? 0,
            Rounds = rounds,
        };

        // ---- before GO: every failure resumes the source where it was ----
        var abort = channel.AbortOn(cancellationToken);
        channel.WriteTimeout = options.StallTimeout;
        try
        {
            if (Directory.Exists(away) || File.Exists(away))
            {
                throw new IOException($"{away} exists: the source cannot be renamed away after the migration; remove it first");
            }

            step = "banner";
            channel.ExpectBanner(Bounded(options.BannerTimeout));

            step = "stream";
            if (save0.Kind != SaveStreamKind.Xl)
            {
                WriteXlHeader(output, domain, save0);
            }

            using (var engine = new SaveEngine(domain, output, save0))
            {
                engine.Progress = progress =>
                {
                    if (progress.Phase == SavePhase.Iteration && setupMs is null)
                    {
                        setupMs = clock.Elapsed.TotalMilliseconds;
                    }
                    else if (progress.Phase == SavePhase.StopAndCopy && pausedMs is null)
                    {
                        pausedMs = clock.Elapsed.TotalMilliseconds;
                    }
                };
                engine.Round = round =>
                {
                    rounds.Add(round);
                    Round?.Invoke(round);
                };
                save = engine.Run(cancellationToken);
            }

            output.Flush();
            step = "ready";
            channel.ExpectReady(Bounded(ReadyTimeout(clock.Elapsed)));
            downtimeMs = clock.Elapsed.TotalMilliseconds - (pausedMs ?? clock.Elapsed.TotalMilliseconds);
            if (options.Digest)
            {
                // The guest stays paused until after the rename, so this is still the source's image at pause. It is
                // computed after "ready", not while the receiver completes: on a shared machine it took CPU from the
                // receiver inside the downtime window.
                digest = Task.Run(() => MemoryDigest.Compute(domain));
            }

            log?.Invoke("migration sender: Target has acknowledged transfer.");

            // xl renames the old domain away before it lets the target take the name.
            step = "rename";
            Directory.Move(directory, away);
            domain.Relocate(away);
        }
        catch (Exception e)
        {
            abort.Dispose();
            Resume();
            digest?.Wait(CancellationToken.None);
            log?.Invoke("migration sender: Migration failed, resuming at sender.");
            return Result(false, SourceState.Running, cancellationToken.IsCancellationRequested
                ? $"the migration was cancelled during the {step} step; nothing was handed over"
                : Describe(step, e, options.StallTimeout));
        }

        // From GO on a signal no longer abandons the migration.
        abort.Dispose();
        digest?.Wait(CancellationToken.None);

        // ---- the point of no return ----
        log?.Invoke("migration sender: Giving target permission to start.");
        byte status;
        try
        {
            step = "report";
            channel.SendPermissionToGo();
            status = channel.ReadReport(options.ReportTimeout);
        }
        catch (Exception e)
        {
            return Result(false, SourceState.Undefined,
                $"migration failed during the final handshake: {e.Message}. The domain's state is now undefined: check both ends "
                + $"for a running copy before resuming at most one (the source is paused, at {away})");
        }

        if (status != 0)
        {
            log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"migration sender: Target reports startup failure (status code {status})."));
            try
            {
                step = "resume";
                channel.ExpectPermissionToResume(options.ReportTimeout);
            }
            catch (Exception e)
            {
                return Result(false, SourceState.Undefined,
                    $"the target reported a startup failure (status {status}) but not that it destroyed its copy: {e.Message}. "
                    + $"The domain's state is now undefined (the source is paused, at {away})", status);
            }

            log?.Invoke("migration sender: Trying to resume at our end.");
            Directory.Move(away, directory);
            domain.Relocate(directory);
            Resume();
            return Result(false, SourceState.Running, string.Create(CultureInfo.InvariantCulture,
                $"migration failed due to problems at the target (status {status}); the source was resumed"), status);
        }

        log?.Invoke("migration sender: Target reports successful startup.");
        domain.StopWorkload();
        return Result(true, SourceState.MigratedAway, null, status);
    }

    /// <summary>
    /// The wait for "ready to unpause": the option's, or, under <c>--timeout</c> with <c>--on-timeout abort</c>, what is left
    /// of the timeout (at least a second), so that a receiver that never answers cannot outlast it.
    /// </summary>
    private TimeSpan ReadyTimeout(TimeSpan elapsed)
    {
        var limits = options.Save.Limits;
        if (limits.Timeout is not { } timeout || limits.OnTimeout != TimeoutAction.Abort)
        {
            return options.ReadyTimeout;
        }

        var left = timeout - elapsed;
        return left < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : left < options.ReadyTimeout ? left : options.ReadyTimeout;
    }

    /// <summary>The source runs again as before the migration: unpaused, log-dirty off.</summary>
    private void Resume()
    {
        if (domain.LogDirty)
        {
            domain.DisableLogDirty();
        }

        if (domain.IsPaused)
        {
            domain.Unpause();
        }
    }

    private static string Describe(string step, Exception e, TimeSpan stall) => e switch
    {
        XlChannelException => e.Message,
        IOException { InnerException: System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.TimedOut or System.Net.Sockets.SocketError.WouldBlock } } when step == "stream" =>
            string.Create(CultureInfo.InvariantCulture, $"while sending the stream: the migration receiver stopped reading (nothing could be written for {stall.TotalSeconds:0.###} s, the stall timeout)"),
        _ when step == "stream" => $"while sending the stream: {e.Message}",
        _ => e.Message,
    };

    /// <summary>A wait for the receiver, bounded by the stall timeout too.</summary>
    private TimeSpan Bounded(TimeSpan wait) => options.StallTimeout < wait ? options.StallTimeout : wait;

    /// <summary>
    /// xl's message 2 preamble for the kinds whose save does not write it (legacy §3.1, v2 §5); for <c>xl</c> (JSON and
    /// STREAMv2) the one xl writes, for a save run as <c>libxl</c> behind it. <paramref name="extra"/> follows the config
    /// in the optional data, which xl ignores (replication's offer).
    /// </summary>
    internal static void WriteXlHeader(Stream output, IDomain domain, SaveOptions save, ReadOnlySpan<byte> extra = default)
    {
        var legacy = save.Kind is SaveStreamKind.Legacy40 or SaveStreamKind.Legacy41;
        var flags = save.Kind switch
        {
            SaveStreamKind.Libxl or SaveStreamKind.Xl => XlMandatoryFlags.Json | XlMandatoryFlags.StreamV2,
            SaveStreamKind.Libxc => XlMandatoryFlags.Json,
            _ => XlMandatoryFlags.None, // xl ≤ 4.4: the user's config text, no flags
        };
        var config = legacy ? XlConfigText(domain, save) : XlConfigJson(domain, save);
        var block = XlHeader.BuildConfigBlock(config);
        Span<byte> header = stackalloc byte[XlHeader.Size];
        XlHeader.Create(flags, (uint)(block.Length + extra.Length)).Write(header);
        output.Write(header);
        output.Write(block);
        output.Write(extra);
    }

    private static byte[] XlConfigText(IDomain domain, SaveOptions save)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"name = \"{save.DomainName}\"\n");
        if (domain.GuestType == GuestType.Hvm)
        {
            text.Append("builder = \"hvm\"\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"memory = {Math.Max(1UL, domain.MemoryBytes >> 20)}\n");
        text.Append(CultureInfo.InvariantCulture, $"vcpus = {domain.MaxVcpuId + 1}\n");
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    private static byte[] XlConfigJson(IDomain domain, SaveOptions save)
    {
        var type = domain.GuestType == GuestType.Hvm ? "hvm" : "pv";
        var json = string.Create(CultureInfo.InvariantCulture,
            $"{{\"c_info\":{{\"type\":\"{type}\",\"name\":\"{save.DomainName}\"}},\"b_info\":{{\"max_vcpus\":{domain.MaxVcpuId + 1},\"max_memkb\":{domain.MemoryBytes / 1024}}}}}\0");
        return Encoding.ASCII.GetBytes(json);
    }
}
