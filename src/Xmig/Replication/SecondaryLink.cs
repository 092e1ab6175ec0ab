using System.Globalization;
using Xmig.Formats;
using Xmig.Formats.Libxl;
using Xmig.Transport;

namespace Xmig.Replication;

/// <summary>
/// The primary's end of the back channel: a thread reads the secondary's records as they come (acknowledgements,
/// XMIG_HELLO / XMIG_REFUSE, COLO's CHECKPOINT_STATE and dirty lists) and the saving thread waits on them, each wait
/// bounded. Whatever ends the back channel (EOF, a reset, a bad record, a stale epoch) marks the secondary lost and
/// wakes every wait. The thread stops after a record marked last, so the xl handshake that follows is read by the
/// channel.
/// </summary>
internal sealed class SecondaryLink : IDisposable
{
    private readonly BackChannelReader _reader;
    private readonly object _gate = new();
    private readonly Queue<BackChannelEvent> _colo = new();
    private readonly Thread _thread;
    private long _acked;
    private BackChannelEvent? _hello;
    private BackChannelEvent? _refuse;
    private string? _lost;
    private bool _ended;

    public SecondaryLink(ChannelInputStream input, ulong p2mSize)
    {
        _reader = new BackChannelReader(input, p2mSize);
        _thread = new Thread(Loop) { IsBackground = true, Name = "xmig back channel" };
    }

    /// <summary>Called on the reader thread for each acknowledgement (the log's "acked" line).</summary>
    public Action<BackChannelEvent>? Acknowledged { get; init; }

    /// <summary>The epoch acknowledgements must carry, once the secondary accepted it; null: not checked.</summary>
    public uint? Epoch { get; set; }

    public long Acked => Interlocked.Read(ref _acked);

    public void Start() => _thread.Start();

    /// <summary>The secondary's XMIG_HELLO, or null when none came within <paramref name="timeout"/> (a secondary that is not xmig's).</summary>
    /// <exception cref="ReplicationRefusedException">The secondary refused the stream.</exception>
    /// <exception cref="SecondaryLostException">The back channel ended.</exception>
    public BackChannelEvent? WaitHello(TimeSpan timeout) =>
        Wait(() => _hello, timeout, null);

    /// <summary>Waits until checkpoint <paramref name="checkpoint"/> is acknowledged.</summary>
    public void WaitAck(long checkpoint, TimeSpan timeout) =>
        Wait(() => Interlocked.Read(ref _acked) >= checkpoint ? _hello ?? Done : null, timeout, Invariant($"the acknowledgement of checkpoint {checkpoint}"));

    /// <summary>COLO: the next CHECKPOINT_STATE with <paramref name="id"/>, or the next dirty list, from the secondary.</summary>
    public BackChannelEvent WaitColo(BackChannelRecordKind kind, CheckpointStateId? id, TimeSpan timeout)
    {
        var what = kind == BackChannelRecordKind.DirtyPfnList ? "CHECKPOINT_DIRTY_PFN_LIST" : $"CHECKPOINT_STATE({id})";
        return Wait(() =>
        {
            while (_colo.TryPeek(out var next))
            {
                if (next.Kind == BackChannelRecordKind.CheckpointState && next.ControlId == (uint)CheckpointStateId.CheckpointSvmResumed && id != CheckpointStateId.CheckpointSvmResumed)
                {
                    _colo.Dequeue(); // SVM_RESUMED needs no answer
                    continue;
                }

                if (next.Kind == kind && (id is null || next.ControlId == (uint)id))
                {
                    return _colo.Dequeue();
                }

                throw Lose(Invariant($"the secondary sent {Describe(next)} at back-channel offset {next.Offset} where {what} was expected"));
            }

            return null;
        }, timeout, what)!;
    }

    /// <summary>Throws when the secondary is lost (a primary that does not wait for acknowledgements checks at each checkpoint).</summary>
    public void ThrowIfLost()
    {
        lock (_gate)
        {
            if (_lost is not null)
            {
                throw new SecondaryLostException(_lost);
            }
        }
    }

    /// <summary>Waits for the reader thread to stop after the last record (bounded).</summary>
    public void WaitEnded(TimeSpan timeout) => Wait(() => _ended ? Done : null, timeout, "the end of the back channel");

    public void Dispose()
    {
        // The thread ends when the channel is shut down or disposed; it is a background thread either way.
    }

    private static readonly BackChannelEvent Done = new(BackChannelRecordKind.Ack, 0);

    private BackChannelEvent? Wait(Func<BackChannelEvent?> ready, TimeSpan timeout, string? what)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (true)
            {
                if (_refuse is { } refuse)
                {
                    throw new ReplicationRefusedException(refuse.Reason ?? "the secondary refused the stream");
                }

                if (ready() is { } result)
                {
                    return result;
                }

                if (_lost is not null)
                {
                    throw new SecondaryLostException(_lost);
                }

                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    if (what is null)
                    {
                        return null;
                    }

                    throw Lose(Invariant($"no {what} from the secondary within {timeout.TotalMilliseconds:0} ms"));
                }

                Monitor.Wait(_gate, left);
            }
        }
    }

    private void Loop()
    {
        try
        {
            while (true)
            {
                var e = _reader.Read();
                if (e is null)
                {
                    Lose("the secondary closed the connection");
                    return;
                }

                lock (_gate)
                {
                    switch (e.Kind)
                    {
                        case BackChannelRecordKind.Hello:
                            _hello = e;
                            break;
                        case BackChannelRecordKind.Refuse:
                            _refuse = e;
                            break;
                        case BackChannelRecordKind.DirtyPfnList:
                            _colo.Enqueue(e);
                            break;
                        default:
                            if (e.IsAck)
                            {
                                if (Epoch is { } epoch && e.Epoch != epoch)
                                {
                                    throw Lose(Invariant($"the secondary acknowledged checkpoint {e.Checkpoint} at epoch {e.Epoch}, not this replication's {epoch}"));
                                }

                                if ((long)e.Checkpoint > _acked)
                                {
                                    // Logged before it counts: the primary sends the next checkpoint only after this.
                                    if (!e.Last)
                                    {
                                        Acknowledged?.Invoke(e);
                                    }

                                    Interlocked.Exchange(ref _acked, (long)e.Checkpoint);
                                }
                            }

                            if (e.Kind == BackChannelRecordKind.CheckpointState && !e.IsAck)
                            {
                                _colo.Enqueue(e);
                            }

                            break;
                    }

                    _ended |= e.Last;
                    Monitor.PulseAll(_gate);
                }

                if (e.Last || e.Kind == BackChannelRecordKind.Refuse)
                {
                    return;
                }
            }
        }
        catch (SecondaryLostException)
        {
        }
        catch (Exception e) when (e is IOException or StreamFormatException or ObjectDisposedException or InvalidOperationException)
        {
            Lose(e is StreamFormatException f ? "back channel: " + f.Message : "the connection to the secondary failed: " + (e.InnerException?.Message ?? e.Message));
        }
    }

    private SecondaryLostException Lose(string reason)
    {
        lock (_gate)
        {
            _lost ??= reason;
            Monitor.PulseAll(_gate);
            return new SecondaryLostException(_lost);
        }
    }

    private static string Describe(BackChannelEvent e) => e.Kind == BackChannelRecordKind.CheckpointState
        ? Invariant($"CHECKPOINT_STATE({(CheckpointStateId)e.ControlId})")
        : e.Kind.ToString();

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
