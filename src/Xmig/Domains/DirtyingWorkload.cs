using System.Diagnostics;
using System.Globalization;

namespace Xmig.Domains;

internal enum WorkloadKind
{
    /// <summary>The guest writes nothing.</summary>
    Idle,

    /// <summary>Random populated pages across all of memory.</summary>
    Uniform,

    /// <summary>Writes concentrated in a working set.</summary>
    HotSet,
}

/// <summary>
/// A dirtying workload: <c>idle</c>, <c>uniform:RATE</c> (random pages at RATE MiB/s) or <c>hotset:SIZE:RATE</c>
/// (random pages of a SIZE working set at RATE MiB/s). RATE counts dirtied pages × 4096 octets.
/// </summary>
internal readonly record struct WorkloadSpec(WorkloadKind Kind, double RateMiBps, ulong HotSetBytes)
{
    public static WorkloadSpec Idle => new(WorkloadKind.Idle, 0, 0);

    public static bool TryParse(string? text, out WorkloadSpec spec, out string error)
    {
        spec = Idle;
        error = "";
        var parts = (text ?? "").Trim().Split(':');
        switch (parts[0].ToLowerInvariant())
        {
            case "idle" when parts.Length == 1:
                return true;
            case "uniform" when parts.Length == 2:
                if (!TryRate(parts[1], out var rate, out error))
                {
                    return false;
                }

                spec = new WorkloadSpec(WorkloadKind.Uniform, rate, 0);
                return true;
            case "hotset" when parts.Length == 3:
                if (!ByteSize.TryParse(parts[1], out var size) || size < GuestPage.Size)
                {
                    error = $"hot set size \"{parts[1]}\" is not a size of at least 4KiB";
                    return false;
                }

                if (!TryRate(parts[2], out rate, out error))
                {
                    return false;
                }

                spec = new WorkloadSpec(WorkloadKind.HotSet, rate, size);
                return true;
            default:
                error = $"workload \"{text}\" is not idle, uniform:RATE or hotset:SIZE:RATE";
                return false;
        }
    }

    public override string ToString() => Kind switch
    {
        WorkloadKind.Uniform => string.Create(CultureInfo.InvariantCulture, $"uniform:{RateMiBps}"),
        WorkloadKind.HotSet => string.Create(CultureInfo.InvariantCulture, $"hotset:{ByteSize.Format(HotSetBytes)}:{RateMiBps}"),
        _ => "idle",
    };

    private static bool TryRate(string text, out double rate, out string error)
    {
        var s = text.Trim();
        if (s.EndsWith("MiB/s", StringComparison.OrdinalIgnoreCase))
        {
            s = s[..^5];
        }

        if (!double.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out rate) || rate <= 0 || rate > 1 << 20)
        {
            error = $"rate \"{text}\" is not a positive number of MiB/s";
            return false;
        }

        error = "";
        return true;
    }
}

/// <summary>
/// Runs a <see cref="WorkloadSpec"/> against a <see cref="SimulatedDomain"/> on its own thread. Each write puts
/// 64 pseudo-random octets at a random 64-octet slot of a populated page through <see cref="SimulatedDomain.GuestWrite"/>,
/// which sets the page's log-dirty bit. Writes happen only while the domain is not paused, in batches under the
/// domain's run lock, so <see cref="SimulatedDomain.Pause"/> waits for the batch in flight. The rate is kept by
/// a token bucket on a monotonic clock; a stall is not caught up beyond 100 ms worth of pages.
/// </summary>
internal sealed class DirtyingWorkload : IDisposable
{
    private const int WriteSize = 64;
    private readonly SimulatedDomain _domain;
    private readonly WorkloadSpec _spec;
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Thread _thread;
    private readonly (ulong Start, ulong Count, ulong Before)[] _runs;
    private readonly ulong _targets;
    private Prng _prng;
    private volatile bool _stop;
    private long _pagesWritten;
    private Exception? _failure;

    public DirtyingWorkload(SimulatedDomain domain, WorkloadSpec spec, ulong seed)
    {
        _domain = domain;
        _spec = spec;
        _prng = new Prng(Prng.Mix(seed, 0x574F524B)); // "WORK"
        _runs = BuildRuns(domain, spec, ref _prng, out _targets);
        _thread = new Thread(Run) { IsBackground = true, Name = $"xmig workload {spec}" };
    }

    /// <summary>Guest pages written so far (a page written twice counts twice).</summary>
    public long PagesWritten => Interlocked.Read(ref _pagesWritten);

    /// <summary>Pages the workload chooses from (the whole of memory, or the hot set).</summary>
    public ulong TargetPages => _targets;

    /// <summary>The exception that stopped the thread, if any.</summary>
    public Exception? Failure => _failure;

    public void Start() => _thread.Start();

    /// <summary>Wakes the thread after an unpause.</summary>
    public void Wake() => _wake.Set();

    public void Dispose()
    {
        _stop = true;
        _wake.Set();
        if (_thread.IsAlive)
        {
            _thread.Join();
        }

        _wake.Dispose();
    }

    private static (ulong Start, ulong Count, ulong Before)[] BuildRuns(SimulatedDomain domain, WorkloadSpec spec, ref Prng prng, out ulong total)
    {
        // Maximal runs of populated frames, with the number of populated frames before each (for sampling).
        var runs = new List<(ulong Start, ulong Count, ulong Before)>();
        var bitmap = domain.Populated;
        ulong before = 0;
        var pfn = bitmap.NextSet(0);
        while (pfn < domain.P2mSize)
        {
            var end = pfn;
            while (end < domain.P2mSize && bitmap.Get(end))
            {
                end++;
            }

            runs.Add((pfn, end - pfn, before));
            before += end - pfn;
            pfn = end < domain.P2mSize ? bitmap.NextSet(end) : domain.P2mSize;
        }

        total = before;
        if (spec.Kind != WorkloadKind.HotSet || total == 0)
        {
            return [.. runs];
        }

        // The hot set: a window of SIZE worth of populated frames starting at a seeded position.
        var want = Math.Min(total, Math.Max(1, spec.HotSetBytes / GuestPage.Size));
        var first = prng.Next(total - want + 1);
        var hot = new List<(ulong Start, ulong Count, ulong Before)>();
        ulong taken = 0;
        foreach (var (start, count, runBefore) in runs)
        {
            var runEnd = runBefore + count;
            var lo = Math.Max(runBefore, first);
            var hi = Math.Min(runEnd, first + want);
            if (lo < hi)
            {
                hot.Add((start + (lo - runBefore), hi - lo, taken));
                taken += hi - lo;
            }
        }

        total = taken;
        return [.. hot];
    }

    private void Run()
    {
        try
        {
            var pagesPerSecond = _spec.RateMiBps * (1 << 20) / GuestPage.Size;
            var maxBurst = Math.Max(1.0, pagesPerSecond / 10);
            var clock = Stopwatch.StartNew();
            var last = clock.Elapsed.TotalSeconds;
            var budget = 0.0;
            Span<byte> data = stackalloc byte[WriteSize];
            while (!_stop)
            {
                if (_domain.IsPausedForWorkload)
                {
                    _wake.Wait(50);
                    _wake.Reset();
                    last = clock.Elapsed.TotalSeconds;
                    budget = 0;
                    continue;
                }

                var now = clock.Elapsed.TotalSeconds;
                var share = (100 - _domain.ThrottlePercent) / 100.0;
                budget = Math.Min(maxBurst, budget + ((now - last) * pagesPerSecond * share));
                last = now;
                var due = (long)budget;
                if (due > 0 && _targets > 0)
                {
                    var written = 0L;
                    lock (_domain.RunLock)
                    {
                        for (; written < due && !_domain.IsPausedForWorkload; written++)
                        {
                            var pfn = Pick();
                            var slot = (int)_prng.Next(GuestPage.Size / WriteSize) * WriteSize;
                            _prng.Fill(data);
                            _domain.GuestWrite(pfn, slot, data);
                        }

                        Interlocked.Add(ref _pagesWritten, written);
                    }

                    budget -= written;
                }

                Thread.Sleep(1);
            }
        }
        catch (Exception e) when (e is ObjectDisposedException or ArgumentOutOfRangeException or InvalidOperationException)
        {
            _failure = e;
        }
    }

    private ulong Pick()
    {
        var index = _prng.Next(_targets);
        int lo = 0, hi = _runs.Length - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (_runs[mid].Before <= index)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        var run = _runs[lo];
        return run.Start + (index - run.Before);
    }
}
