using System.Buffers.Binary;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;
using Xmig.Samples;

namespace Xmig.Tests.Verify;

/// <summary>A malformed stream and where verify must report it.</summary>
internal sealed record MalformedCase(string Name, string Format, byte[] Data, long Offset, string Fragment);

/// <summary>
/// Generates the golden malformed streams in TestData/malformed from the writers (valid streams, then one defect
/// each). The committed .bin files and expected.tsv are what the tests run against; a test checks they still
/// match this generator (set XMIG_REGENERATE_MALFORMED=1 to rewrite them into the source tree).
/// </summary>
internal static class MalformedStreams
{
    public static IReadOnlyList<MalformedCase> All()
    {
        var cases = new List<MalformedCase>();
        var xc = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxc, Guest = GuestType.Hvm, Pages = 4 });
        var xl = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 4 });
        var xlFile = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Guest = GuestType.Hvm, Pages = 4 });
        var xcItems = Items(xc);
        var xlItems = Items(xl);
        var xlFileItems = Items(xlFile);
        var pageData = At(xcItems, "PAGE_DATA");
        var end = At(xcItems, "END");

        void Add(string name, string format, byte[] data, long offset, string fragment) =>
            cases.Add(new MalformedCase(name, format, data, offset, fragment));

        // Truncation: inside each header, inside a record header, inside a body, inside padding; missing END.
        Add("libxc-truncated-image-header", "auto", xc[..10], 0, "truncated: 10 of 24 octets");
        Add("libxc-truncated-domain-header", "auto", xc[..30], 24, "truncated: 6 of 16 octets");
        Add("libxc-truncated-record-header", "auto", xc[..(int)(pageData + 5)], pageData, "truncated record header: 5 of 8");
        Add("libxc-truncated-page-data", "auto", xc[..(int)(pageData + 100)], pageData, "truncated");
        Add("libxc-missing-end", "auto", xc[..(int)end], end, "missing END");
        var padded = Libxc(GuestType.Hvm, w => w.WriteHvmContext(new byte[1021]));
        var hvmContext = At(Items(padded), "HVM_CONTEXT");
        Add("libxc-truncated-padding", "auto", padded[..(int)(hvmContext + 8 + 1022)], hvmContext, "padding");
        Add("libxl-missing-libxl-end", "auto", xl[..^8], xl.Length - 8, "missing libxl END");
        Add("xl-truncated-optional-data", "auto", xlFile[..60], 0, "optional data truncated");

        // Wrong marker, ident, version; big-endian option bit; reserved bits and fields.
        Add("libxc-wrong-marker", "libxc", Patch(xc, 3, 0xFE), 0, "marker");
        var image = At(xlItems, "libxc image header");
        Add("libxl-embedded-wrong-marker", "auto", Patch(xl, image + 7, 0x7F), image, "marker");
        Add("libxc-wrong-id", "auto", Patch(xc, 8, (byte)'Y'), 8, "is not XENF");
        Add("libxc-version-4", "auto", PatchBe32(xc, 12, 4), 12, "version 4 not supported");
        Add("libxc-version-1", "auto", PatchBe32(xc, 12, 1), 12, "version 1 not supported");
        Add("libxc-big-endian-option", "auto", Patch(xc, 17, 1), 16, "big-endian");
        Add("libxc-reserved-option-bit", "auto", Patch(xc, 17, 2), 16, "reserved option bits");
        Add("libxc-image-reserved-field", "auto", Patch(xc, 23, 1), 18, "reserved fields not zero");
        Add("libxc-domain-reserved-field", "auto", Patch(xc, 24 + 6, 1), 30, "reserved field 0x0001 not zero");
        Add("libxc-domain-type-3", "auto", Patch(xc, 24, 3), 24, "domain type 3");
        Add("libxc-page-shift-13", "auto", Patch(xc, 28, 13), 28, "page_shift 13");
        var libxlHeader = At(xlFileItems, "libxl stream header");
        Add("xl-libxl-wrong-ident", "auto", Patch(xlFile, libxlHeader + 7, (byte)'X'), libxlHeader, "is not LibxlFmt");
        Add("libxl-wrong-ident", "libxl", Patch(xl, 0, (byte)'l'), 0, "is not LibxlFmt");
        Add("libxl-version-3", "auto", Patch(xl, 11, 3), 8, "version 3 not supported");
        Add("libxl-big-endian-option", "auto", Patch(xl, 15, 1), 12, "big-endian");
        Add("libxl-reserved-option-bit", "auto", Patch(xl, 15, 4), 12, "reserved option bits");
        Add("xl-wrong-byteorder", "auto", Patch(xlFile, 32, 1), 32, "byteorder");
        Add("xl-unknown-mandatory-flag", "auto", Patch(xlFile, 36, 7), 36, "unknown mandatory flags 0x00000004");
        Add("libxc-nonzero-padding", "auto", Patch(padded, hvmContext + 8 + 1022, 1), hvmContext, "non-zero padding");
        var emuContext = At(xlItems, "EMULATOR_CONTEXT");
        var emuLength = BinaryPrimitives.ReadUInt32LittleEndian(xl.AsSpan((int)emuContext + 4));
        Add("libxl-nonzero-padding", "auto", Patch(xl, emuContext + 8 + emuLength, 0x20), emuContext, "non-zero padding");
        Add("libxc-page-data-reserved", "auto", Patch(xc, pageData + 8 + 4, 1), pageData, "reserved field 0x00000001 not zero");
        Add("libxc-pfn-reserved-bits", "auto", Patch(xc, pageData + 16 + 8 + 6, 0x10), pageData, "reserved bits 52-59");
        var tsc = At(xcItems, "X86_TSC_INFO");
        Add("libxc-tsc-reserved", "auto", Patch(xc, tsc + 8 + 20, 1), tsc, "reserved field");
        var pv = Libxc(GuestType.Pv, _ => { });
        var basic = At(Items(pv), "X86_PV_VCPU_BASIC");
        Add("libxc-vcpu-reserved", "auto", Patch(pv, basic + 8 + 4, 1), basic, "reserved field");
        var pvInfo = At(Items(pv), "X86_PV_INFO");
        Add("libxc-pv-info-reserved", "auto", Patch(pv, pvInfo + 8 + 5, 1), pvInfo, "reserved octets");

        // Unknown mandatory record types at both layers.
        var unknown = Libxc(GuestType.Hvm, w => w.WriteRecord(0x13u, [1, 2, 3, 4]));
        Add("libxc-unknown-mandatory-type", "auto", unknown, At(Items(unknown), "UNKNOWN_0x00000013"), "unknown mandatory record type 0x00000013");
        var xlEnd = At(xlItems, "libxl END");
        Add("libxl-unknown-mandatory-type", "auto", Splice(xl, xlEnd, Record(6, [9, 9, 9, 9])), xlEnd, "unknown mandatory libxl record type 0x00000006");

        // Lengths near 4 GiB: rejected (libxc), or read as a stream without allocating it (libxl).
        Add("libxc-length-near-4gib", "auto", Splice(xc, end, Header(9, 0xFFFF_FFF8)), end, "exceeds the record limit");
        Add("libxl-length-near-4gib", "auto", Splice(xl[..(int)xlEnd], xlEnd, [.. Header(3, 0xFFFF_FFF0), 2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]), xlEnd, "truncated");

        // PAGE_DATA count against length.
        Add("libxc-page-data-count-length-mismatch", "auto", Patch(xc, pageData + 8, 3), pageData, "does not match count 3");
        Add("libxc-page-data-count-70000", "auto", PatchLe32(xc, pageData + 8, 70000), pageData, "count 70000 exceeds 1024");
        Add("libxc-page-data-count-0", "auto", PatchLe32(xc, pageData + 8, 0), pageData, "count 0");
        Add("libxc-page-data-reserved-type", "auto", Patch(xc, pageData + 16 + 7, 0x50), pageData, "reserved page type 0x5");

        // A libxl stream whose embedded libxc stream is broken.
        var xlPageData = At(xlItems, "PAGE_DATA");
        Add("libxl-broken-embedded-libxc", "auto", PatchLe32(xl, xlPageData + 8, 2), xlPageData, "does not match count 2");
        var xlLibxcEnd = At(xlItems, "END");
        Add("libxl-embedded-libxc-without-end", "auto", Cut(xl, xlLibxcEnd, 8), xlLibxcEnd, "PV record in an HVM stream");

        // Order, singletons, bounds and per-type sizes.
        var noSde = Libxc(GuestType.Hvm, w => { }, staticDataEnd: false);
        Add("libxc-v3-without-static-data-end", "auto", noSde, At(Items(noSde), "PAGE_DATA"), "no STATIC_DATA_END");
        var twice = Libxc(GuestType.Pv, w => w.WriteX86PvInfo(new X86PvInfo(8, 4)));
        Add("libxc-pv-info-repeated", "auto", twice, At(Items(twice), "X86_PV_INFO", 1), "X86_PV_INFO repeated");
        var beyond = Libxc(GuestType.Pv, w => w.WritePageData([PageTypes.Encode(64, PageType.NoTab)], new byte[4096]));
        Add("libxc-pv-pfn-beyond-p2m", "auto", beyond, At(Items(beyond), "PAGE_DATA", 1), "exceeds max pfn 0x3F");
        var toolstack = Libxc(GuestType.Hvm, w => w.WriteToolstack([1]));
        Add("libxc-toolstack", "auto", toolstack, At(Items(toolstack), "TOOLSTACK"), "deprecated");
        var emptyContext = Libxc(GuestType.Hvm, w => w.WriteHvmContext(default));
        Add("libxc-empty-hvm-context", "auto", emptyContext, At(Items(emptyContext), "HVM_CONTEXT"), "empty HVM context");
        var hvmParams = At(xcItems, "HVM_PARAMS");
        Add("libxc-hvm-params-count-mismatch", "auto", Patch(xc, hvmParams + 8, 5), hvmParams, "does not match count 5");
        var p2m = At(Items(pv), "X86_PV_P2M_FRAMES");
        Add("libxc-p2m-frames-length-mismatch", "auto", PatchLe32(pv, p2m + 8 + 4, 4096), p2m, "does not match pfns 0..4096");
        Add("libxc-pv-record-in-hvm-stream", "auto", Patch(pv, 24, 2), At(Items(pv), "X86_PV_INFO"), "PV record in an HVM stream");
        var badBasic = Libxc(GuestType.Pv, w => w.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, 1, new byte[100]));
        Add("libxc-vcpu-basic-wrong-size", "auto", badBasic, At(Items(badBasic), "X86_PV_VCPU_BASIC"), "context of 100 octets");
        var dirty = Libxc(GuestType.Hvm, w => w.WriteCheckpointDirtyPfnList([1]));
        Add("libxc-dirty-pfn-list-forward", "auto", dirty, At(Items(dirty), "CHECKPOINT_DIRTY_PFN_LIST"), "COLO back channel");
        Add("libxl-checkpoint-end-outside-checkpoint", "auto", Splice(xl, xlEnd, Record(4, [])), xlEnd, "outside a checkpoint");
        var xenstore = At(xlItems, "EMULATOR_XENSTORE_DATA");
        var xenstoreLength = BinaryPrimitives.ReadUInt32LittleEndian(xl.AsSpan((int)xenstore + 4));
        Add("libxl-xenstore-not-nul-terminated", "auto", Patch(xl, xenstore + 8 + xenstoreLength - 1, (byte)'x'), xenstore, "not NUL-terminated");
        Add("libxl-emulator-id-3", "auto", Patch(xl, emuContext + 8, 3), emuContext, "emulator_id 3");
        return cases;
    }

    /// <summary>A libxc stream: headers, (PV) PV_INFO, STATIC_DATA_END, (PV) P2M, one page, <paramref name="body"/>, completion records, END.</summary>
    public static byte[] Libxc(GuestType guest, Action<LibxcWriter> body, bool staticDataEnd = true)
    {
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            var w = new LibxcWriter(output);
            w.WriteImageHeader();
            w.WriteDomainHeader(DomainHeader.Create(guest, 4, 22));
            if (guest == GuestType.Pv)
            {
                w.WriteX86PvInfo(new X86PvInfo(8, 4));
            }

            if (staticDataEnd)
            {
                w.WriteStaticDataEnd();
            }

            if (guest == GuestType.Pv)
            {
                w.WriteX86PvP2mFrames(0, 63, [0]);
            }

            w.WritePageData([PageTypes.Encode(0, PageType.NoTab)], new byte[4096]);
            body(w);
            if (guest == GuestType.Pv)
            {
                w.WriteSharedInfo(new byte[4096]);
                w.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, 0, new byte[X86PvVcpuView.BasicContextSize64]);
            }
            else
            {
                w.WriteHvmContext([1, 2, 3]);
            }

            w.WriteEnd();
            output.Flush();
        }

        return ms.ToArray();
    }

    /// <summary>(name, offset) of every header and record, in stream order, as the walker sees them.</summary>
    public static List<(string Name, long Offset)> Items(byte[] data)
    {
        var items = new List<(string, long)>();
        using var input = new InputBuffer(new MemoryStream(data));
        var walker = new V2StreamReader(input);
        while (walker.Read())
        {
            var name = walker.Item switch
            {
                V2Item.XlHeader => "xl header",
                V2Item.LibxlHeader => "libxl stream header",
                V2Item.LibxcImageHeader => "libxc image header",
                V2Item.LibxcDomainHeader => "libxc domain header",
                V2Item.LibxlRecord => walker.Libxl!.RecordName(walker.Libxl.Header.Type),
                V2Item.LibxcRecord => walker.Libxc!.RecordName(walker.Libxc.Header.Type),
                _ => walker.Item.ToString(),
            };
            items.Add((name, walker.ItemOffset));
        }

        return items;
    }

    private static long At(List<(string Name, long Offset)> items, string name, int nth = 0) =>
        items.Where(i => i.Name == name).Skip(nth).First().Offset;

    private static byte[] Patch(byte[] data, long offset, byte value)
    {
        var copy = (byte[])data.Clone();
        copy[offset] = value;
        return copy;
    }

    private static byte[] PatchLe32(byte[] data, long offset, uint value)
    {
        var copy = (byte[])data.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan((int)offset), value);
        return copy;
    }

    private static byte[] PatchBe32(byte[] data, long offset, uint value)
    {
        var copy = (byte[])data.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan((int)offset), value);
        return copy;
    }

    private static byte[] Splice(byte[] data, long offset, byte[] insert) =>
        [.. data.AsSpan(0, (int)offset), .. insert, .. data.AsSpan((int)offset)];

    private static byte[] Cut(byte[] data, long offset, int count) =>
        [.. data.AsSpan(0, (int)offset), .. data.AsSpan((int)offset + count)];

    private static byte[] Header(uint type, uint length)
    {
        var h = new byte[8];
        new RecordHeader(type, length).Write(h);
        return h;
    }

    private static byte[] Record(uint type, byte[] body) =>
        [.. Header(type, (uint)body.Length), .. body, .. new byte[RecordHeader.PaddingFor(body.Length)]];
}
