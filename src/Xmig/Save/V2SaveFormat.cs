using System.Text.Json;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;

namespace Xmig.Save;

/// <summary>
/// Migration v2 records for a save, in the order Xen's libxc, libxl and xl write them (v2-stream.md §3.6, §4.5,
/// §5, §6.3).
/// </summary>
internal sealed class V2SaveFormat(IDomain domain, OutputBuffer output, SaveOptions options) : SaveFormat(domain, output, options)
{
    // v2-stream.md §3.5.9: the HVM parameters the reference sender transmits, in its order, when non-zero.
    private static readonly uint[] SavedHvmParams =
    [
        HvmParam.StorePfn, HvmParam.IoreqPfn, HvmParam.BufioreqPfn, HvmParam.PagingRingPfn, HvmParam.MonitorRingPfn,
        HvmParam.SharingRingPfn, HvmParam.Vm86TssSized, HvmParam.ConsolePfn, HvmParam.AcpiIoportsLocation,
        HvmParam.Viridian, HvmParam.IdentPt, HvmParam.VmGenerationIdAddr, HvmParam.IoreqServerPfn,
        HvmParam.NrIoreqServerPages, HvmParam.X87FipWidth, HvmParam.McaCap,
    ];

    private readonly ulong[] _entries = new ulong[PageData.MaxCount];
    private LibxlWriter? _libxl;
    private LibxcWriter? _libxc;

    // ---- Setup: v2-stream.md §3.6 rows 1–5, §4.5, §5 ----

    public override void Setup()
    {
        if (Options.Kind == SaveStreamKind.Xl)
        {
            XlHeader.WriteTo(Output, XlMandatoryFlags.Json | XlMandatoryFlags.StreamV2, XlHeader.BuildConfigBlock(XlConfig()));
        }

        if (Options.Kind is SaveStreamKind.Xl or SaveStreamKind.Libxl)
        {
            _libxl = new LibxlWriter(Output);
            _libxl.WriteHeader();
            _libxc = _libxl.BeginLibxcContext();
        }
        else
        {
            _libxc = new LibxcWriter(Output);
        }

        var libxc = _libxc;
        libxc.WriteImageHeader();
        libxc.WriteDomainHeader(DomainHeader.Create(Hvm ? GuestType.Hvm : GuestType.Pv, Options.XenMajor, Options.XenMinor));
        if (!Hvm)
        {
            var width = (byte)Domain.GuestWidth;
            libxc.WriteX86PvInfo(new X86PvInfo(width, (byte)(width == 8 ? 4 : 3)));
        }

        if (!Domain.CpuidPolicy.IsEmpty)
        {
            libxc.WriteRecord(RecordType.X86CpuidPolicy, Domain.CpuidPolicy);
        }

        if (!Domain.MsrPolicy.IsEmpty)
        {
            libxc.WriteRecord(RecordType.X86MsrPolicy, Domain.MsrPolicy);
        }

        libxc.WriteStaticDataEnd();
        if (!Hvm)
        {
            libxc.WriteX86PvP2mFrames(0, (uint)(Domain.P2mSize - 1), Domain.P2mFrames);
        }
    }

    public override void BeginMemory(int checkpoint, bool paused)
    {
    }

    public override void Suspended(int checkpoint)
    {
    }

    // v2-stream.md §3.5.2: every pfn of the batch gets an entry (type << 60 | pfn); data follows for data types.
    public override int WriteBatch(ReadOnlySpan<ulong> pfns, ReadOnlySpan<PageType> types)
    {
        var entries = _entries.AsSpan(0, pfns.Length);
        for (var i = 0; i < pfns.Length; i++)
        {
            entries[i] = PageTypes.Encode(pfns[i], (PageType)types[i]);
        }

        var libxc = _libxc!;
        var pages = 0;
        libxc.BeginPageData(entries);
        for (var i = 0; i < pfns.Length; i++)
        {
            if (types[i].HasData())
            {
                libxc.AddPage(Domain.GetPage(pfns[i]));
                pages++;
            }
        }

        libxc.EndPageData();
        return pages;
    }

    // ---- End of checkpoint: v2-stream.md §3.6 rows 8–11, §4.5, §6.3 ----

    // v2-stream.md §6.3: a checkpointed stream that stops ends, after its last CHECKPOINT, with END as a plain one does.
    public override void EndOfCheckpoint(int checkpoint, bool checkpointed, bool endOfStream)
    {
        WriteEndOfCheckpoint();
        if (checkpointed)
        {
            WriteCheckpoint();
        }

        if (!checkpointed || endOfStream)
        {
            WriteEnd();
        }
    }

    private void WriteEndOfCheckpoint()
    {
        var libxc = _libxc!;
        var tsc = Domain.TscInfo;
        libxc.WriteX86TscInfo(new X86TscInfo(tsc.Mode, tsc.Khz, tsc.Nsec, tsc.Incarnation));
        if (Hvm)
        {
            libxc.WriteHvmContext(Domain.HvmContext);
            Span<HvmParamEntry> parameters = stackalloc HvmParamEntry[SavedHvmParams.Length];
            var count = 0;
            foreach (var index in SavedHvmParams)
            {
                var value = Domain.GetHvmParam(index);
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

        libxc.WriteSharedInfo(Domain.SharedInfo);
        for (var vcpu = 0; vcpu <= Domain.MaxVcpuId; vcpu++)
        {
            if (!Domain.IsVcpuOnline(vcpu))
            {
                continue;
            }

            libxc.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, (uint)vcpu, Domain.GetVcpuContext(vcpu, VcpuContextKind.Basic));
            WriteIfAny(RecordType.X86PvVcpuExtended, vcpu, VcpuContextKind.Extended);
            WriteIfAny(RecordType.X86PvVcpuXsave, vcpu, VcpuContextKind.Xsave);
            WriteIfAny(RecordType.X86PvVcpuMsrs, vcpu, VcpuContextKind.Msrs);
        }
    }

    private void WriteIfAny(RecordType type, int vcpu, VcpuContextKind kind)
    {
        var context = Domain.GetVcpuContext(vcpu, kind);
        if (!context.IsEmpty)
        {
            _libxc!.WriteX86PvVcpu(type, (uint)vcpu, context);
        }
    }

    public override void WriteEpoch(uint epoch, int checkpoint)
    {
        Span<byte> body = stackalloc byte[XmigEpoch.Length];
        XmigEpoch.Write(body, epoch, (ulong)checkpoint);
        _libxc!.WriteRecord(XmigEpoch.Type, body);
    }

    public override bool WriteCheckpointState(uint controlId)
    {
        if (_libxl is null)
        {
            return false;
        }

        _libxl.WriteCheckpointState(controlId);
        return true;
    }

    // v2-stream.md §6.3: CHECKPOINT, then the libxl checkpoint records; flushed so a receiver sees it whole.
    private void WriteCheckpoint()
    {
        _libxc!.WriteCheckpoint();
        if (_libxl is not null)
        {
            WriteEmulatorRecords();
            _libxl.WriteCheckpointEnd();
        }

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

        var xenstore = Domain.EmulatorXenstore;
        if (xenstore.Count > 0)
        {
            var pairs = xenstore.Select(e => new KeyValuePair<string, string>(e.Key, e.Value)).ToList();
            _libxl!.WriteEmulatorXenstoreData((uint)EmulatorId.QemuUpstream, 0, XenstoreData.Encode(pairs));
        }

        if (!Domain.EmulatorContext.IsEmpty)
        {
            _libxl!.WriteEmulatorContext((uint)EmulatorId.QemuUpstream, 0, Domain.EmulatorContext);
        }
    }

    /// <summary>The domain config xl puts in its header: libxl JSON, NUL-terminated.</summary>
    private byte[] XlConfig()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            var type = Hvm ? "hvm" : "pv";
            var vcpus = Domain.MaxVcpuId + 1;
            var memkb = Domain.MemoryBytes / 1024;
            json.WriteStartObject();
            json.WriteStartObject("c_info");
            json.WriteString("type", type);
            json.WriteString("name", Options.DomainName);
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
}
