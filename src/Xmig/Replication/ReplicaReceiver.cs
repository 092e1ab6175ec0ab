using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;
using Xmig.Migration;
using Xmig.Restore;
using Xmig.Transport;

namespace Xmig.Replication;

/// <summary>How a secondary runs (<c>xmig migrate-receive --replica</c>).</summary>
internal sealed record ReplicaOptions
{
    public ulong MaxGuestPhysicalBytes { get; init; } = RestoreOptions.DefaultMaxGuestPhysicalBytes;

    /// <summary>Bound on silence before the first checkpoint is complete, and on the waits of the final handshake.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Silence on the forward stream after a complete checkpoint that makes the secondary take over (<c>--heartbeat</c>).</summary>
    public TimeSpan Heartbeat { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>COLO (<c>--colo</c>): the secondary's guest runs between checkpoints under <see cref="Workload"/>.</summary>
    public bool Colo { get; init; }

    /// <summary>COLO: what the secondary's guest does between checkpoints.</summary>
    public WorkloadSpec Workload { get; init; } = WorkloadSpec.Idle;

    public ulong Seed { get; init; } = 2;
}

/// <summary>How a replication ended, for the secondary.</summary>
internal sealed record ReplicaResult
{
    /// <summary><c>failover</c>, <c>switchover</c> (both: the domain is here), <c>detached</c>, <c>refused</c> or <c>failed</c> (nothing kept).</summary>
    public string Status { get; init; } = "failed";

    public string? Error { get; init; }

    /// <summary>The checkpoint the domain is (0: none).</summary>
    public int Checkpoint { get; init; }

    /// <summary>Its checkpoint digest (<see cref="CheckpointDigest"/>).</summary>
    public string? Digest { get; init; }

    /// <summary>The epoch the domain now has here (the replication's plus one after a takeover).</summary>
    public uint Epoch { get; init; }

    public string Directory { get; init; } = "";

    public string StreamKind { get; init; } = "";

    /// <summary>How the stream ended, in words.</summary>
    public string End { get; init; } = "";

    public string? FinishReason { get; init; }

    /// <summary>Checkpoints acknowledged to the primary.</summary>
    public int Acknowledged { get; init; }

    public long Received { get; init; }

    public double TotalTimeMs { get; init; }
}

/// <summary>
/// The secondary of checkpoint replication, as <c>xl migrate-receive -r</c> (Remus) or <c>--colo</c>: it restores the
/// primary's checkpointed stream (v2-stream.md §6.4, legacy §9.3) and acknowledges each checkpoint it commits on the
/// back channel (§6.6 framing). It takes over when the forward stream ends, breaks, or is silent past the heartbeat:
/// the last complete checkpoint becomes the domain, never a partial one, at the next epoch. A stream that ends with a
/// checkpoint marked last is a switchover, completed as a migration ("ready", then GO), or a detach (xmig's message
/// instead of GO), after which nothing is kept.
/// </summary>
/// <remarks>Nothing is left behind unless the domain is taken over: the domain is built in a working directory beside
/// <c>--into</c>, renamed into place only then.</remarks>
internal sealed class ReplicaReceiver(ReplicaOptions options, ReplicationLog log, Action<string>? say = null)
{
    internal ReplicaOptions Options => options;

    internal ReplicationLog Log => log;

    /// <summary>Bound on the xl header's optional data looked at for the offer.</summary>
    private const int MaxOptionalData = 1 << 20;

    /// <summary>
    /// Serves one replication into <paramref name="into"/>. When the domain is taken over (failover, switchover),
    /// <paramref name="start"/> runs it; the caller owns it from then on. Cancelling <paramref name="cancellationToken"/>
    /// (SIGINT, SIGTERM) stops the secondary: nothing is kept, and the primary runs on.
    /// </summary>
    public ReplicaResult Run(XlMigrationChannel channel, string into, Action<SimulatedDomain>? start = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var clock = Stopwatch.StartNew();
        var step = "banner";
        string? working = null;
        SimulatedDomain? domain = null;
        RestoreResult? restored = null;
        var writer = new BackChannelWriter(channel.Output);
        Session? session = null;

        ReplicaResult Result(string status, string? error, int checkpoint = 0, string? digest = null, uint epoch = 0) => new()
        {
            Status = status,
            Error = error,
            Checkpoint = checkpoint,
            Digest = digest,
            Epoch = epoch,
            Directory = status is "failover" or "switchover" ? Path.GetFullPath(into) : "",
            StreamKind = restored?.StreamKind ?? "",
            End = restored?.End ?? "",
            FinishReason = restored?.FinishReason.Name(),
            Acknowledged = session?.Acknowledged ?? 0,
            Received = channel.Input.Consumed,
            TotalTimeMs = clock.Elapsed.TotalMilliseconds,
        };

        var abort = channel.AbortOn(cancellationToken);
        try
        {
            channel.SendBanner();
            step = "offer";
            channel.Input.ReadTimeout = Millis(options.StallTimeout);
            var offer = ReadOffer(channel.Input);
            var legacy = MigrationReceiver.IsLegacyPayload(channel.Input);
            var replace = false;
            if (offer is { } o)
            {
                if (Refusal(o, into, out replace) is { } refusal)
                {
                    var held = ReplicationIdentity.Load(into);
                    writer.Send(BackChannelRecords.Refuse(held?.Epoch ?? 0, (ulong)(held?.Checkpoint ?? 0), refusal));
                    log.Write("refused", json => json.WriteString("reason", refusal));
                    abort.Dispose();
                    return Result("refused", refusal);
                }

                writer.Send(BackChannelRecords.Hello(o.Epoch, o.Lineage));
            }
            else if (options.Colo)
            {
                throw new InvalidOperationException("--colo needs an xmig primary replicating with --colo (its xl header carries no replication offer)");
            }

            step = "stream";
            working = replace ? CreateBeside(into) : DomainDirectory.CreateWorkingDirectory(into);
            session = new Session(this, offer, legacy, writer);
            var dir = working;
            var engine = new RestoreEngine(
                (type, width, maxP2m) => session.Domain = SimulatedDomain.CreateEmpty(dir, type, width, maxP2m),
                new RestoreOptions
                {
                    Checkpointed = CheckpointedMode.Yes,
                    MaxGuestPhysicalBytes = options.MaxGuestPhysicalBytes,
                    SpoolDirectory = working,
                    Heartbeat = options.Heartbeat,
                    Observer = session,
                });
            try
            {
                restored = engine.Run(new Xmig.IO.HeartbeatStream(channel.Input) { Cancellation = cancellationToken });
                domain = (SimulatedDomain)engine.Domain!;
                cancellationToken.ThrowIfCancellationRequested();
            }
            catch
            {
                engine.Domain?.Dispose();
                throw;
            }

            session.StopGuest();
            channel.Input.ReadTimeout = Timeout.Infinite;
            var k = restored.CheckpointCommitted;
            if (restored.FinishReason == RestoreFinishReason.End)
            {
                // ---- a checkpoint marked last: switchover or detach, as the primary says after "ready" ----
                step = "ready";
                session.SendLast(k);
                domain.Save();
                channel.SendReady();
                bool go;
                try
                {
                    go = channel.ExpectGoOrDetach(options.StallTimeout);
                }
                catch (XlChannelException e)
                {
                    // The primary vanished with the final checkpoint complete here: that checkpoint is the domain.
                    return TakeOver("failover", $"the primary went away after its last checkpoint ({e.Message})");
                }

                if (!go)
                {
                    abort.Dispose();
                    domain.Dispose();
                    domain = null;
                    DomainDirectory.Discard(working);
                    log.Write("detached", json => json.WriteNumber("checkpoint", k));
                    say?.Invoke("replication secondary: the primary detached; copy discarded");
                    return Result("detached", null, k);
                }

                var result = TakeOver("switchover", null);
                if (result.Status != "switchover")
                {
                    // As xl's receiver: a copy that cannot start is destroyed, and the primary may resume its own.
                    DomainDirectory.Discard(Path.GetFullPath(into));
                    result = result with { Error = result.Error + "; the copy was destroyed and the primary told to resume", Directory = "" };
                }

                try
                {
                    channel.SendReport(result.Status == "switchover" ? (byte)0 : (byte)1);
                }
                catch (XlChannelException)
                {
                }

                return result;
            }

            return TakeOver("failover", restored.End);

            ReplicaResult TakeOver(string how, string? why)
            {
                abort.Dispose();
                step = "takeover";
                var epoch = (offer?.Epoch ?? 0) + 1;
                var digest = CheckpointDigest.Compute(domain!);
                domain!.Save();
                new ReplicationIdentity(offer?.Lineage ?? System.Security.Cryptography.RandomNumberGenerator.GetBytes(16), epoch, k, digest).Save(working!);
                if (replace)
                {
                    SetAside(into);
                }

                DomainDirectory.Commit(working!, into);
                domain.Relocate(Path.GetFullPath(into));
                log.Write(how, json =>
                {
                    json.WriteNumber("checkpoint", k);
                    json.WriteString("digest", digest);
                    json.WriteNumber("epoch", epoch);
                    if (why is not null)
                    {
                        json.WriteString("reason", why);
                    }
                });
                say?.Invoke(string.Create(CultureInfo.InvariantCulture, $"replication secondary: {how} to checkpoint {k} (epoch {epoch}, digest {digest})"));
                try
                {
                    start?.Invoke(domain);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // Persisted, paused, in place: an operator can start it; a switching primary hears status 1 and resumes.
                    domain.Dispose();
                    return Result("failed", $"took over checkpoint {k} (kept paused in {into}) but could not start the domain: {e.Message}", k, digest, epoch);
                }

                if (start is null)
                {
                    domain.Dispose();
                }

                return Result(how, null, k, digest, epoch);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            abort.Dispose();
            session?.StopGuest();
            domain?.Dispose();
            if (working != null)
            {
                DomainDirectory.Discard(working);
            }

            var message = cancellationToken.IsCancellationRequested
                ? $"the secondary was stopped during the {step} step; nothing was kept"
                : (working is null ? e.Message : DomainDirectory.Unstage(e.Message, working, into));
            log.Write("failed", json => json.WriteString("reason", message));
            return Result(e is StaleEpochException ? "refused" : "failed", message);
        }
    }

    /// <summary>Why the offer is refused, or null; <paramref name="replace"/>: <paramref name="into"/> holds an older epoch of the same domain, replaced on takeover.</summary>
    private string? Refusal(ReplicationOffer offer, string into, out bool replace)
    {
        replace = false;
        if (offer.Colo != options.Colo)
        {
            return offer.Colo ? "the primary replicates with --colo, this secondary without it" : "this secondary runs with --colo, the primary without it";
        }

        if (!Directory.Exists(into) || !Directory.EnumerateFileSystemEntries(into).Any())
        {
            return null;
        }

        if (ReplicationIdentity.Load(into) is { } held && held.Lineage.AsSpan().SequenceEqual(offer.Lineage))
        {
            if (held.Epoch >= offer.Epoch)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"stale epoch {offer.Epoch}: {into} holds this domain at epoch {held.Epoch} (taken over at checkpoint {held.Checkpoint}); the primary is not its owner and must not overwrite it");
            }

            replace = true; // an older copy of this domain: the replication's takeover replaces it
            return null;
        }

        return $"{into}: directory exists and is not empty (not a copy of the domain replicated)";
    }

    /// <summary>The offer in the xl header's optional data; null for a stream without an xl header or without an offer.</summary>
    private static ReplicationOffer? ReadOffer(ChannelInputStream input)
    {
        var head = input.Peek(XlHeader.Size);
        if (head.Length < XlHeader.Size || !XlHeader.HasMagic(head))
        {
            return null;
        }

        var header = XlHeader.Read(head);
        if (header.OptionalDataLength > MaxOptionalData)
        {
            return null;
        }

        var all = input.Peek(XlHeader.Size + (int)header.OptionalDataLength);
        return all.Length < XlHeader.Size + (int)header.OptionalDataLength ? null : ReplicationOffer.Find(all[XlHeader.Size..]);
    }

    private static string CreateBeside(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        var working = Path.Combine(Path.GetDirectoryName(full)!, string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(full)}.xmig-{Environment.ProcessId}-{Guid.NewGuid():N}"));
        Directory.CreateDirectory(working);
        return working;
    }

    /// <summary>Moves an older copy out of the way (to a staging name, then removed) so the takeover's can take its place.</summary>
    private static void SetAside(string target)
    {
        var aside = CreateBeside(target);
        Directory.Delete(aside);
        Directory.Move(Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar), aside);
        DomainDirectory.Discard(aside);
    }

    private static int Millis(TimeSpan t) => t == Timeout.InfiniteTimeSpan ? Timeout.Infinite : (int)Math.Clamp(t.TotalMilliseconds, 1, int.MaxValue);

    /// <summary>One replication's state on the restoring thread: acknowledgements, epochs, COLO's guest.</summary>
    private sealed class Session(ReplicaReceiver owner, ReplicationOffer? offer, bool legacy, BackChannelWriter writer) : ICheckpointObserver
    {
        private bool _primaryGone;
        private ulong _epochCheckpoint;
        private ulong[] _dirty = [];

        public SimulatedDomain? Domain { get; set; }

        public int Acknowledged { get; private set; }

        private uint SessionEpoch => offer?.Epoch ?? 0;

        public void Epoch(uint epoch, ulong checkpoint, long offset)
        {
            if (offer is null)
            {
                return;
            }

            if (epoch != SessionEpoch)
            {
                throw new StaleEpochException(string.Create(CultureInfo.InvariantCulture,
                    $"XMIG_EPOCH at offset {offset}: checkpoint {checkpoint} carries epoch {epoch}, not this replication's {SessionEpoch}; refused"));
            }

            _epochCheckpoint = checkpoint;
        }

        public void Committed(int number)
        {
            if (offer is null)
            {
                return;
            }

            if (!legacy && _epochCheckpoint != (ulong)number)
            {
                throw new StaleEpochException(string.Create(CultureInfo.InvariantCulture, $"checkpoint {number} carries no XMIG_EPOCH of this replication; refused"));
            }

            var colo = owner.Options.Colo && Domain is not null;
            if (colo)
            {
                // Drop what the restore itself wrote from the secondary guest's dirty log (v2-stream.md §6.6 step 6).
                var domain = Domain!;
                if (number == 1)
                {
                    domain.EnableLogDirty();
                }
                else
                {
                    Scratch(domain);
                    domain.ReadAndClearDirty(_dirty);
                }
            }

            if (owner.Log.Enabled)
            {
                var digest = colo || number == 1 ? CheckpointDigest.Compute(Domain!) : null;
                owner.Log.Write("committed", json =>
                {
                    json.WriteNumber("checkpoint", number);
                    if (digest is not null)
                    {
                        json.WriteString("digest", digest);
                    }
                });
            }

            Send(legacy ? BackChannelRecords.Ack(SessionEpoch, (ulong)number, last: false) : BackChannelRecords.StateAck(SessionEpoch, (ulong)number, last: false));
            Acknowledged = number;
            if (colo)
            {
                // Steps 7–9: SVM_READY (the acknowledgement), the secondary's guest resumes, SVM_RESUMED.
                var domain = Domain!;
                if (number == 1)
                {
                    domain.StartWorkload(owner.Options.Workload, owner.Options.Seed);
                }

                domain.Unpause();
                Send(BackChannelRecords.CheckpointState(CheckpointStateId.CheckpointSvmResumed));
            }
        }

        public void CheckpointState(uint controlId, long offset)
        {
            if (!owner.Options.Colo || controlId != (uint)CheckpointStateId.CheckpointNew || Domain is not { } domain)
            {
                return;
            }

            // Steps 12, 2, 3: suspend the secondary's guest, say so, and send the pfns it dirtied since it resumed.
            domain.Pause();
            Send(BackChannelRecords.CheckpointState(CheckpointStateId.CheckpointSvmSuspended));
            Scratch(domain);
            domain.ReadAndClearDirty(_dirty);
            var pfns = new List<ulong>();
            for (var w = 0; w < _dirty.Length; w++)
            {
                for (var word = _dirty[w]; word != 0; word &= word - 1)
                {
                    pfns.Add(((ulong)w << 6) + (ulong)BitOperations.TrailingZeroCount(word));
                }
            }

            Send(BackChannelRecords.DirtyPfnList(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pfns)));
            owner.Log.Write("suspended", json => json.WriteNumber("dirty_pages", pfns.Count));
        }

        /// <summary>The final checkpoint's acknowledgement, marked last: the xl handshake follows.</summary>
        public void SendLast(int number)
        {
            if (offer is not null)
            {
                Send(legacy ? BackChannelRecords.Ack(SessionEpoch, (ulong)number, last: true) : BackChannelRecords.StateAck(SessionEpoch, (ulong)number, last: true));
            }
        }

        /// <summary>COLO: the secondary's guest stops at the end of the stream (it is restarted only by a takeover).</summary>
        public void StopGuest()
        {
            if (Domain is { } domain && owner.Options.Colo)
            {
                domain.StopWorkload();
                domain.Pause();
                if (domain.LogDirty)
                {
                    domain.DisableLogDirty();
                }
            }
        }

        private void Scratch(SimulatedDomain domain)
        {
            var words = (int)NativeBitmap.WordsFor(domain.P2mSize);
            if (_dirty.Length != words)
            {
                _dirty = new ulong[words];
            }
        }

        /// <summary>A back-channel write; a primary that is gone is noticed on the forward stream (EOF, reset, heartbeat), so it is not an error here.</summary>
        private void Send(byte[] record)
        {
            if (_primaryGone)
            {
                return;
            }

            try
            {
                writer.Send(record);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                _primaryGone = true;
            }
        }
    }
}

/// <summary>A checkpoint of another epoch than the replication's: refused, never applied.</summary>
internal sealed class StaleEpochException(string message) : InvalidOperationException(message);
