using System.Buffers;
using System.Numerics;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;
using DomainPageType = Xmig.Domains.PageType;
using StreamPageType = Xmig.Formats.Libxc.PageType;

namespace Xmig.Save;

/// <summary>
/// The save side of migration: reads a running <see cref="IDomain"/> and writes a v2 stream exactly as Xen's
/// save (libxc <c>xg_sr_save*.c</c>, libxl, xl) would for the same domain, to any <see cref="Stream"/>: a file,
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
    private const int Batch = PageData.MaxCount;

    // v2-stream.md §3.5.9: the HVM parameters the reference sender transmits, in its order, when non-zero.
    private static readonly uint[] SavedHvmParams =
    [
        HvmParam.StorePfn, HvmParam.IoreqPfn, HvmParam.BufioreqPfn, HvmParam.PagingRingPfn, HvmParam.MonitorRingPfn,
        HvmParam.SharingRingPfn, HvmParam.Vm86TssSized, HvmParam.ConsolePfn, HvmParam.AcpiIoportsLocation,
        HvmParam.Viridian, HvmParam.IdentPt, HvmParam.VmGenerationIdAddr, HvmParam.IoreqServerPfn,
        HvmParam.NrIoreqServerPages, HvmParam.X87FipWidth, HvmParam.McaCap,
    ];

    private readonly IDomain _domain;
    private readonly SaveOptions _options;
    private readonly OutputBuffer _output;
    private readonly ulong[] _batchPfns = new ulong[Batch];
    private readonly ulong[] _batchEntries = new ulong[Batch];
    private readonly DomainPageType[] _batchTypes = new DomainPageType[Batch];
    private readonly int _words;
    private ulong[] _pending;
    private ulong[] _scratch;
    private LibxlWriter? _libxl;
    private LibxcWriter? _libxc;
    private long _pagesSent;
    private int _iterations;
    private long _finalDirty;

    public SaveEngine(IDomain domain, Stream output, SaveOptions options)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Kind is not (SaveStreamKind.Xl or SaveStreamKind.Libxl or SaveStreamKind.Libxc))
        {
            throw new NotSupportedException($"the save engine writes v2 streams; {options.Kind} is written by the legacy writer");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.Checkpoints);
        if (domain.P2mSize == 0 || domain.P2mSize > uint.MaxValue)
        {
            throw new ArgumentException($"p2m size {domain.P2mSize} cannot be saved", nameof(domain));
        }

        _domain = domain;
        _options = options;
        _output = new OutputBuffer(output, 4 << 20);
        _words = (int)((domain.P2mSize + 63) / 64);
        _pending = ArrayPool<ulong>.Shared.Rent(_words);
        _scratch = ArrayPool<ulong>.Shared.Rent(_words);
    }

    /// <summary>Called at each phase change with the phase and the checkpoint number (1-based; 1 for plain streams).</summary>
    public Action<SavePhase, int>? PhaseChanged { get; set; }

    private bool Hvm => _domain.GuestType == GuestType.Hvm;

    /// <summary>Runs every phase and returns what was written. The guest is paused when this returns.</summary>
    public SaveResult Run()
    {
        var checkpoints = _options.Checkpoints;
        WriteSetup();
        try
        {
            if (checkpoints == 0)
            {
                SendMemory(first: true);
                WriteEndOfCheckpoint();
                WriteEnd();
            }
            else
            {
                for (var n = 1; n <= checkpoints; n++)
                {
                    SendMemory(first: n == 1, checkpoint: n);
                    WriteEndOfCheckpoint();
                    WriteCheckpoint(n);
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
        _output.Dispose();
        if (_pending.Length > 0)
        {
            ArrayPool<ulong>.Shared.Return(_pending);
            ArrayPool<ulong>.Shared.Return(_scratch);
            _pending = [];
            _scratch = [];
        }
    }

    // ---- Setup: v2-stream.md §3.6 rows 1–5, §4.5, §5 ----

    private void WriteSetup()
    {
        Phase(SavePhase.Setup, 1);
        if (_options.Kind == SaveStreamKind.Xl)
        {
            XlHeader.WriteTo(_output, XlMandatoryFlags.Json | XlMandatoryFlags.StreamV2, XlHeader.BuildConfigBlock(XlConfig()));
        }

        if (_options.Kind is SaveStreamKind.Xl or SaveStreamKind.Libxl)
        {
            _libxl = new LibxlWriter(_output);
            _libxl.WriteHeader();
            _libxc = _libxl.BeginLibxcContext();
        }
        else
        {
            _libxc = new LibxcWriter(_output);
        }

        var libxc = _libxc;
        libxc.WriteImageHeader();
        libxc.WriteDomainHeader(DomainHeader.Create(Hvm ? DomainType.X86Hvm : DomainType.X86Pv, _options.XenMajor, _options.XenMinor));
        if (!Hvm)
        {
            var width = (byte)_domain.GuestWidth;
            libxc.WriteX86PvInfo(new X86PvInfo(width, (byte)(width == 8 ? 4 : 3)));
        }

        if (!_domain.CpuidPolicy.IsEmpty)
        {
            libxc.WriteRecord(RecordType.X86CpuidPolicy, _domain.CpuidPolicy);
        }

        if (!_domain.MsrPolicy.IsEmpty)
        {
            libxc.WriteRecord(RecordType.X86MsrPolicy, _domain.MsrPolicy);
        }

        libxc.WriteStaticDataEnd();
        if (!Hvm)
        {
            libxc.WriteX86PvP2mFrames(0, (uint)(_domain.P2mSize - 1), _domain.P2mFrames);
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

    // v2-stream.md §3.5.2: every pfn of the batch gets an entry (type << 60 | pfn); data follows for data types.
    private void WriteBatch(int n)
    {
        var entries = _batchEntries.AsSpan(0, n);
        for (var i = 0; i < n; i++)
        {
            entries[i] = PageTypes.Encode(_batchPfns[i], (StreamPageType)_batchTypes[i]);
        }

        var libxc = _libxc!;
        libxc.BeginPageData(entries);
        for (var i = 0; i < n; i++)
        {
            if (_batchTypes[i].HasData())
            {
                libxc.AddPage(_domain.GetPage(_batchPfns[i]));
                _pagesSent++;
            }
        }

        libxc.EndPageData();
    }

    // ---- End of checkpoint: v2-stream.md §3.6 rows 8–10 ----

    private void WriteEndOfCheckpoint()
    {
        var libxc = _libxc!;
        var tsc = _domain.TscInfo;
        libxc.WriteX86TscInfo(new X86TscInfo(tsc.Mode, tsc.Khz, tsc.Nsec, tsc.Incarnation));
        if (Hvm)
        {
            libxc.WriteHvmContext(_domain.HvmContext);
            Span<HvmParamEntry> parameters = stackalloc HvmParamEntry[SavedHvmParams.Length];
            var count = 0;
            foreach (var index in SavedHvmParams)
            {
                var value = _domain.GetHvmParam(index);
                if (value != 0)
                {
                    parameters[count++] = new HvmParamEntry(index, value);
                }
            }

            if (count > 0)
            {
                libxc.WriteHvmParams(parameters[..count]);
            }

            return;
        }

        libxc.WriteSharedInfo(_domain.SharedInfo);
        for (var vcpu = 0; vcpu <= _domain.MaxVcpuId; vcpu++)
        {
            if (!_domain.IsVcpuOnline(vcpu))
            {
                continue;
            }

            libxc.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, (uint)vcpu, _domain.GetVcpuContext(vcpu, VcpuContextKind.Basic));
            WriteIfAny(RecordType.X86PvVcpuExtended, vcpu, VcpuContextKind.Extended);
            WriteIfAny(RecordType.X86PvVcpuXsave, vcpu, VcpuContextKind.Xsave);
            WriteIfAny(RecordType.X86PvVcpuMsrs, vcpu, VcpuContextKind.Msrs);
        }
    }

    private void WriteIfAny(RecordType type, int vcpu, VcpuContextKind kind)
    {
        var context = _domain.GetVcpuContext(vcpu, kind);
        if (!context.IsEmpty)
        {
            _libxc!.WriteX86PvVcpu(type, (uint)vcpu, context);
        }
    }

    // v2-stream.md §6.3: CHECKPOINT, then the libxl checkpoint records; flushed so a receiver sees it whole.
    private void WriteCheckpoint(int checkpoint)
    {
        _libxc!.WriteCheckpoint();
        if (_libxl is not null)
        {
            WriteEmulatorRecords();
            _libxl.WriteCheckpointEnd();
        }

        _output.Flush();
        Phase(SavePhase.Checkpoint, checkpoint);
    }

    // v2-stream.md §4.5: libxc END, then (HVM) the emulator records, then libxl END.
    private void WriteEnd()
    {
        _libxc!.WriteEnd();
        if (_libxl is not null)
        {
            WriteEmulatorRecords();
            _libxl.WriteEnd();
        }
    }

    private void WriteEmulatorRecords()
    {
        if (!Hvm)
        {
            return;
        }

        var xenstore = _domain.EmulatorXenstore;
        if (xenstore.Count > 0)
        {
            var pairs = xenstore.Select(e => new KeyValuePair<string, string>(e.Key, e.Value)).ToList();
            _libxl!.WriteEmulatorXenstoreData((uint)EmulatorId.QemuUpstream, 0, XenstoreData.Encode(pairs));
        }

        if (!_domain.EmulatorContext.IsEmpty)
        {
            _libxl!.WriteEmulatorContext((uint)EmulatorId.QemuUpstream, 0, _domain.EmulatorContext);
        }
    }

    /// <summary>The domain config xl puts in its header: libxl JSON, NUL-terminated.</summary>
    private byte[] XlConfig()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            var type = Hvm ? "hvm" : "pv";
            var vcpus = _domain.MaxVcpuId + 1;
            var memkb = _domain is SimulatedDomain s && s.MemoryBytes > 0 ? s.MemoryBytes / 1024 : _domain.P2mSize * 4;
            json.WriteStartObject();
            json.WriteStartObject("c_info");
            json.WriteString("type", type);
            json.WriteString("name", _options.DomainName);
            json.WriteEndObject();
            json.WriteStartObject("b_info");
            json.WriteNumber("max_vcpus", vcpus);
            json.WriteNumber("max_memkb", memkb);
            json.WriteNumber("target_memkb", memkb);
            json.WriteStartObject("type." + type);
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndObject();
        }

        buffer.WriteByte(0);
        return buffer.ToArray();
    }

    private void Phase(SavePhase phase, int checkpoint) => PhaseChanged?.Invoke(phase, checkpoint);
}
