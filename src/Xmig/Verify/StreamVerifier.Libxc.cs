using System.Buffers.Binary;
using System.Text;
using Xmig.Formats;
using Xmig.Formats.Libxc;

namespace Xmig.Verify;

// The libxc layer: v2-stream.md §3 (layouts), §3.6 (order), §7 rows 1-32 (restore), §8 V13-V43 (verify-stream-v2).
public sealed partial class StreamVerifier
{
    private uint _version;
    private GuestType _guest;
    private bool _guestKnown;
    private bool _staticDataEnd;
    private bool _pvInfo;
    private int _guestWidth;
    private bool _p2m;
    private ulong _maxPfn;
    private ulong _maxP2mFrame;
    private bool _vcpu0Basic;
    private bool _hvmContext;
    private bool _anyPage;
    private int _checkpoint;
    private int _libxcStreams;

    private void OnImageHeader(V2StreamReader walker)
    {
        var reader = walker.Libxc!;
        V2RecordChecks.Begin(reader);
        var h = reader.ImageHeader;
        var offset = walker.ItemOffset;

        // V16, V17 (V13-V15, V18 are checked by the reader).
        V2RecordChecks.ImageHeader(h, offset);
        _libxcStreams++;
        _version = h.Version;
        _staticDataEnd = false;
        _pvInfo = false;
        _guestWidth = 0;
        _p2m = false;
        _maxPfn = 0;
        _maxP2mFrame = 0;
        _vcpu0Basic = false;
        _hvmContext = false;
        _summary.LibxcVersion = h.Version;
        _observer?.OnImageHeader(h, offset);
    }

    private void OnDomainHeader(V2StreamReader walker)
    {
        var h = walker.Libxc!.DomainHeader;
        var offset = walker.ItemOffset;

        // V20 (V19, V21 are checked by the reader).
        V2RecordChecks.DomainHeader(h, offset);

        _guest = h.GuestType;
        _guestKnown = true;
        _summary.Guest = h.GuestType;
        _summary.XenMajor = h.XenMajor;
        _summary.XenMinor = h.XenMinor;
        _observer?.OnDomainHeader(h, offset);
    }

    private void OnLibxcRecord(V2StreamReader walker)
    {
        var r = walker.Libxc!;
        var h = r.Header;
        var type = h.Type;
        _info.Reset(RecordLayer.Libxc, r.RecordIndex, r.RecordOffset, type, r.RecordName(type), h.Length, _checkpoint);
        if (!RecordTypes.IsDefined(type))
        {
            // V22, §7 row 12: unknown mandatory records fail; optional ones are skipped, except inside a
            // buffered checkpoint, where the reference receiver does not grant the exemption.
            if (!h.IsOptional)
            {
                throw r.Error(Invariant($"unknown mandatory record type 0x{type:X8}"));
            }

            if (_checkpoint > 0)
            {
                throw r.Error("unknown optional record inside a buffered checkpoint (the receiver rejects it there)");
            }

            _info.IsUnknownOptional = true;
            _summary.CountUnknown(_info.Name);
            Warn(r, Invariant($"unknown optional record (length {h.Length}) skipped"));
            r.SkipBody();
            _observer?.OnRecord(_info);
            return;
        }

        _summary.LibxcRecords[type]++;
        switch ((RecordType)type)
        {
            case RecordType.End:
                RequireEmpty(r);
                CheckCompletion(r);
                break;
            case RecordType.PageData:
                OnPageData(r);
                break;
            case RecordType.X86PvInfo:
                OnX86PvInfo(r);
                break;
            case RecordType.X86PvP2mFrames:
                OnX86PvP2mFrames(r);
                break;
            case RecordType.X86PvVcpuBasic:
            case RecordType.X86PvVcpuExtended:
            case RecordType.X86PvVcpuXsave:
            case RecordType.X86PvVcpuMsrs:
                OnX86PvVcpu(r);
                break;
            case RecordType.SharedInfo:
                RequireGuest(r, GuestType.Pv);
                RequirePvInfo(r);
                if (h.Length != GuestPage.Size)
                {
                    throw r.Error(Invariant($"length {h.Length} is not 4096"));
                }

                r.SkipBody();
                break;
            case RecordType.X86TscInfo:
                var tsc = r.ReadX86TscInfo();
                V2RecordChecks.TscInfo(r, tsc);

                _info.Add("mode", tsc.Mode);
                _info.Add("khz", tsc.Khz);
                _info.Add("nsec", tsc.Nsec);
                _info.Add("incarnation", tsc.Incarnation);
                break;
            case RecordType.HvmContext:
                RequireGuest(r, GuestType.Hvm);
                if (h.Length == 0)
                {
                    throw r.Error("empty HVM context");
                }

                _hvmContext = true;
                r.SkipBody();
                break;
            case RecordType.HvmParams:
                OnHvmParams(r);
                break;
            case RecordType.Toolstack:
                throw r.Error("TOOLSTACK is deprecated and rejected by the receiver (unhandled mandatory record)");
            case RecordType.Verify:
                RequireEmpty(r);
                break;
            case RecordType.Checkpoint:
                RequireEmpty(r);
                CheckCompletion(r);
                _checkpoint++;
                _summary.Checkpoints = _checkpoint;
                _info.Add("checkpoint", (ulong)_checkpoint);
                break;
            case RecordType.CheckpointDirtyPfnList:
                throw r.Error("only valid on the COLO back channel, not in the forward stream");
            case RecordType.StaticDataEnd:
                RequireEmpty(r);
                if (_version < 3)
                {
                    throw r.Error(Invariant($"STATIC_DATA_END in a version {_version} stream (needs version 3)"));
                }

                if (_staticDataEnd)
                {
                    throw r.Error("STATIC_DATA_END repeated");
                }

                _staticDataEnd = true;
                break;
            case RecordType.X86CpuidPolicy:
                OnPolicy(r, CpuidLeaf.Size);
                break;
            case RecordType.X86MsrPolicy:
                OnPolicy(r, MsrEntry.Size);
                break;
        }

        _observer?.OnRecord(_info);
    }

    // §3.6: v3 needs STATIC_DATA_END before PAGE_DATA and X86_PV_P2M_FRAMES; v2 infers it there.
    private void RequireStaticDataEnd(LibxcReader r)
    {
        if (!_staticDataEnd)
        {
            if (_version >= 3)
            {
                throw r.Error("no STATIC_DATA_END before it (mandatory in version 3)");
            }

            _staticDataEnd = true;
        }
    }

    private void RequireGuest(LibxcReader r, GuestType guest)
    {
        if (_guest != guest)
        {
            throw r.Error(guest == GuestType.Pv
                ? "PV record in an HVM stream (the receiver rejects it)"
                : "HVM record in a PV stream (the receiver rejects it)");
        }
    }

    private void RequirePvInfo(LibxcReader r)
    {
        if (!_pvInfo)
        {
            throw r.Error("no X86_PV_INFO before it");
        }
    }

    // v2-stream.md §3.5.2; V25-V30; §7 rows 16-21.
    private void OnPageData(LibxcReader r)
    {
        RequireStaticDataEnd(r);
        var pv = _guest == GuestType.Pv;
        if (pv && !_p2m)
        {
            throw r.Error("no X86_PV_P2M_FRAMES before it (the pfn bound is unknown)");
        }

        var view = r.ReadPageDataEntries();
        V2RecordChecks.PageDataHeader(r, view.Reserved);

        var counts = _info.PageTypeCounts;
        var min = ulong.MaxValue;
        var max = 0UL;
        var entries = view.Entries;
        for (var i = 0; i < entries.Length; i += 8)
        {
            var e = BinaryPrimitives.ReadUInt64LittleEndian(entries.Slice(i, 8));
            V2RecordChecks.PageDataEntry(r, i / 8, e);

            var pfn = e & PageTypes.PfnMask;
            if (pv && pfn > _maxPfn)
            {
                throw r.Error(Invariant($"pfn entry {i / 8}: pfn 0x{pfn:X} exceeds max pfn 0x{_maxPfn:X} declared by X86_PV_P2M_FRAMES"));
            }

            counts[(int)(e >> 60)]++;
            min = Math.Min(min, pfn);
            max = Math.Max(max, pfn);
            _pfns.Add(pfn);
        }

        _anyPage |= entries.Length > 0;

        if (_detail)
        {
            AddPageRuns(entries);
        }

        r.SkipBody();
        for (var t = 0; t < counts.Length; t++)
        {
            _summary.PagesByType[t] += counts[t];
        }

        _summary.DataPages += view.PageCount;
        _summary.PfnMin = Math.Min(_summary.PfnMin, min);
        _summary.PfnMax = Math.Max(_summary.PfnMax, max);
        _info.Add("count", view.Count);
        _info.Add("pages", (ulong)view.PageCount);
        _info.Add("pfn_min", min, FieldFormat.Hex);
        _info.Add("pfn_max", max, FieldFormat.Hex);
    }

    private void AddPageRuns(ReadOnlySpan<byte> entries)
    {
        var start = 0;
        var n = entries.Length / 8;
        for (var i = 1; i <= n; i++)
        {
            var first = BinaryPrimitives.ReadUInt64LittleEndian(entries.Slice(start * 8, 8));
            if (i < n)
            {
                var e = BinaryPrimitives.ReadUInt64LittleEndian(entries.Slice(i * 8, 8));
                var prev = BinaryPrimitives.ReadUInt64LittleEndian(entries.Slice((i - 1) * 8, 8));
                if ((e >> 60) == (first >> 60) && (e & PageTypes.PfnMask) == (prev & PageTypes.PfnMask) + 1)
                {
                    continue;
                }
            }

            var last = BinaryPrimitives.ReadUInt64LittleEndian(entries.Slice((i - 1) * 8, 8));
            var a = first & PageTypes.PfnMask;
            var b = last & PageTypes.PfnMask;
            _info.AddDetail(a == b
                ? Invariant($"pfn 0x{a:X} {PageTypes.Name((int)(first >> 60))}")
                : Invariant($"pfn 0x{a:X}-0x{b:X} {PageTypes.Name((int)(first >> 60))} ({i - start})"));
            start = i;
        }
    }

    // v2-stream.md §3.5.3; V31, V32; §7 row 23.
    private void OnX86PvInfo(LibxcReader r)
    {
        RequireGuest(r, GuestType.Pv);
        if (_pvInfo)
        {
            throw r.Error("X86_PV_INFO repeated");
        }

        if (r.Header.Length != X86PvInfo.Size)
        {
            throw r.Error(Invariant($"length {r.Header.Length} is not 8"));
        }

        var info = r.ReadX86PvInfo();
        if (info.GuestWidth is not (4 or 8))
        {
            throw r.Error(Invariant($"guest_width {info.GuestWidth} is not 4 or 8"));
        }

        if (info.PtLevels is not (3 or 4))
        {
            throw r.Error(Invariant($"pt_levels {info.PtLevels} is not 3 or 4"));
        }

        if (!info.IsValidPair)
        {
            throw r.Error(Invariant($"guest_width {info.GuestWidth} with pt_levels {info.PtLevels} (valid: 4 with 3, 8 with 4)"));
        }

        V2RecordChecks.PvInfo(r, info);

        _pvInfo = true;
        _guestWidth = info.GuestWidth;
        _info.Add("guest_width", info.GuestWidth);
        _info.Add("pt_levels", info.PtLevels);
    }

    // v2-stream.md §3.5.4; V33; §7 row 24.
    private void OnX86PvP2mFrames(LibxcReader r)
    {
        RequireGuest(r, GuestType.Pv);
        RequireStaticDataEnd(r);
        RequirePvInfo(r);
        var view = r.ReadX86PvP2mFrames();
        var expected = X86PvP2mFramesView.ExpectedFrameCount(view.StartPfn, view.EndPfn, _guestWidth);
        if (view.FrameCount != expected)
        {
            throw r.Error(Invariant($"length {r.Header.Length} does not match pfns {view.StartPfn}..{view.EndPfn} (expected {8 + (8 * expected)})"));
        }

        for (var i = 0; i < view.FrameCount; i++)
        {
            _maxP2mFrame = Math.Max(_maxP2mFrame, view.Frame(i));
        }

        _maxPfn = Math.Max(_maxPfn, view.EndPfn);
        _p2m = true;
        _info.Add("p2m_start_pfn", view.StartPfn, FieldFormat.Hex);
        _info.Add("p2m_end_pfn", view.EndPfn, FieldFormat.Hex);
        _info.Add("frames", (ulong)view.FrameCount);
    }

    // v2-stream.md §3.5.5; V34; §7 row 25.
    private void OnX86PvVcpu(LibxcReader r)
    {
        RequireGuest(r, GuestType.Pv);
        RequirePvInfo(r);
        var length = r.Header.Length;
        if (length < X86PvVcpuView.HeaderSize)
        {
            throw r.Error(Invariant($"length {length} is shorter than 8"));
        }

        var head = r.ReadBodyPrefix(X86PvVcpuView.HeaderSize);
        var vcpu = BinaryPrimitives.ReadUInt32LittleEndian(head);
        V2RecordChecks.Reserved(r, BinaryPrimitives.ReadUInt32LittleEndian(head[4..]));

        var context = length - X86PvVcpuView.HeaderSize;
        _info.Add("vcpu_id", vcpu);
        _info.Add("context", context);
        r.SkipBody();
        if (context == 0)
        {
            Warn(r, "empty context (ignored by the receiver)");
            return;
        }

        switch (r.Type)
        {
            case RecordType.X86PvVcpuBasic:
                var size = _guestWidth == 8 ? X86PvVcpuView.BasicContextSize64 : X86PvVcpuView.BasicContextSize32;
                if (context != size)
                {
                    throw r.Error(Invariant($"context of {context} octets (a {_guestWidth * 8}-bit guest's is {size})"));
                }

                _vcpu0Basic |= vcpu == 0;
                break;
            case RecordType.X86PvVcpuExtended when context > X86PvVcpuView.ExtendedContextMax:
                throw r.Error(Invariant($"context of {context} octets exceeds 128"));
            case RecordType.X86PvVcpuXsave when context < X86PvVcpuView.XsaveContextMin:
                throw r.Error(Invariant($"context of {context} octets is shorter than 16"));
            case RecordType.X86PvVcpuMsrs when context % MsrEntry.Size != 0:
                throw r.Error(Invariant($"context of {context} octets is not a multiple of 16"));
        }
    }

    // v2-stream.md §3.5.9; V38; §7 row 29.
    private void OnHvmParams(LibxcReader r)
    {
        RequireGuest(r, GuestType.Hvm);
        var length = r.Header.Length;
        if (length < HvmParamsView.HeaderSize)
        {
            throw r.Error(Invariant($"length {length} is shorter than 8"));
        }

        var head = r.PeekBody(HvmParamsView.HeaderSize);
        var count = BinaryPrimitives.ReadUInt32LittleEndian(head);
        V2RecordChecks.Reserved(r, BinaryPrimitives.ReadUInt32LittleEndian(head[4..]));

        if (length != HvmParamsView.BodyLength(count))
        {
            throw r.Error(Invariant($"length {length} does not match count {count} (expected {HvmParamsView.BodyLength(count)})"));
        }

        _info.Add("count", count);
        if (count == 0)
        {
            Warn(r, "count 0 (ignored by the receiver)");
        }

        // §3.5.9: indices below 64, as restore (and Xen's xc_hvm_param_set) requires.
        var p = r.ReadHvmParams();
        for (var i = 0; i < p.Count; i++)
        {
            var e = p[i];
            V2RecordChecks.HvmParamIndex(r, i, e.Index);
            if (_detail)
            {
                var name = HvmParam.Name(e.Index) ?? "?";
                _info.AddDetail(Invariant($"param {e.Index} ({name}) = 0x{e.Value:X}"));
            }
        }

        r.SkipBody();
    }

    // v2-stream.md §3.5.12; V42, V43; §7 rows 30, 31.
    private void OnPolicy(LibxcReader r, int element)
    {
        if (_version < 3)
        {
            throw r.Error(Invariant($"in a version {_version} stream (needs version 3)"));
        }

        var length = r.Header.Length;
        if (length < element || length % element != 0)
        {
            throw r.Error(Invariant($"length {length} is not a non-zero multiple of {element}"));
        }

        if (_staticDataEnd)
        {
            Warn(r, "after STATIC_DATA_END: the receiver ignores it");
        }

        _info.Add(element == CpuidLeaf.Size ? "leaves" : "msrs", length / (ulong)element);
        if (_detail && length <= LibxcReader.MaxBodyInMemoryLength)
        {
            var body = r.ReadBody();
            var sb = new StringBuilder();
            for (var i = 0; i + element <= body.Length; i += element)
            {
                sb.Clear();
                if (element == CpuidLeaf.Size)
                {
                    var l = CpuidLeaf.Read(body[i..]);
                    sb.Append(Invariant($"leaf 0x{l.Leaf:X8}:0x{l.Subleaf:X8} a=0x{l.A:X8} b=0x{l.B:X8} c=0x{l.C:X8} d=0x{l.D:X8}"));
                }
                else
                {
                    var m = MsrEntry.Read(body[i..]);
                    sb.Append(Invariant($"msr 0x{m.Index:X8} flags=0x{m.Flags:X} val=0x{m.Value:X16}"));
                }

                _info.AddDetail(sb.ToString());
            }
        }

        r.SkipBody();
    }

    // §7 row 32 (and §3.6): what stream completion needs, checked at END and at every CHECKPOINT.
    private void CheckCompletion(LibxcReader r)
    {
        if (_version >= 3 && !_staticDataEnd)
        {
            throw r.Error("no STATIC_DATA_END in the stream (mandatory in version 3)");
        }

        if (_guest == GuestType.Pv)
        {
            if (!_pvInfo)
            {
                throw r.Error("PV stream without X86_PV_INFO");
            }

            if (!_p2m)
            {
                throw r.Error("PV stream without X86_PV_P2M_FRAMES");
            }

            if (!_vcpu0Basic)
            {
                throw r.Error("no X86_PV_VCPU_BASIC for vCPU 0");
            }

            // Restore fails when it writes the P2M into these frames; a converted stream can still carry them
            // (Xen's converter copies the legacy frame list as is), so this is a warning here.
            if (_maxP2mFrame > _maxPfn)
            {
                Warn(r, Invariant($"P2M frame pfn 0x{_maxP2mFrame:X} exceeds max pfn 0x{_maxPfn:X} (restore would fail writing the P2M)"));
            }
        }
        else
        {
            V2RecordChecks.HvmCompletion(r, _hvmContext, _anyPage);
        }
    }
}
