using Xmig.Formats;
using Xmig.Formats.Libxc;

namespace Xmig.Tests.Formats.Libxc;

public class LibxcRoundTripTests
{
    private static byte[] Write(Action<LibxcWriter> body)
    {
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            var w = new LibxcWriter(output);
            w.WriteImageHeader();
            w.WriteDomainHeader(DomainHeader.Create(GuestType.Pv, 4, 22));
            body(w);
            w.WriteEnd();
            output.Flush();
        }

        return ms.ToArray();
    }

    private static LibxcReader Open(byte[] data, out InputBuffer input)
    {
        input = new InputBuffer(new MemoryStream(data));
        var r = new LibxcReader(input) { StrictPadding = true };
        r.ReadImageHeader();
        r.ReadDomainHeader();
        return r;
    }

    [Fact]
    public void ImageHeader_WritesSpecExampleBytes()
    {
        Span<byte> b = stackalloc byte[ImageHeader.Size];
        ImageHeader.Create().Write(b);
        Assert.Equal(Convert.FromHexString("FFFFFFFFFFFFFFFF58454E46000000030000000000000000"), b.ToArray());
        var h = ImageHeader.Read(b);
        Assert.Equal(3u, h.Version);
        Assert.False(h.IsBigEndian);
    }

    [Fact]
    public void DomainHeader_WritesSpecExampleBytes()
    {
        Span<byte> b = stackalloc byte[DomainHeader.Size];
        DomainHeader.Create(GuestType.Hvm, 4, 22).Write(b);
        Assert.Equal(Convert.FromHexString("020000000C000000040000001600000000"[..32]), b.ToArray());
        var h = DomainHeader.Read(b);
        Assert.Equal(GuestType.Hvm, h.GuestType);
        Assert.Equal(22u, h.XenMinor);
    }

    [Theory]
    [InlineData(RecordType.End)]
    [InlineData(RecordType.Verify)]
    [InlineData(RecordType.Checkpoint)]
    [InlineData(RecordType.StaticDataEnd)]
    public void EmptyRecords_RoundTrip(RecordType type)
    {
        var data = Write(w => w.WriteRecord(type, default));
        var r = Open(data, out var input);
        using (input)
        {
            var h = r.ReadRecordHeader();
            Assert.Equal((uint)type, h.Type);
            Assert.Equal(0u, h.Length);
            Assert.Equal(8, h.WireSize);
        }
    }

    [Fact]
    public void PageData_RoundTrip_EntriesTypesAndPages()
    {
        ulong[] entries =
        [
            PageTypes.Encode(5, PageType.NoTab), PageTypes.Encode(6, PageType.XTab), PageTypes.Encode(7, PageType.L2TabPinned),
            PageTypes.Encode(0xF_FFFF_FFFF_FFFF, PageType.Broken), PageTypes.Encode(9, PageType.XAlloc),
        ];
        var pages = new byte[2 * 4096];
        pages[0] = 0xAA;
        pages[4096] = 0xBB;
        var data = Write(w => w.WritePageData(entries, pages));
        var r = Open(data, out var input);
        using (input)
        {
            var h = r.ReadRecordHeader();
            Assert.Equal(RecordType.PageData, r.Type);
            Assert.Equal(8u + (8 * 5) + (2 * 4096), h.Length);
            var view = r.ReadPageData();
            Assert.Equal(5u, view.Count);
            Assert.Equal(2, view.PageCount);
            Assert.Equal(PageType.L2TabPinned, view.Type(2));
            Assert.Equal(0xF_FFFF_FFFF_FFFFUL, view.Pfn(3));
            Assert.Equal(0xAA, view.Page(0)[0]);
            Assert.Equal(0xBB, view.Page(1)[0]);
            r.ReadRecordHeader();
            Assert.Equal(RecordType.End, r.Type);
        }
    }

    [Fact]
    public void PageData_BeginAddEnd_EqualsContiguousWrite()
    {
        ulong[] entries = [PageTypes.Encode(1, PageType.NoTab), PageTypes.Encode(2, PageType.L1Tab)];
        var pages = new byte[2 * 4096];
        pages.AsSpan(4096).Fill(7);
        var a = Write(w => w.WritePageData(entries, pages));
        var b = Write(w =>
        {
            w.BeginPageData(entries);
            w.AddPage(pages.AsSpan(0, 4096));
            w.AddPage(pages.AsSpan(4096, 4096));
            w.EndPageData();
        });
        Assert.Equal(a, b);
    }

    [Fact]
    public void PageDataEntries_ThenSkip_ReachesNextRecord()
    {
        ulong[] entries = [PageTypes.Encode(1, PageType.NoTab), PageTypes.Encode(2, PageType.NoTab)];
        var data = Write(w => w.WritePageData(entries, new byte[8192]));
        var r = Open(data, out var input);
        using (input)
        {
            r.ReadRecordHeader();
            var view = r.ReadPageDataEntries();
            Assert.Equal(2u, view.Count);
            Assert.False(view.Pages.Length > 0);
            Assert.Equal(2UL, view.Pfn(1));
            r.SkipBody();
            r.ReadRecordHeader();
            Assert.Equal(RecordType.End, r.Type);
        }
    }

    [Fact]
    public void X86PvInfo_RoundTrip()
    {
        var data = Write(w => w.WriteX86PvInfo(new X86PvInfo(4, 3)));
        Assert.Equal(Convert.FromHexString("02000000080000000403000000000000"), data.AsSpan(40, 16).ToArray());
        var r = Open(data, out var input);
        using (input)
        {
            r.ReadRecordHeader();
            var info = r.ReadX86PvInfo();
            Assert.Equal(4, info.GuestWidth);
            Assert.Equal(3, info.PtLevels);
            Assert.True(info.IsValidPair);
        }
    }

    [Fact]
    public void X86PvP2mFrames_RoundTrip()
    {
        var data = Write(w => w.WriteX86PvP2mFrames(0, 1023, [0x10, 0x11]));
        var r = Open(data, out var input);
        using (input)
        {
            r.ReadRecordHeader();
            var f = r.ReadX86PvP2mFrames();
            Assert.Equal(1023u, f.EndPfn);
            Assert.Equal(2, f.FrameCount);
            Assert.Equal(0x11UL, f.Frame(1));
            Assert.Equal(2, X86PvP2mFramesView.ExpectedFrameCount(0, 1023, 8));
        }
    }

    [Theory]
    [InlineData(RecordType.X86PvVcpuBasic, 5168)]
    [InlineData(RecordType.X86PvVcpuExtended, 64)]
    [InlineData(RecordType.X86PvVcpuXsave, 21)]
    [InlineData(RecordType.X86PvVcpuMsrs, 32)]
    public void X86PvVcpu_RoundTrip_WithPadding(RecordType type, int size)
    {
        var context = Enumerable.Range(0, size).Select(i => (byte)(i + 1)).ToArray();
        var data = Write(w => w.WriteX86PvVcpu(type, 3, context));
        var r = Open(data, out var input);
        using (input)
        {
            var h = r.ReadRecordHeader();
            Assert.Equal((uint)(8 + size), h.Length);
            var v = r.ReadX86PvVcpu();
            Assert.Equal(3u, v.VcpuId);
            Assert.Equal(0u, v.Reserved);
            Assert.Equal(context, v.Context.ToArray());
            r.ReadRecordHeader();
            Assert.Equal(RecordType.End, r.Type);
        }
    }

    [Fact]
    public void SharedInfo_HvmContext_Toolstack_RoundTrip()
    {
        var page = new byte[4096];
        page[100] = 1;
        var data = Write(w =>
        {
            w.WriteSharedInfo(page);
            w.WriteHvmContext([1, 2, 3]);
            w.WriteToolstack([9]);
        });
        var r = Open(data, out var input);
        using (input)
        {
            r.ReadRecordHeader();
            Assert.Equal(page, r.ReadBody().ToArray());
            r.ReadRecordHeader();
            Assert.Equal(RecordType.HvmContext, r.Type);
            Assert.Equal(new byte[] { 1, 2, 3 }, r.ReadBody().ToArray());
            r.ReadRecordHeader();
            Assert.Equal(RecordType.Toolstack, r.Type);
            Assert.Equal(new byte[] { 9 }, r.ReadBody().ToArray());
        }
    }

    [Fact]
    public void X86TscInfo_RoundTrip()
    {
        var data = Write(w => w.WriteX86TscInfo(new X86TscInfo(2, 1000, 0x1_0000_0001, 7)));
        var r = Open(data, out var input);
        using (input)
        {
            r.ReadRecordHeader();
            var t = r.ReadX86TscInfo();
            Assert.Equal(2u, t.Mode);
            Assert.Equal(1000u, t.Khz);
            Assert.Equal(0x1_0000_0001UL, t.Nsec);
            Assert.Equal(7u, t.Incarnation);
        }
    }

    [Fact]
    public void HvmParams_RoundTrip()
    {
        var data = Write(w => w.WriteHvmParams([new HvmParamEntry(1, 0xFEFFC), new HvmParamEntry(17, 5)]));
        var r = Open(data, out var input);
        using (input)
        {
            var h = r.ReadRecordHeader();
            Assert.Equal(40u, h.Length);
            var p = r.ReadHvmParams();
            Assert.Equal(2u, p.Count);
            Assert.Equal(new HvmParamEntry(17, 5), p[1]);
        }
    }

    [Fact]
    public void CpuidAndMsrPolicy_DirtyPfnList_RoundTrip()
    {
        var data = Write(w =>
        {
            w.WriteX86CpuidPolicy([new CpuidLeaf(1, CpuidLeaf.NoSubleaf, 2, 3, 4, 5)]);
            w.WriteX86MsrPolicy([new MsrEntry(0xCE, 0, 42)]);
            w.WriteCheckpointDirtyPfnList([3, 4, 5]);
        });
        var r = Open(data, out var input);
        using (input)
        {
            r.ReadRecordHeader();
            Assert.Equal(new CpuidLeaf(1, CpuidLeaf.NoSubleaf, 2, 3, 4, 5), CpuidLeaf.Read(r.ReadBody()));
            r.ReadRecordHeader();
            Assert.Equal(new MsrEntry(0xCE, 0, 42), MsrEntry.Read(r.ReadBody()));
            var h = r.ReadRecordHeader();
            Assert.Equal(RecordType.CheckpointDirtyPfnList, r.Type);
            Assert.Equal(24u, h.Length);
        }
    }

    [Fact]
    public void UnknownOptionalRecord_IsReadAsRaw()
    {
        var data = Write(w => w.WriteRecord(0x8000_0042u, [1, 2, 3, 4, 5]));
        var r = Open(data, out var input);
        using (input)
        {
            var h = r.ReadRecordHeader();
            Assert.True(h.IsOptional);
            Assert.Equal("UNKNOWN_0x80000042", r.RecordName(h.Type));
            Assert.Equal(5, r.ReadBody().Length);
        }
    }

    [Fact]
    public void Writer_AlignsRelativeToStreamStart_NotFile()
    {
        using var ms = new MemoryStream();
        using var output = new OutputBuffer(ms);
        output.Write([1, 2, 3]);
        var w = new LibxcWriter(output);
        w.WriteImageHeader();
        w.WriteDomainHeader(DomainHeader.Create(GuestType.Hvm, 4, 22));
        w.WriteHvmContext([1]);
        w.WriteEnd();
        output.Flush();
        Assert.Equal(3 + 24 + 16 + 16 + 8, ms.Length);
    }

    [Fact]
    public void Writer_BodyLengthMismatch_Throws()
    {
        using var output = new OutputBuffer(new MemoryStream());
        var w = new LibxcWriter(output);
        w.BeginRecord((uint)RecordType.HvmContext, 4);
        w.WriteBody([1, 2]);
        Assert.Throws<InvalidOperationException>(w.EndRecord);
    }
}
