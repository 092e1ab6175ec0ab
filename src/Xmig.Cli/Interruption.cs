using System.Runtime.InteropServices;

namespace Xmig.Cli;

/// <summary>
/// SIGINT and SIGTERM for a verb that writes or migrates: the first signal cancels <see cref="Token"/> (the engines
/// stop at their next check, a blocked socket is shut down, a wait on a pipe ends) and the verb ends with one line,
/// having removed what it left (a partial output file, its hidden staging directory). A second signal ends the
/// process at once, as the shell expects.
/// </summary>
/// <remarks>
/// A write blocked in the kernel on a pipe whose reader stopped cannot be cancelled. So when the verb has not ended
/// <see cref="Grace"/> after the signal, this runs the registered <see cref="OnGiveUp"/> clean-ups itself, prints
/// the one line and exits with <see cref="ExitCode.UsageOrIo"/>.
/// </remarks>
internal sealed class Interruption : IDisposable
{
    /// <summary>How long the verb has to end by itself after a signal.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private readonly CliContext _ctx;
    private readonly CancellationTokenSource _cancel = new();
    private readonly PosixSignalRegistration _term;
    private readonly PosixSignalRegistration _interrupt;
    private readonly List<Action> _cleanups = [];
    private readonly Lock _gate = new();
    private readonly bool _giveUp;
    private int _ended;

    private Interruption(CliContext ctx, bool giveUp)
    {
        _ctx = ctx;
        _giveUp = giveUp;
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    }

    /// <summary>
    /// Handles SIGINT and SIGTERM until disposed. <paramref name="giveUp"/>: exit by itself when the verb has not ended
    /// <see cref="Grace"/> after the signal (not for a migration, whose sockets are shut down and which must not be
    /// cut short past its point of no return).
    /// </summary>
    public static Interruption Register(CliContext ctx, bool giveUp = true) => new(ctx, giveUp);

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>The signal received, or null.</summary>
    public PosixSignal? Received { get; private set; }

    /// <summary>"SIGINT" or "SIGTERM" (null before a signal).</summary>
    public string? SignalName => Received switch
    {
        PosixSignal.SIGINT => "SIGINT",
        PosixSignal.SIGTERM => "SIGTERM",
        null => null,
        var other => other.ToString(),
    };

    /// <summary>Something to undo if the verb cannot end by itself after a signal (remove a partial output).</summary>
    public void OnGiveUp(Action cleanup)
    {
        lock (_gate)
        {
            _cleanups.Add(cleanup);
        }
    }

    /// <summary>The verb is ending by itself (its one line is its own): the watchdog stands down.</summary>
    public bool End() => Interlocked.Exchange(ref _ended, 1) == 0;

    /// <summary>The one line for a verb that stopped because of the signal.</summary>
    public string Line(string what) => $"xmig: error: interrupted by {SignalName}: {what}";

    public void Dispose()
    {
        End();
        _term.Dispose();
        _interrupt.Dispose();
        _cancel.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        if (Received is not null)
        {
            return; // the second signal: default handling ends the process
        }

        context.Cancel = true;
        Received = context.Signal;
        var watchdog = new Thread(() =>
        {
            try
            {
                _cancel.Cancel();
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            if (!_giveUp)
            {
                return;
            }

            Thread.Sleep(Grace);
            if (!End())
            {
                return;
            }

            Action[] cleanups;
            lock (_gate)
            {
                cleanups = [.. _cleanups];
            }

            foreach (var cleanup in cleanups)
            {
                try
                {
                    cleanup();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }

            _ctx.Error.WriteLine(Line("a write or read stayed blocked; partial output removed"));
            _ctx.Error.Flush();
            Environment.Exit((int)ExitCode.UsageOrIo);
        })
        { IsBackground = true, Name = "xmig interruption" };
        watchdog.Start();
    }
}
