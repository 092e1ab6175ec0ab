using System.Diagnostics;
using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Xl;
using Xmig.Restore;
using Xmig.Transport;

namespace Xmig.Migration;

/// <summary>
/// The receiving end of a live migration, as <c>xl migrate-receive</c> (Xen <c>tools/xl/xl_migrate.c</c>,
/// legacy-stream.md §3.2): send the banner, restore the stream (any kind, detected) into a working directory,
/// say "ready to unpause", wait for GO, then put the domain in place and start it, and report.
/// </summary>
/// <remarks>
/// <para>Nothing is left behind before GO: the domain is built beside its target and only renamed into place
/// after GO; on any failure the working directory is removed and the channel closed without "ready", so the sender
/// resumes its copy.</para>
/// <para><c>--checkpointed</c> on the channel (legacy §10.2, §10.3). The channel is the toolstack that knows what
/// the stream is: <c>xl migrate-receive</c> without <c>-r</c> takes a plain stream. So <c>auto</c> reads a legacy
/// image as plain (commit after the first tail, Xen's fix), which is exact for every sender generation and never
/// waits for the heartbeat while the sender waits for message 3; v2 streams are decided from their records.
/// <c>yes</c> reads it as Xen's checkpointed receiver does: an image without LAST_CHECKPOINT (a sender before
/// 4.1) then ends only by 1 s of silence, which Xen takes for a Remus failover and answers by starting its copy
/// without the sender's GO. That is refused here, in words, and the sender keeps its copy running.</para>
/// </remarks>
internal sealed class MigrationReceiver(MigrationReceiveOptions options, Action<string>? log = null)
{
    /// <summary>
    /// Receives one domain into <paramref name="into"/> (which must not exist, or be empty). After GO,
    /// <paramref name="start"/> starts the domain (unpause, or host it); an exception from it is the startup failure
    /// reported with a non-zero status. The domain passed to <paramref name="start"/> is owned by the caller from then on.
    /// </summary>
    /// <remarks>
    /// Cancelling <paramref name="cancellationToken"/> (SIGINT, SIGTERM) before GO aborts the channel and fails as
    /// any failure before GO does: nothing is kept, and the sender resumes its copy. From GO on it is ignored.
    /// </remarks>
    public MigrationReceiveResult Run(XlMigrationChannel channel, string into, Action<SimulatedDomain>? start = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(into);
        var clock = Stopwatch.StartNew();
        var step = "setup";
        var mode = "";
        RestoreResult? restored = null;
        MemoryDigestResult? digest = null;
        SimulatedDomain? domain = null;
        string? working = null;

        MigrationReceiveResult Result(bool completed, string? error) => new()
        {
            Completed = completed,
            Error = error,
            FailedAt = completed ? null : step,
            Directory = completed ? Path.GetFullPath(into) : "",
            StreamKind = restored?.StreamKind ?? "",
            SenderGeneration = restored?.SenderGeneration ?? "",
            Checkpointed = mode,
            End = restored?.End ?? "",
            Received = channel.Input.Consumed,
            TotalTimeMs = clock.Elapsed.TotalMilliseconds,
            Digest = digest?.Sha256,
            Pages = digest?.Pages ?? 0,
            Warnings = restored?.Warnings ?? [],
        };

        // ---- before GO: nothing may be left behind ----
        var abort = channel.AbortOn(cancellationToken);
        try
        {
            working = DomainDirectory.CreateWorkingDirectory(into);
            step = "banner";
            log?.Invoke("migration target: Ready to receive domain.");
            channel.SendBanner();

            step = "stream";
            channel.Input.ReadTimeout = Millis(options.StallTimeout);
            var legacy = IsLegacyPayload(channel.Input);
            var checkpointed = options.Checkpointed;
            if (checkpointed == CheckpointedMode.Auto && legacy)
            {
                checkpointed = CheckpointedMode.No;
                mode = "no (auto: a legacy image on the xl channel is one image, as xl migrate-receive without -r says)";
            }
            else
            {
                mode = checkpointed.ToString().ToLowerInvariant();
            }

            var engine = new RestoreEngine(
                (type, width, maxP2m) => SimulatedDomain.CreateEmpty(working, type, width, maxP2m),
                new RestoreOptions
                {
                    Checkpointed = checkpointed,
                    MaxGuestPhysicalBytes = options.MaxGuestPhysicalBytes,
                    SpoolDirectory = working,
                    Heartbeat = options.Heartbeat,
                });
            try
            {
                restored = engine.Run(new Xmig.IO.HeartbeatStream(channel.Input) { Cancellation = cancellationToken });
                domain = (SimulatedDomain)engine.Domain!;

                // An aborted channel reads as its end: never take that for a complete (or failed-over) stream.
                cancellationToken.ThrowIfCancellationRequested();
            }
            catch
            {
                engine.Domain?.Dispose();
                throw;
            }

            channel.Input.ReadTimeout = Timeout.Infinite;
            step = "checkpointed";
            if (checkpointed == CheckpointedMode.Yes && legacy && restored.SenderGeneration != "legacy-4.1")
            {
                var heartbeat = options.Heartbeat.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
                throw new InvalidOperationException(
                    "the stream was read as checkpointed (--checkpointed yes) but its sender never marked a last checkpoint "
                    + "(a sender before Xen 4.1, legacy-stream.md §10.2), so the image ended only because nothing arrived for "
                    + heartbeat + " s while the sender waited for \"domain received, ready to unpause\" (" + restored.End + "). "
                    + "Xen's checkpointed receiver takes that silence for a Remus failover and starts its copy without the sender's GO, "
                    + "so two copies would run; xmig discards its copy and the sender keeps the domain running. "
                    + "Receive a plain migration with --checkpointed auto or no");
            }

            domain.Save();
            step = "ready";
            log?.Invoke("migration target: Transfer complete, requesting permission to start domain.");
            channel.SendReady();
            if (options.Digest)
            {
                // After "ready" (the end of the downtime) and before the guest can run: the image as received.
                digest = MemoryDigest.Compute(domain);
            }

            step = "go";
            channel.ExpectPermissionToGo(options.StallTimeout < options.GoTimeout ? options.StallTimeout : options.GoTimeout);
        }
        catch (Exception e)
        {
            abort.Dispose();
            domain?.Dispose();
            if (working != null)
            {
                DomainDirectory.Discard(working);
            }

            log?.Invoke("migration target: Domain creation failed; nothing kept.");
            return Result(false, cancellationToken.IsCancellationRequested
                ? $"the migration was cancelled during the {step} step; nothing was kept"
                : working is null ? e.Message : DomainDirectory.Unstage(e.Message, working, into));
        }

        // From GO on a signal no longer abandons the domain (the xl resume path).
        abort.Dispose();

        // ---- after GO: the xl resume path ----
        log?.Invoke("migration target: Got permission, starting domain.");
        string? startFailure = null;
        try
        {
            step = "start";
            DomainDirectory.Commit(working, into);
            domain.Relocate(Path.GetFullPath(into));
            start?.Invoke(domain);
        }
        catch (Exception e)
        {
            startFailure = e.Message;
        }

        step = "report";
        if (startFailure != null)
        {
            log?.Invoke("migration target: Failure, destroying our copy.");
            domain.Dispose();
            DomainDirectory.Discard(Directory.Exists(working) ? working : Path.GetFullPath(into));
            try
            {
                channel.SendReport(1); // with message 6: the sender may resume
            }
            catch (XlChannelException)
            {
            }

            step = "start";
            return Result(false, "could not start the domain after GO: " + startFailure);
        }

        try
        {
            channel.SendReport(0);
        }
        catch (XlChannelException e)
        {
            // The domain runs here; the sender did not hear so. xl exits with failure and keeps its copy.
            return Result(false, e.Message + " (the domain was started here)") with { Directory = Path.GetFullPath(into) };
        }

        log?.Invoke("migration target: Domain started successfully.");
        if (start is null)
        {
            domain.Dispose();
        }

        return Result(true, null);
    }

    /// <summary>True when the stream is a legacy image, bare or behind an xl header without STREAMv2 (looked at, not consumed).</summary>
    internal static bool IsLegacyPayload(ChannelInputStream input)
    {
        var head = input.Peek(XlHeader.Size);
        if (!XlHeader.HasMagic(head) || head.Length < XlHeader.Size)
        {
            return StreamDetector.Detect(head) == StreamKind.Legacy;
        }

        var header = XlHeader.Read(head);
        if (header.IsStreamV2)
        {
            return false;
        }

        // After the config: a libxc v2 image shows its marker; anything else is a legacy image.
        var after = XlHeader.Size + (long)header.OptionalDataLength;
        if (after + 8 > 64 << 10)
        {
            return true;
        }

        var more = input.Peek((int)after + 8);
        return more.Length < after + 8 || !StreamDetector.IsLibxcMarker(more[(int)after..]);
    }

    private static int Millis(TimeSpan t) => t == Timeout.InfiniteTimeSpan ? Timeout.Infinite : (int)Math.Clamp(t.TotalMilliseconds, 1, int.MaxValue);
}
