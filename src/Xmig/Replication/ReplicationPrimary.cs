using System.Diagnostics;
using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxl;
using Xmig.Migration;
using Xmig.Save;
using Xmig.Transport;

namespace Xmig.Replication;

/// <summary>
/// The primary of checkpoint replication (Remus; COLO with <see cref="ReplicationOptions.Colo"/>), as <c>xl remus</c>:
/// over xl's migration channel it sends a checkpointed stream whose first checkpoint is a live migration, then a
/// checkpoint every interval (v2-stream.md §6.2, §6.3; legacy §7.2), and waits for the secondary's acknowledgement of
/// each before its guest resumes (Remus releases buffered output there).
/// </summary>
/// <remarks>
/// <para>The secondary lost (the connection ends, breaks, or an acknowledgement or a write waits past the heartbeat):
/// the guest resumes, log-dirty off, and "backup failed, resuming at primary" is said; with
/// <see cref="ReplicationOptions.Reconnect"/> the primary waits for a new secondary and starts again with a full
/// first pass.</para>
/// <para>A controlled end (<see cref="RequestStop"/>, or <see cref="ReplicationOptions.StopAfter"/>) sends a final
/// checkpoint marked last (v2: END, legacy: LAST_CHECKPOINT). Then, as a migration: "ready to unpause", and GO
/// (switchover: the source is renamed away and stopped) or xmig's detach message (detach: the guest runs on here and
/// the secondary discards its copy).</para>
/// <para>Epochs (README "Replication epochs"): the domain's lineage and epoch are offered in the xl header; an xmig
/// secondary accepts with XMIG_HELLO, after which every v2 checkpoint carries XMIG_EPOCH and every acknowledgement the
/// epoch. A secondary holding the domain at a later epoch refuses, and the primary stops replicating.</para>
/// </remarks>
internal sealed class ReplicationPrimary(SimulatedDomain domain, ReplicationOptions options, ReplicationLog log, Action<string>? say = null)
{
    private volatile bool _stopRequested;
    private volatile CheckpointDriver? _driver;

    /// <summary>Asks for a controlled end: the next checkpoint is the last (<see cref="ReplicationOptions.OnStop"/> says what follows). Thread-safe.</summary>
    public void RequestStop()
    {
        _stopRequested = true;
        _driver?.RequestStop();
    }

    public bool StopRequested => _stopRequested;

    /// <summary>
    /// Replicates until a controlled end, the loss of the secondary (without reconnect), a refusal or
    /// <paramref name="cancellationToken"/> (which abandons at once: the guest runs on here). <paramref name="connect"/>
    /// makes the channel to the secondary; for the sessions after the first it may wait for one to appear (it receives
    /// the session number) and return null when it gives up.
    /// </summary>
    public ReplicationResult Run(Func<int, CancellationToken, XlMigrationChannel?> connect, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connect);
        var clock = Stopwatch.StartNew();
        var identity = ReplicationIdentity.LoadOrCreate(domain.Directory);
        long bytes = 0;
        for (var session = 1; ; session++)
        {
            XlMigrationChannel? channel;
            try
            {
                channel = connect(session, cancellationToken);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                channel = null;
                if (session == 1)
                {
                    return new ReplicationResult { Status = "failed", Error = e.Message, Epoch = identity.Epoch, SourceDirectory = domain.Directory, Sessions = 0 };
                }
            }

            if (channel is null)
            {
                return new ReplicationResult
                {
                    Status = "backup-failed",
                    Error = "no new secondary connected",
                    Epoch = identity.Epoch,
                    Sessions = session - 1,
                    SourceDirectory = domain.Directory,
                    Bytes = bytes,
                    TotalTimeMs = clock.Elapsed.TotalMilliseconds,
                };
            }

            ReplicationResult result;
            using (channel)
            {
                result = RunSession(channel, identity, session, cancellationToken);
            }

            bytes += result.Bytes;
            result = result with { Bytes = bytes, TotalTimeMs = clock.Elapsed.TotalMilliseconds };
            if (result.Status != "backup-failed" || !options.Reconnect || StopRequested || cancellationToken.IsCancellationRequested)
            {
                return result;
            }

            log.Write("reconnect", json => json.WriteNumber("session", session + 1));
            say?.Invoke("replication primary: waiting for a new secondary (--reconnect)");
        }
    }

    private ReplicationResult RunSession(XlMigrationChannel channel, ReplicationIdentity identity, int session, CancellationToken cancellationToken)
    {
        var directory = domain.Directory;
        var output = new CountingWriteStream(options.First.MaxBandwidth is { } bandwidth ? new RateLimitedWriteStream(channel.Output, bandwidth) : channel.Output);
        var pauses = new List<double>();
        var sizes = new List<long>();
        var pause = new Stopwatch();
        var step = "banner";
        var sent = 0;
        string? digestText = null;
        uint? epoch = null;
        long checkpointStart = 0;
        var link = new SecondaryLink(channel.Input, domain.P2mSize)
        {
            Acknowledged = ack => log.Write("acked", json =>
            {
                json.WriteNumber("checkpoint", ack.Checkpoint);
                json.WriteNumber("epoch", ack.Epoch);
            }),
        };

        ReplicationResult Result(string status, string? error, SourceState source = SourceState.Running) => new()
        {
            Status = status,
            Error = error,
            Source = source,
            SourceDirectory = domain.Directory,
            Epoch = identity.Epoch,
            Sessions = session,
            Checkpoints = sent,
            Acknowledged = link.Acked,
            Digest = digestText,
            Bytes = output.Written,
            PausesMs = pauses,
            CheckpointBytes = sizes,
        };

        var abort = channel.AbortOn(cancellationToken);
        channel.WriteTimeout = options.StallTimeout;
        var save = options.First.Save with
        {
            Kind = options.Kind == SaveStreamKind.Xl ? SaveStreamKind.Libxl : options.Kind,
            Checkpoints = SaveOptions.UntilStopped,
            CheckpointInterval = options.Interval,
            Live = true,
            Compress = options.Compress,
            DomainName = options.DomainName,
        };
        try
        {
            channel.ExpectBanner(Min(options.First.BannerTimeout, options.StallTimeout));
            step = "stream";
            var offer = new ReplicationOffer(identity.Epoch, identity.Lineage, options.Colo);
            MigrationSender.WriteXlHeader(output, domain, save with { Kind = options.Kind }, offer.ToBytes());
            link.Start();
            using var digest = new CheckpointDigest(domain.P2mSize);
            using var engine = new SaveEngine(domain, output, save) { Digest = digest };
            using var driver = new CheckpointDriver(engine, options.Interval, 0);
            _driver = driver;
            if (StopRequested || options.StopAfter == 1)
            {
                driver.RequestStop();
            }

            engine.Progress = progress =>
            {
                switch (progress.Phase)
                {
                    case SavePhase.StopAndCopy:
                        pause.Restart();
                        if (progress.Checkpoint == 1 && epoch is null)
                        {
                            // The secondary answered the offer long before the first pass ended; a secondary that is not
                            // xmig's never does, and then no epoch record is written.
                            if (link.WaitHello(options.Heartbeat) is { } hello)
                            {
                                epoch = hello.Epoch;
                                engine.Epoch = hello.Epoch;
                                link.Epoch = hello.Epoch;
                            }
                        }

                        break;
                    case SavePhase.Resumed:
                        pauses.Add(pause.Elapsed.TotalMilliseconds);
                        channel.WriteTimeout = options.Heartbeat;
                        break;
                }
            };
            if (options.Colo)
            {
                driver.BeforeCheckpoint = (n, _) =>
                {
                    // v2-stream.md §6.6 step 11: the trigger (here: the interval) starts checkpoint n.
                    engine.WriteCheckpointState((uint)CheckpointStateId.CheckpointNew);
                    return ValueTask.CompletedTask;
                };
                engine.Suspended = (n, bitmap) =>
                {
                    // Steps 2–4: SVM_SUSPENDED, then the pfns the secondary's guest dirtied, sent again from here.
                    link.WaitColo(BackChannelRecordKind.CheckpointState, CheckpointStateId.CheckpointSvmSuspended, options.Heartbeat);
                    var dirty = link.WaitColo(BackChannelRecordKind.DirtyPfnList, null, options.Heartbeat);
                    foreach (var pfn in dirty.Pfns!)
                    {
                        bitmap[(int)(pfn >> 6)] |= 1UL << (int)(pfn & 63);
                    }
                };
            }

            driver.Sealed = info =>
            {
                // Logged before the checkpoint's CHECKPOINT leaves: a secondary can never commit a checkpoint this log
                // does not name, even when the primary is killed right after.
                digestText = digest.Digest();
                var text = digestText;
                var size = info.Bytes - checkpointStart;
                log.Write("sent", json =>
                {
                    json.WriteNumber("checkpoint", info.Checkpoint);
                    if (epoch is { } e)
                    {
                        json.WriteNumber("epoch", e);
                    }

                    json.WriteString("digest", text);
                    json.WriteNumber("bytes", size);
                    json.WriteNumber("pause_ms", Math.Round(pause.Elapsed.TotalMilliseconds, 3));
                    json.WriteBoolean("last", info.Last);
                });
            };
            driver.AfterCheckpoint = (info, _) =>
            {
                sent = info.Checkpoint;
                sizes.Add(info.Bytes - checkpointStart);
                checkpointStart = info.Bytes;
                if (info.Last)
                {
                    // The final checkpoint's acknowledgement is marked last: the handshake follows on the channel.
                    if (epoch is not null)
                    {
                        link.WaitAck(info.Checkpoint, options.StallTimeout);
                        link.WaitEnded(options.StallTimeout);
                    }
                }
                else if (!options.NoWait || options.Colo)
                {
                    if (epoch is null)
                    {
                        throw new SecondaryLostException("the secondary does not acknowledge checkpoints (it never answered the replication offer: not an xmig secondary?); use --no-wait");
                    }

                    link.WaitAck(info.Checkpoint, options.Heartbeat);
                }
                else
                {
                    link.ThrowIfLost();
                }

                if (options.StopAfter > 0 && info.Checkpoint == options.StopAfter - 1)
                {
                    driver.RequestStop();
                }

                return ValueTask.CompletedTask;
            };

            driver.Run(cancellationToken);
        }
        catch (ReplicationRefusedException e)
        {
            abort.Dispose();
            Resume();
            log.Write("refused", json => json.WriteString("reason", e.Message));
            return Result("refused", "the secondary refused the replication: " + e.Message);
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested)
        {
            abort.Dispose();
            Resume();
            log.Write("cancelled", json => json.WriteNumber("checkpoint", sent));
            return Result("cancelled", $"replication cancelled during the {step} step" + (e is OperationCanceledException ? "" : $" ({e.Message})"));
        }
        catch (Exception e) when (e is IOException or XlChannelException or StreamFormatException or TimeoutException or ObjectDisposedException)
        {
            abort.Dispose();
            channel.Abort();
            Resume();
            var reason = e is SecondaryLostException ? e.Message : Describe(e);
            if (sent == 0 && step == "banner")
            {
                return Result("failed", reason);
            }

            say?.Invoke("backup failed, resuming at primary");
            log.Write("backup-failed", json =>
            {
                json.WriteNumber("checkpoint", sent);
                json.WriteNumber("acked", link.Acked);
                json.WriteString("reason", reason);
            });
            return Result("backup-failed", "backup failed, resuming at primary: " + reason);
        }
        finally
        {
            _driver = null;
        }

        // ---- the controlled end: the stream ended with a checkpoint marked last ----
        abort.Dispose();
        try
        {
            step = "ready";
            channel.ExpectReady(options.StallTimeout);
        }
        catch (XlChannelException e)
        {
            Resume();
            say?.Invoke("backup failed, resuming at primary");
            log.Write("backup-failed", json => json.WriteString("reason", e.Message));
            return Result("backup-failed", "the secondary did not complete the final checkpoint: " + e.Message);
        }

        if (options.OnStop == StopAction.Detach)
        {
            try
            {
                channel.SendDetach();
            }
            catch (XlChannelException)
            {
                // The secondary gone: it keeps nothing either way (a checkpoint it cannot run without GO or detach is
                // its failover copy; see ReplicaReceiver).
            }

            Resume();
            log.Write("detached", json => json.WriteNumber("checkpoint", sent));
            return Result("detached", null);
        }

        var away = directory.TrimEnd(Path.DirectorySeparatorChar) + MigrationSender.MigratedAwaySuffix;
        try
        {
            step = "rename";
            Directory.Move(directory, away);
            domain.Relocate(away);
        }
        catch (IOException e)
        {
            channel.Abort();
            Resume();
            return Result("backup-failed", $"could not rename the source away for the switchover: {e.Message}");
        }

        byte status;
        try
        {
            step = "report";
            channel.SendPermissionToGo();
            status = channel.ReadReport(options.First.ReportTimeout);
        }
        catch (XlChannelException e)
        {
            return Result("failed", $"switchover failed during the final handshake: {e.Message}. The domain's state is now undefined: check both ends "
                + $"for a running copy before resuming at most one (the source is paused, at {away})", SourceState.Undefined);
        }

        if (status != 0)
        {
            try
            {
                channel.ExpectPermissionToResume(options.First.ReportTimeout);
            }
            catch (XlChannelException e)
            {
                return Result("failed", $"the secondary reported a startup failure (status {status}) but not that it destroyed its copy: {e.Message} (the source is paused, at {away})", SourceState.Undefined);
            }

            Directory.Move(away, directory);
            domain.Relocate(directory);
            Resume();
            return Result("backup-failed", string.Create(CultureInfo.InvariantCulture, $"switchover failed at the secondary (status {status}); the primary resumed"));
        }

        domain.StopWorkload();
        log.Write("switchover", json =>
        {
            json.WriteNumber("checkpoint", sent);
            json.WriteString("digest", digestText);
        });
        return Result("switchover", null, SourceState.MigratedAway);
    }

    /// <summary>The guest runs again here: unpaused, log-dirty off (the driver's abandon did it on most paths).</summary>
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

    private static string Describe(Exception e) => e switch
    {
        IOException { InnerException: System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.TimedOut or System.Net.Sockets.SocketError.WouldBlock } } =>
            "the secondary stopped reading (a write blocked past the heartbeat)",
        XlChannelException => e.Message,
        _ => "sending to the secondary failed: " + e.Message,
    };

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
