using System.Diagnostics;

namespace Xmig.Save;

/// <summary>A checkpoint just flushed to the output, handed to <see cref="CheckpointDriver.AfterCheckpoint"/>.</summary>
/// <param name="Checkpoint">Its number, from 1.</param>
/// <param name="Bytes">Stream octets written up to its end.</param>
/// <param name="Last">True when the stream ends with it.</param>
internal readonly record struct CheckpointInfo(int Checkpoint, long Bytes, bool Last);

/// <summary>
/// Drives a <see cref="SaveEngine"/> through a checkpointed (Remus) stream (v2-stream.md §6.2, §6.3; legacy §7.2):
/// setup, the first checkpoint pre-copied live, then per checkpoint: pause, send what the guest dirtied, write and
/// flush the checkpoint, call <see cref="AfterCheckpoint"/> (a secondary's acknowledgement) while the guest is still
/// paused, resume, and let the guest run for the interval, timed from the resume.
/// </summary>
/// <remarks>
/// <para>The number of checkpoints is fixed, or unbounded until <see cref="RequestStop"/>; a stop makes the next
/// checkpoint the last (it cuts the interval short) and closes the stream with its end marker (v2 END, legacy-4.1
/// LAST_CHECKPOINT), so a receiver knows the stream ended rather than broke. A stream that reaches its fixed count
/// ends as a Remus primary's stream does: after the last checkpoint's records, nothing more.</para>
/// <para>On any failure or cancellation (the output breaking included) the guest is left running with log-dirty
/// off (<see cref="SaveEngine.Abandon"/>) and the exception propagates. On success it is left paused.</para>
/// </remarks>
internal sealed class CheckpointDriver : IDisposable
{
    private readonly SaveEngine _engine;
    private readonly CancellationTokenSource _stop = new();
    private volatile bool _stopRequested;

    /// <param name="engine">The engine; its options must describe a checkpointed stream.</param>
    /// <param name="interval">How long the guest runs between checkpoints (default: the options' interval).</param>
    /// <param name="maxCheckpoints">Checkpoints to write; 0 runs until <see cref="RequestStop"/> (default: the options' count).</param>
    public CheckpointDriver(SaveEngine engine, TimeSpan? interval = null, int? maxCheckpoints = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        if (!engine.Options.Checkpointed)
        {
            throw new ArgumentException("a checkpoint driver needs a checkpointed save (SaveOptions.Checkpoints != 0)", nameof(engine));
        }

        _engine = engine;
        Interval = interval ?? engine.Options.CheckpointInterval;
        MaxCheckpoints = maxCheckpoints ?? Math.Max(0, engine.Options.Checkpoints);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxCheckpoints);
        ArgumentOutOfRangeException.ThrowIfLessThan(Interval, TimeSpan.Zero);
    }

    public TimeSpan Interval { get; }

    /// <summary>0: unbounded until <see cref="RequestStop"/>.</summary>
    public int MaxCheckpoints { get; }

    /// <summary>
    /// Called after each checkpoint is flushed, before the guest resumes (and after the last one, which is not
    /// followed by a resume). It may wait, for example for the secondary's acknowledgement; the guest stays paused
    /// until it completes. It receives the save's cancellation token; an exception from it fails the save.
    /// </summary>
    public Func<CheckpointInfo, CancellationToken, ValueTask>? AfterCheckpoint { get; set; }

    /// <summary>
    /// Called before each checkpoint after the first, once the interval is over and before the guest is paused (COLO
    /// writes CHECKPOINT_STATE NEW here, v2-stream.md §6.6 step 11). Its exception fails the save.
    /// </summary>
    public Func<int, CancellationToken, ValueTask>? BeforeCheckpoint { get; set; }

    /// <summary>
    /// Called when checkpoint <c>n</c>'s image is fixed (the guest paused, its pages written to the output) and before its
    /// end-of-checkpoint records and CHECKPOINT go out, so the receiver cannot commit it before this returns: where a
    /// replication log names the image each checkpoint carries. <see cref="CheckpointInfo.Bytes"/> is the stream
    /// position so far. Its exception fails the save.
    /// </summary>
    public Action<CheckpointInfo>? Sealed { get; set; }

    public bool StopRequested => _stopRequested;

    /// <summary>Makes the next checkpoint the last. Thread-safe; may be called from the hook or a progress callback.</summary>
    public void RequestStop()
    {
        _stopRequested = true;
        _stop.Cancel();
    }

    public void Dispose() => _stop.Dispose();

    /// <summary>Runs the save to its end on the calling thread.</summary>
    public SaveResult Run(CancellationToken cancellationToken = default) =>
        RunAsync(cancellationToken).AsTask().GetAwaiter().GetResult();

    /// <summary>Runs the save; the engine's steps run synchronously, the hook and the interval are awaited.</summary>
    public async ValueTask<SaveResult> RunAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            _engine.Setup(cancellationToken);
            _engine.Precopy(cancellationToken);
            for (var n = 1; ; n++)
            {
                if (n > 1 && BeforeCheckpoint is { } before)
                {
                    await before(n, cancellationToken).ConfigureAwait(false);
                }

                _engine.StopAndCopy(n, cancellationToken);
                var stopping = _stopRequested;
                var last = stopping || (MaxCheckpoints > 0 && n >= MaxCheckpoints);
                Sealed?.Invoke(new CheckpointInfo(n, _engine.Result.Bytes, last));
                _engine.EndCheckpoint(n, endOfStream: stopping, cancellationToken);
                if (AfterCheckpoint is { } hook)
                {
                    await hook(new CheckpointInfo(n, _engine.Result.Bytes, last), cancellationToken).ConfigureAwait(false);
                }

                cancellationToken.ThrowIfCancellationRequested();
                if (last)
                {
                    break;
                }

                var resumed = Stopwatch.StartNew();
                _engine.Resume(n);
                await WaitIntervalAsync(resumed, cancellationToken).ConfigureAwait(false);
            }

            _engine.Finish();
            return _engine.Result;
        }
        catch
        {
            _engine.Abandon();
            throw;
        }
    }

    /// <summary>Waits out the rest of the interval since the resume; a stop request ends the wait early.</summary>
    private async Task WaitIntervalAsync(Stopwatch resumed, CancellationToken cancellationToken)
    {
        var remaining = Interval - resumed.Elapsed;
        if (remaining <= TimeSpan.Zero || _stopRequested)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return;
        }

        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        try
        {
            await Task.Delay(remaining, either.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // a stop request: take the last checkpoint now
        }
    }
}
