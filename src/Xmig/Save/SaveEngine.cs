using System.Buffers;
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
/// <para>Phases (v2-stream.md §3.6, §6.2): <see cref="SavePhase.Setup"/> writes headers and the static records;
/// <see cref="SavePhase.Iteration"/> passes send memory while the guest runs, with log-dirty tracking; in
/// <see cref="SavePhase.StopAndCopy"/> the guest is paused, the pages it dirtied are sent with the end-of-checkpoint
/// state; a checkpointed save then writes <see cref="SavePhase.Checkpoint"/> records, resumes the guest for the
/// interval (<see cref="SavePhase.Resumed"/>) and pauses it again for the next checkpoint's dirty pages. After the
/// last checkpoint (or END) the guest stays paused, so its memory is exactly the stream's final image.</para>
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
    private ulong[] _pending;
    private ulong[] _scratch;
    private long _pagesSent;
    private int _iterations;
    private long _finalDirty;

    public SaveEngine(IDomain domain, Stream output, SaveOptions options)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Checkpoints);
        if (domain.P2mSize == 0 || domain.P2mSize > uint.MaxValue)
        {
            throw new ArgumentException($"p2m size {domain.P2mSize} cannot be saved", nameof(domain));
        }

        _domain = domain;
        _options = options;
        _output = new OutputBuffer(output, 4 << 20);
        _format = options.Kind is SaveStreamKind.Legacy40 or SaveStreamKind.Legacy41
            ? new LegacySaveFormat(domain, _output, options)
            : new V2SaveFormat(domain, _output, options);
        _words = (int)((domain.P2mSize + 63) / 64);
        _pending = ArrayPool<ulong>.Shared.Rent(_words);
        _scratch = ArrayPool<ulong>.Shared.Rent(_words);
    }

    /// <summary>Called at each phase change with the phase and the checkpoint number (1-based; 1 for plain streams).</summary>
    public Action<SavePhase, int>? PhaseChanged { get; set; }

    /// <summary>Runs every phase and returns what was written. The guest is paused when this returns.</summary>
    public SaveResult Run()
    {
        var checkpoints = _options.Checkpoints;
        Phase(SavePhase.Setup, 1);
        _format.Setup();
        try
        {
            if (checkpoints == 0)
            {
                SendMemory(first: true, checkpoint: 1);
                _format.EndOfCheckpoint(1, checkpointed: false);
            }
            else
            {
                for (var n = 1; n <= checkpoints; n++)
                {
                    SendMemory(first: n == 1, checkpoint: n);
                    _format.EndOfCheckpoint(n, checkpointed: true);
                    _output.Flush(); // a receiver sees each checkpoint whole
                    Phase(SavePhase.Checkpoint, n);
                    if (n < checkpoints)
                    {
                        _domain.Unpause();
                        Phase(SavePhase.Resumed, n);
                        Thread.Sleep(_options.CheckpointInterval);
                    }
                }
            }

            _output.Flush();
            Phase(SavePhase.Done, Math.Max(1, checkpoints));
        }
        finally
        {
            if (_domain.LogDirty)
            {
                _domain.DisableLogDirty();
            }
        }

        return new SaveResult
        {
            Bytes = _output.Position,
            PagesSent = _pagesSent,
            Iterations = _iterations,
            Checkpoints = checkpoints,
            FinalDirtyPages = _finalDirty,
        };
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

    /// <summary>
    /// The first checkpoint (or a plain save): live, a full pass then passes over what the guest dirtied until the
    /// policy says stop, then paused; non-live, paused then a full pass. Later checkpoints: paused, the dirty set.
    /// </summary>
    private void SendMemory(bool first, int checkpoint = 1)
    {
        _iterations = 0;
        if (first)
        {
            var tracking = _options.Live || _options.Checkpoints > 0;
            if (tracking)
            {
                _domain.EnableLogDirty();
            }

            if (!_options.Live)
            {
                _domain.Pause();
            }

            Phase(_options.Live ? SavePhase.Iteration : SavePhase.StopAndCopy, checkpoint);
            _format.BeginMemory(checkpoint, paused: !_options.Live);
            SendAll();
            if (!_options.Live)
            {
                _finalDirty = tracking ? _domain.ReadAndClearDirty(_scratch) : 0;
                return;
            }

            while (true)
            {
                var dirty = _domain.ReadAndClearDirty(_pending);
                if (dirty < _options.TargetDirtyPages || _iterations >= _options.MaxIterations)
                {
                    break; // _pending keeps the pages not sent yet
                }

                Phase(SavePhase.Iteration, checkpoint);
                SendBitmap(_pending);
            }
        }
        else
        {
            Array.Clear(_pending, 0, _words);
        }

        _domain.Pause();
        Phase(SavePhase.StopAndCopy, checkpoint);
        if (first)
        {
            _format.Suspended(checkpoint);
        }
        else
        {
            _format.BeginMemory(checkpoint, paused: true);
        }

        _domain.ReadAndClearDirty(_scratch);
        long final = 0;
        for (var i = 0; i < _words; i++)
        {
            _pending[i] |= _scratch[i];
            final += BitOperations.PopCount(_pending[i]);
        }

        _finalDirty = final;
        SendBitmap(_pending);
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
                }
            }
        }

        if (n > 0)
        {
            WriteBatch(n);
        }
    }

    private void WriteBatch(int n) => _pagesSent += _format.WriteBatch(_batchPfns.AsSpan(0, n), _batchTypes.AsSpan(0, n));

    private void Phase(SavePhase phase, int checkpoint) => PhaseChanged?.Invoke(phase, checkpoint);
}
