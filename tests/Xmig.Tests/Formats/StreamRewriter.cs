using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;

namespace Xmig.Tests.Formats;

/// <summary>
/// Test helper: reads a v2 stream with <see cref="V2StreamReader"/>, decodes every known record with the typed
/// readers and writes it again with the typed writers. A byte-identical result proves both directions.
/// </summary>
internal static class StreamRewriter
{
    public static byte[] Rewrite(Stream source, StreamKind kind = StreamKind.Unknown, List<string>? log = null)
    {
        using var input = new InputBuffer(source);
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            var walker = new V2StreamReader(input, kind);
            LibxlWriter? libxl = null;
            LibxcWriter? libxc = null;
            while (walker.Read())
            {
                log?.Add($"{walker.Item}@{walker.ItemOffset:X}");
                switch (walker.Item)
                {
                    case V2Item.XlHeader:
                        var h = walker.XlHeader;
                        Assert.Equal((uint)walker.XlOptionalData.Length, h.OptionalDataLength);
                        XlHeader.WriteTo(output, (XlMandatoryFlags)h.MandatoryFlags, walker.XlOptionalData);
                        break;
                    case V2Item.LibxlHeader:
                        libxl = new LibxlWriter(output);
                        libxl.WriteHeader(walker.Libxl!.StreamHeader);
                        break;
                    case V2Item.LibxlRecord:
                        RewriteLibxl(walker.Libxl!, libxl!);
                        break;
                    case V2Item.LibxcImageHeader:
                        libxc = new LibxcWriter(output);
                        libxc.WriteImageHeader(walker.Libxc!.ImageHeader);
                        break;
                    case V2Item.LibxcDomainHeader:
                        libxc!.WriteDomainHeader(walker.Libxc!.DomainHeader);
                        break;
                    case V2Item.LibxcRecord:
                        log?.Add(walker.Libxc!.RecordName(walker.Libxc.Header.Type));
                        RewriteLibxc(walker.Libxc!, libxc!);
                        break;
                    case V2Item.TrailingData:
                        var head = input.Peek(QemuDeviceModelRecord.HeaderSize);
                        if (QemuDeviceModelRecord.TryParse(head, out var qlen))
                        {
                            input.Advance(QemuDeviceModelRecord.HeaderSize);
                            QemuDeviceModelRecord.WriteHeader(output, qlen);
                            Assert.Equal(qlen, output.CopyFrom(input, qlen));
                        }

                        output.CopyFrom(input, long.MaxValue);
                        break;
                    default:
                        throw new InvalidOperationException($"unexpected {walker.Item}");
                }
            }

            output.Flush();
        }

        return ms.ToArray();
    }

    private static void RewriteLibxl(LibxlReader r, LibxlWriter w)
    {
        switch (r.Type)
        {
            case LibxlRecordType.End:
                r.SkipBody();
                w.WriteEnd();
                break;
            case LibxlRecordType.LibxcContext:
                w.WriteLibxcContext();
                break;
            case LibxlRecordType.EmulatorXenstoreData:
                var x = r.ReadEmulatorRecord();
                w.WriteEmulatorXenstoreData(x.EmulatorId, x.Index, x.Data);
                break;
            case LibxlRecordType.EmulatorContext:
                var c = r.ReadEmulatorRecord();
                w.WriteEmulatorContext(c.EmulatorId, c.Index, c.Data);
                break;
            case LibxlRecordType.CheckpointEnd:
                w.WriteCheckpointEnd();
                break;
            case LibxlRecordType.CheckpointState:
                w.WriteCheckpointState(r.ReadCheckpointState());
                break;
            default:
                w.WriteRecord(r.Header.Type, r.ReadBody());
                break;
        }
    }

    private static void RewriteLibxc(LibxcReader r, LibxcWriter w)
    {
        switch (r.Type)
        {
            case RecordType.End:
                w.WriteEnd();
                break;
            case RecordType.Verify:
                w.WriteVerify();
                break;
            case RecordType.Checkpoint:
                w.WriteCheckpoint();
                break;
            case RecordType.StaticDataEnd:
                w.WriteStaticDataEnd();
                break;
            case RecordType.PageData:
                var p = r.ReadPageData();
                var entries = new ulong[p.Count];
                for (var i = 0; i < entries.Length; i++)
                {
                    entries[i] = p.Entry(i);
                }

                w.BeginPageData(entries);
                for (var k = 0; k < p.PageCount; k++)
                {
                    w.AddPage(p.Page(k));
                }

                w.EndPageData();
                break;
            case RecordType.X86PvInfo:
                w.WriteX86PvInfo(r.ReadX86PvInfo());
                break;
            case RecordType.X86PvP2mFrames:
                var f = r.ReadX86PvP2mFrames();
                var frames = new ulong[f.FrameCount];
                for (var i = 0; i < frames.Length; i++)
                {
                    frames[i] = f.Frame(i);
                }

                w.WriteX86PvP2mFrames(f.StartPfn, f.EndPfn, frames);
                break;
            case RecordType.X86PvVcpuBasic or RecordType.X86PvVcpuExtended or RecordType.X86PvVcpuXsave or RecordType.X86PvVcpuMsrs:
                var v = r.ReadX86PvVcpu();
                w.WriteX86PvVcpu(r.Type, v.VcpuId, v.Context);
                break;
            case RecordType.SharedInfo:
                w.WriteSharedInfo(r.ReadBody());
                break;
            case RecordType.X86TscInfo:
                w.WriteX86TscInfo(r.ReadX86TscInfo());
                break;
            case RecordType.HvmContext:
                w.WriteHvmContext(r.ReadBody());
                break;
            case RecordType.HvmParams:
                var hp = r.ReadHvmParams();
                var ps = new HvmParamEntry[hp.Count];
                for (var i = 0; i < ps.Length; i++)
                {
                    ps[i] = hp[i];
                }

                w.WriteHvmParams(ps);
                break;
            case RecordType.X86CpuidPolicy:
                var cb = r.ReadBody();
                var leaves = new CpuidLeaf[cb.Length / CpuidLeaf.Size];
                for (var i = 0; i < leaves.Length; i++)
                {
                    leaves[i] = CpuidLeaf.Read(cb[(i * CpuidLeaf.Size)..]);
                }

                w.WriteX86CpuidPolicy(leaves);
                break;
            case RecordType.X86MsrPolicy:
                var mb = r.ReadBody();
                var msrs = new MsrEntry[mb.Length / MsrEntry.Size];
                for (var i = 0; i < msrs.Length; i++)
                {
                    msrs[i] = MsrEntry.Read(mb[(i * MsrEntry.Size)..]);
                }

                w.WriteX86MsrPolicy(msrs);
                break;
            case RecordType.CheckpointDirtyPfnList:
                var db = r.ReadBody();
                var pfns = new ulong[db.Length / 8];
                for (var i = 0; i < pfns.Length; i++)
                {
                    pfns[i] = BitConverter.ToUInt64(db[(i * 8)..]);
                }

                w.WriteCheckpointDirtyPfnList(pfns);
                break;
            default:
                w.WriteRecord(r.Header.Type, r.ReadBody());
                break;
        }
    }
}
