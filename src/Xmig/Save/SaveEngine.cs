using System.Buffers;
using System.Diagnostics;
using System.Numerics;
using Xmig.Domains;
using Xmig.Formats;

namespace Xmig.Save;

/// <summary>
/// The save side of migration: reads a running <see cref="IDomain"/> and writes a stream exactly as Xen's
/// save (v2: libxc <c>xg_sr_save*.c</c>, libxl, xl; legacy: <c>xc_domain_save</c> of 4.0 or 4.1–4.5) would for the same domain, to any <see cref="Stream"/>: a file,
/// a pipe, or a socket for live migration and checkpoint replication.
/// </summary>
/// <remarks>
/// <para>The engine is a set of steps; <see cref="Run"/> sequences them for a plain stream and a
/// <see cref="CheckpointDriver"/> for a checkpointed one (v2-stream.md §3.6, §6.2): <see cref="Setup"/> writes headers
/// and the static records; <see cref="Precopy"/> sends memory while the guest runs, with log-dirty tracking, until the
/// <see cref="IPrecopyPolicy"/> says stop; <see cref="StopAndCopy"/> pauses the guest and sends what it dirtied;
/// <see cref="EndCheckpoint"/> writes the end-of-checkpoint state and CHECKPOINT or END and flushes;
/// <see cref="Resume"/> lets the guest run between checkpoints; <see cref="Finish"/> ends the save. After a
/// successful save the guest stays paused (its memory is exactly the stream's final image, and a migration's source
/// must not run on).</para>
/// <para>Every step takes a cancellation token, checked between batches of 1024 frames. On any failure or
/// cancellation the caller calls <see cref="Abandon"/> (<see cref="Run"/> and the driver do), which leaves the guest as
/// it was before the save: running, log-dirty off.</para>
/// <para>Pages go from the domain's mapped memory straight into the <see cref="OutputBuffer"/>; dirty sets are
/// bitmaps rented once per save. Nothing is allocated per page or per batch.</para>
/// </remarks>
internal sealed class SaveEngine : IDisposable
{
    private const int Batch = 1024;

    private readonly IDomain _domain;
    private readonly SaveOptions _options;
    private readonly OutputBuffer _output;
    private readonly SaveFormat _format;
    private readonly ulong[] _batchPfns = new ulong[Batch];
    private readonly PageType[] _batchTypes = new PageType[Batch];
    private readonly int _words;
    private readonly bool _pausedBefore;
    private readonly Stopwatch _clock = new();
    private ulong[] _pending;
    private ulong[] _scratch;
    private CancellationToken _cancel;
    private long _pagesSent;
    private int _iterations;
    private long _finalDirty;
    private int _checkpoints;
    private int _checkpoint = 1;
    private bool _enabledLogDirty;
    private bool _pausedBySave;
    private bool _mayCut;
    private bool _cut;
    private string _stopReason = "";
    private int _throttleMax;
    private bool _throttled;
    private AutoConverge? _autoConverge;
    private PassStart _precopyStart;

    public SaveEngine(IDomain domain, Stream output, SaveOptions options)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Checkpoints, SaveOptions.UntilStopped);
        if (domain.P2mSize == 0 || domain.P2mSize > uint.MaxValue)
        {
            throw new ArgumentException($"p2m size {domain.P2mSize} cannot be saved", nameof(domain));
        }

        _domain = domain;
        _options = options;
        Policy = options.Policy ?? PrecopyPolicies.For(options.Kind);
        _pausedBefore = domain.IsPaused;
        _output = new OutputBuffer(output, 4 << 20);
        _format = options.Kind is SaveStreamKind.Legacy40 or SaveStreamKind.Legacy41
            ? new LegacySaveFormat(domain, _output, options)
            : new V2SaveFormat(domain, _output, options);
        _words = (int)((domain.P2mSize + 63) / 64);
        _pending = ArrayPool<ulong>.Shared.Rent(_words);
        _scratch = ArrayPool<ulong>.Shared.Rent(_words);
    }

    /// <summary>Called as each phase or pass begins, on the saving thread. It may throw to fail the save.</summary>
    public Action<SaveProgress>? Progress { get; set; }

    /// <summary>Called as each memory pass ends, on the saving thread, with its figures.</summary>
    public Action<SaveRound>? Round { get; set; }

    /// <summary>
    /// Kept up to date with every frame sent (data pages hashed as sent, others cleared), so that after each
    /// checkpoint it describes the image the stream carries (replication logs it). Null: nothing is hashed.
    /// </summary>
    public CheckpointDigest? Digest { get; set; }

    /// <summary>
    /// Checkpoints after the first: called once the guest is paused, before its dirty pages are sent, with the
    /// checkpoint number and the bitmap of frames to send (one bit per pfn below the p2m size). It may set more bits:
    /// COLO's primary adds the pfns the secondary's guest dirtied (v2-stream.md §6.6 steps 2–4). It may throw to fail
    /// the save.
    /// </summary>
    public Action<int, Span<ulong>>? Suspended { get; set; }

    /// <summary>Replication: the epoch each checkpoint from now on carries (<see cref="SaveFormat.WriteEpoch"/>); null: none.</summary>
    public uint? Epoch { get; set; }

    /// <summary>COLO: writes CHECKPOINT_STATE(<paramref name="controlId"/>) on the stream and flushes it; false when the stream has no libxl layer.</summary>
    public bool WriteCheckpointState(uint controlId)
    {
        if (!_format.WriteCheckpointState(controlId))
        {
            return false;
        }

        _output.Flush();
        return true;
    }

    public SaveOptions Options => _options;

    public IPrecopyPolicy Policy { get; }

    /// <summary>What was written so far (the whole save once <see cref="Finish"/> returned).</summary>
    public SaveResult Result => new()
    {
        Bytes = _output.Position,
        PagesSent = _pagesSent,
        Iterations = _iterations,
        Checkpoints = _checkpoints,
        FinalDirtyPages = _finalDirty,
        StopReason = _stopReason,
        ThrottlePercent = _throttleMax,
    };

    /// <summary>
    /// Runs every step: a plain stream here, a checkpointed one (<see cref="SaveOptions.Checkpoints"/> &gt; 0) through a
    /// <see cref="CheckpointDriver"/> with the options' interval and count. On success the guest is paused; on failure
    /// or cancellation it runs, log-dirty off, and the exception propagates.
    /// </summary>
    public SaveResult Run(CancellationToken cancellationToken = default)
    {
        if (_options.Checkpointed)
        {
            using var driver = new CheckpointDriver(this);
            return driver.Run(cancellationToken);
        }

        try
        {
            Setup(cancellationToken);
            Precopy(cancellationToken);
            StopAndCopy(1, cancellationToken);
            EndCheckpoint(1, endOfStream: true, cancellationToken);
            Finish();
            return Result;
        }
        catch
        {
            Abandon();
            throw;
        }
    }

    // ---- Steps ----

    /// <summary>Headers and the execution-independent records (v2-stream.md §3.6 rows 1–5; legacy §4).</summary>
    public void Setup(CancellationToken cancellationToken)
    {
        _cancel = cancellationToken;
        _clock.Start();
        Phase(SavePhase.Setup, 0);
        cancellationToken.ThrowIfCancellationRequested();
        _format.Setup();
    }

    /// <summary>
    /// Memory of the first checkpoint (or of a plain save) while the guest runs: a full pass, then passes over what the
    /// guest dirtied until the policy says stop (v2-stream.md §3.6 row 6). Non-live: pauses the guest and sends every
    /// frame once. The pages dirtied since the last pass stay pending for <see cref="StopAndCopy"/>.
    /// </summary>
    public void Precopy(CancellationToken cancellationToken)
    {
        _cancel = cancellationToken;
        _iterations = 0;
        if (_options.Live || _options.Checkpointed)
        {
            _domain.EnableLogDirty();
            _enabledLogDirty = true;
        }

        if (!_options.Live)
        {
            Pause();
        }

        Phase(_options.Live ? SavePhase.Iteration : SavePhase.StopAndCopy, (long)_domain.P2mSize);
        _format.BeginMemory(1, paused: !_options.Live);
        var limits = _options.Limits;
        _autoConverge = limits.AutoConverge ? new AutoConverge(limits) : null;
        _precopyStart = Measure();
        var pass = _precopyStart;
        _mayCut = _options.Live;
        try
        {
            SendAll();
            if (!_options.Live)
            {
                _stopReason = PrecopyVerdict.NonLive;
                return;
            }

            while (!_cut)
            {
                // Each pass ends when its octets have left the buffer, so that its duration measures the link (§ below).
                _output.Flush();
                var sent = pass.PagesSince(_pagesSent);
                var now = _clock.Elapsed;
                var dirty = _domain.ReadAndClearDirty(_pending);
                var stats = Stats(pass, now, sent, dirty);
                Round?.Invoke(new SaveRound(1, _iterations, false, sent, _output.Position - pass.Bytes, stats.PassDuration, stats.BytesPerSecond,
                    dirty, stats.DirtyPagesPerSecond, stats.ExpectedDowntime, stats.ThrottlePercent));
                var verdict = Bound(Policy.Decide(stats), stats);
                if (verdict.Decision != PrecopyDecision.Continue)
                {
                    _stopReason = verdict.Reason;
                    return; // _pending keeps the pages not sent yet
                }

                if (_autoConverge is { } converge && converge.After(stats))
                {
                    SetThrottle(converge.Percent);
                }

                Phase(SavePhase.Iteration, dirty);
                pass = Measure();
                SendBitmap(_pending);
            }

            // --timeout with --on-timeout switchover cut the pass: _pending holds what it did not send.
            _stopReason = PrecopyVerdict.Timeout;
            var cutSent = pass.PagesSince(_pagesSent);
            Round?.Invoke(new SaveRound(1, _iterations, false, cutSent, _output.Position - pass.Bytes, _clock.Elapsed - pass.At,
                Bandwidth(pass, _clock.Elapsed), 0, 0, null, _autoConverge?.Percent ?? 0));
        }
        finally
        {
            _mayCut = false;
        }
    }

    /// <summary>
    /// The figures of the pass that began at <paramref name="pass"/>. Its bandwidth is the pass's own when it lasted at
    /// least 100 ms, else the average since pre-copy began: a short pass mostly fills socket buffers, and would promise
    /// a downtime the link cannot keep.
    /// </summary>
    private PrecopyStats Stats(PassStart pass, TimeSpan now, long sent, long dirty)
    {
        var duration = now - pass.At;
        return new PrecopyStats(_iterations, dirty, sent, _pagesSent, _output.Position, _domain.P2mSize, now, Bandwidth(pass, now))
        {
            PassDuration = duration,
            DirtyPagesPerSecond = duration > TimeSpan.Zero ? dirty / duration.TotalSeconds : 0,
            ThrottlePercent = _autoConverge?.Percent ?? 0,
        };
    }

    private double Bandwidth(PassStart pass, TimeSpan now) =>
        now - pass.At >= TimeSpan.FromMilliseconds(100) ? pass.Rate(_output.Position, now) : _precopyStart.Rate(_output.Position, now);

    /// <summary><c>--max-iterations</c> and <c>--timeout</c> around the policy's verdict.</summary>
    private PrecopyVerdict Bound(PrecopyVerdict verdict, in PrecopyStats stats)
    {
        var limits = _options.Limits;
        if (verdict.Decision == PrecopyDecision.Continue && limits.MaxIterations is { } max && stats.Iteration >= max)
        {
            return PrecopyVerdict.Stop(PrecopyVerdict.MaxIterations);
        }

        if (verdict.Decision == PrecopyDecision.Continue && limits.Timeout is { } timeout && stats.Elapsed >= timeout)
        {
            TimedOut();
            return PrecopyVerdict.Stop(PrecopyVerdict.Timeout);
        }

        return verdict;
    }

    /// <summary>Between batches: <c>--timeout</c> aborts the save, or (switchover, during pre-copy) cuts the pass.</summary>
    private bool CutNow()
    {
        if (_options.Limits.Timeout is not { } timeout || _clock.Elapsed < timeout)
        {
            return false;
        }

        TimedOut();
        if (_mayCut)
        {
            _cut = true;
        }

        return _cut;
    }

    private void TimedOut()
    {
        var limits = _options.Limits;
        if (limits.OnTimeout == TimeoutAction.Abort || !_mayCut)
        {
            if (limits.OnTimeout == TimeoutAction.Switchover && !_mayCut)
            {
                return; // already switching over: the paused pass runs to its end
            }

            throw new SaveTimeoutException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"the save did not finish within --timeout {limits.Timeout!.Value.TotalSeconds:0.###} s (pass {_iterations}, {_pagesSent} pages sent); it was abandoned (--on-timeout abort)"));
        }
    }

    private void SetThrottle(int percent)
    {
        if (_domain.SetThrottle(percent))
        {
            _throttled = percent > 0;
            _throttleMax = Math.Max(_throttleMax, percent);
        }
    }

    /// <summary>
    /// Pauses the guest and sends the pages of checkpoint <paramref name="checkpoint"/> not sent yet: for the first
    /// checkpoint those pre-copy left pending and those dirtied since; for a later one, what the guest dirtied since it
    /// resumed (v2-stream.md §6.2). After a non-live first pass there is nothing left to send.
    /// </summary>
    public void StopAndCopy(int checkpoint, CancellationToken cancellationToken)
    {
        _cancel = cancellationToken;
        _checkpoint = checkpoint;
        var first = checkpoint == 1;
        if (first && !_options.Live)
        {
            _finalDirty = _enabledLogDirty ? _domain.ReadAndClearDirty(_scratch) : 0;
            return;
        }

        if (!first)
        {
            _iterations = 0;
            Array.Clear(_pending, 0, _words);
        }

        Pause();
        if (first)
        {
            _format.Suspended(checkpoint);
        }
        else
        {
            _format.BeginMemory(checkpoint, paused: true);
        }

        _domain.ReadAndClearDirty(_scratch);
        if (!first && Suspended is { } suspended)
        {
            suspended(checkpoint, _pending.AsSpan(0, _words));
        }

        long final = 0;
        for (var i = 0; i < _words; i++)
        {
            _pending[i] |= _scratch[i];
            final += BitOperations.PopCount(_pending[i]);
        }

        _finalDirty = final;
        Phase(SavePhase.StopAndCopy, final);
        var pass = Measure();
        SendBitmap(_pending);
        var now = _clock.Elapsed;
        Round?.Invoke(new SaveRound(checkpoint, _iterations, true, pass.PagesSince(_pagesSent), _output.Position - pass.Bytes, now - pass.At,
            pass.Rate(_output.Position, now), 0, 0, null, _autoConverge?.Percent ?? 0));
    }

    /// <summary>
    /// The guest is paused and the checkpoint's memory sent: writes the end-of-checkpoint state, then CHECKPOINT (a
    /// checkpointed stream) and, when <paramref name="endOfStream"/> or the stream is plain, the end marker
    /// (v2-stream.md §3.6 rows 8–11, §4.5, §6.3; legacy §7). A checkpointed stream is flushed so that a receiver sees
    /// each checkpoint whole.
    /// </summary>
    public void EndCheckpoint(int checkpoint, bool endOfStream, CancellationToken cancellationToken)
    {
        _cancel = cancellationToken;
        cancellationToken.ThrowIfCancellationRequested();
        if (Epoch is { } epoch && _options.Checkpointed)
        {
            _format.WriteEpoch(epoch, checkpoint);
        }

        _format.EndOfCheckpoint(checkpoint, _options.Checkpointed, endOfStream);
        if (_options.Checkpointed)
        {
            _output.Flush();
            _checkpoints = checkpoint;
            Phase(SavePhase.Checkpoint, 0);
        }
    }

    /// <summary>Lets the guest run after checkpoint <paramref name="checkpoint"/> (log-dirty stays on).</summary>
    public void Resume(int checkpoint)
    {
        _domain.Unpause();
        _pausedBySave = false;
        Phase(SavePhase.Resumed, 0);
    }

    /// <summary>The save succeeded: flushes the output and turns log-dirty off. The guest stays paused.</summary>
    public void Finish()
    {
        _output.Flush();
        DisableLogDirty();
        Unthrottle();
        Phase(SavePhase.Done, 0);
    }

    /// <summary>
    /// The save failed or was cancelled: turns log-dirty off and, unless the guest was paused before the save began,
    /// lets it run again. Safe to call more than once; writes nothing more to the output.
    /// </summary>
    public void Abandon()
    {
        DisableLogDirty();
        Unthrottle();
        if (_pausedBySave && !_pausedBefore && _domain.IsPaused)
        {
            _domain.Unpause();
        }

        _pausedBySave = false;
    }

    public void Dispose()
    {
        (_format as IDisposable)?.Dispose();
        _output.Dispose();
        if (_pending.Length > 0)
        {
            ArrayPool<ulong>.Shared.Return(_pending);
            ArrayPool<ulong>.Shared.Return(_scratch);
            _pending = [];
            _scratch = [];
        }
    }

    // ---- Memory: v2-stream.md §3.6 row 6, §6.2 ----

    private void Pause()
    {
        if (!_domain.IsPaused)
        {
            _pausedBySave = true;
            _domain.Pause();
        }
    }

    private void Unthrottle()
    {
        if (_throttled)
        {
            _domain.SetThrottle(0);
            _throttled = false;
        }
    }

    private void DisableLogDirty()
    {
        if (_enabledLogDirty && _domain.LogDirty)
        {
            _domain.DisableLogDirty();
        }

        _enabledLogDirty = false;
    }

    /// <summary>One pass over every pfn below the p2m size, absent ones included (as XTAB), in batches of 1024.</summary>
    private void SendAll()
    {
        _iterations++;
        var size = _domain.P2mSize;
        for (ulong first = 0; first < size; first += Batch)
        {
            var n = (int)Math.Min(Batch, size - first);
            for (var i = 0; i < n; i++)
            {
                _batchPfns[i] = first + (ulong)i;
            }

            _domain.GetPageTypes(first, _batchTypes.AsSpan(0, n));
            WriteBatch(n);
            if (CutNow())
            {
                MarkPendingFrom(first + (ulong)n);
                return;
            }
        }
    }

    /// <summary>A cut first pass: every pfn from <paramref name="pfn"/> up is still to be sent.</summary>
    private void MarkPendingFrom(ulong pfn)
    {
        Array.Clear(_pending, 0, _words);
        var size = _domain.P2mSize;
        for (var p = pfn; p < size;)
        {
            var w = (int)(p >> 6);
            if ((p & 63) == 0 && p + 64 <= size)
            {
                _pending[w] = ulong.MaxValue;
                p += 64;
            }
            else
            {
                _pending[w] |= 1UL << (int)(p & 63);
                p++;
            }
        }
    }

    /// <summary>One pass over the pfns set in <paramref name="bitmap"/>, ascending, in batches of 1024.</summary>
    private void SendBitmap(ulong[] bitmap)
    {
        _iterations++;
        var n = 0;
        for (var w = 0; w < _words; w++)
        {
            var word = bitmap[w];
            while (word != 0)
            {
                var pfn = ((ulong)w << 6) + (ulong)BitOperations.TrailingZeroCount(word);
                word &= word - 1;
                _batchPfns[n] = pfn;
                _domain.GetPageTypes(pfn, _batchTypes.AsSpan(n, 1));
                if (++n == Batch)
                {
                    WriteBatch(n);
                    n = 0;
                    if (_mayCut && CutNow())
                    {
                        // What this pass did not send stays pending: the rest of this word and every later one.
                        Array.Clear(bitmap, 0, w);
                        bitmap[w] = word;
                        return;
                    }
                }
            }
        }

        if (n > 0)
        {
            WriteBatch(n);
        }
    }

    private void WriteBatch(int n)
    {
        _cancel.ThrowIfCancellationRequested();
        if (!_mayCut && _options.Limits.Timeout is { } timeout && _clock.Elapsed >= timeout)
        {
            TimedOut();
        }

        _pagesSent += _format.WriteBatch(_batchPfns.AsSpan(0, n), _batchTypes.AsSpan(0, n));
        if (Digest is { } digest)
        {
            for (var i = 0; i < n; i++)
            {
                if (_batchTypes[i].HasData())
                {
                    digest.Set(_batchPfns[i], _domain.GetPage(_batchPfns[i]));
                }
                else
                {
                    digest.Clear(_batchPfns[i]);
                }
            }
        }
    }

    private PassStart Measure() => new(_pagesSent, _output.Position, _clock.Elapsed);

    private void Phase(SavePhase phase, long dirty) =>
        Progress?.Invoke(new SaveProgress(phase, _checkpoint, _iterations, _pagesSent, _output.Position, dirty, _clock.Elapsed));

    /// <summary>Where a pass began, to measure what it sent and how fast.</summary>
    private readonly record struct PassStart(long Pages, long Bytes, TimeSpan At)
    {
        public long PagesSince(long pages) => pages - Pages;

        public double Rate(long bytes, TimeSpan now)
        {
            var seconds = (now - At).TotalSeconds;
            return seconds > 0 ? (bytes - Bytes) / seconds : 0;
        }
    }
}
