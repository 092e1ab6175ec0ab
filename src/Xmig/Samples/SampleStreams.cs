using System.Buffers.Binary;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;

namespace Xmig.Samples;

/// <summary>What <see cref="SampleStreams"/> writes.</summary>
public sealed record SampleStreamOptions
{
    /// <summary>Outermost layer: <see cref="StreamKind.Xl"/>, <see cref="StreamKind.Libxl"/> or <see cref="StreamKind.Libxc"/>.</summary>
    public StreamKind Kind { get; init; } = StreamKind.Libxl;

    public GuestType Guest { get; init; } = GuestType.Hvm;

    /// <summary>Guest pages sent (in batches of up to 1024).</summary>
    public long Pages { get; init; } = 64;

    /// <summary>0: a plain stream. n > 0: a checkpointed stream of n checkpoints (Remus shape).</summary>
    public int Checkpoints { get; init; }

    /// <summary>With <see cref="Checkpoints"/>: add COLO CHECKPOINT_STATE(NEW) after each CHECKPOINT_END.</summary>
    public bool Colo { get; init; }

    /// <summary>With <see cref="Checkpoints"/>: terminate with libxc END and libxl END (the reference sender does not).</summary>
    public bool EndAfterCheckpoints { get; init; }

    /// <summary>Number of vCPUs (PV records per vCPU).</summary>
    public int Vcpus { get; init; } = 2;

    /// <summary>PV guest width in octets (4 or 8).</summary>
    public int GuestWidth { get; init; } = 8;
}

/// <summary>
/// Writes well-formed sample v2 streams of every kind, with every record type a sender emits, for the demo, tests
/// and benchmarks. Memory stays bounded at any size: one page buffer, one batch of entries.
/// </summary>
public static class SampleStreams
{
    /// <summary>Writes a sample stream into <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, SampleStreamOptions options)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        using var output = new OutputBuffer(stream);
        Write(output, options);
        output.Flush();
    }

    /// <summary>A sample stream in memory (small sizes only).</summary>
    public static byte[] Create(SampleStreamOptions options)
    {
        using var ms = new MemoryStream();
        Write(ms, options);
        return ms.ToArray();
    }

    /// <summary>Writes a sample stream into <paramref name="output"/> (not flushed).</summary>
    public static void Write(OutputBuffer output, SampleStreamOptions options)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        var hvm = options.Guest == GuestType.Hvm;
        if (options.Kind == StreamKind.Xl)
        {
            var config = hvm ? "{\"c_info\":{\"type\":\"hvm\",\"name\":\"sample\"}}\0"u8 : "{\"c_info\":{\"type\":\"pv\",\"name\":\"sample\"}}\0"u8;
            XlHeader.WriteTo(output, XlMandatoryFlags.Json | XlMandatoryFlags.StreamV2, XlHeader.BuildConfigBlock(config));
        }

        LibxlWriter? libxl = null;
        LibxcWriter libxc;
        if (options.Kind is StreamKind.Xl or StreamKind.Libxl)
        {
            libxl = new LibxlWriter(output);
            libxl.WriteHeader();
            libxc = libxl.BeginLibxcContext();
        }
        else
        {
            libxc = new LibxcWriter(output);
        }

        WriteLibxc(libxc, libxl, options);
        if (libxl is not null && (options.Checkpoints == 0 || options.EndAfterCheckpoints))
        {
            if (hvm)
            {
                WriteEmulatorRecords(libxl);
            }

            libxl.WriteEnd();
        }
    }

    private static void WriteLibxc(LibxcWriter w, LibxlWriter? libxl, SampleStreamOptions o)
    {
        var hvm = o.Guest == GuestType.Hvm;
        w.WriteImageHeader();
        w.WriteDomainHeader(DomainHeader.Create(o.Guest, 4, 22));
        if (!hvm)
        {
            w.WriteX86PvInfo(new X86PvInfo((byte)o.GuestWidth, (byte)(o.GuestWidth == 8 ? 4 : 3)));
        }

        w.WriteX86CpuidPolicy([new CpuidLeaf(0, CpuidLeaf.NoSubleaf, 0xD, 0x756E6547, 0x6C65746E, 0x49656E69), new CpuidLeaf(7, 0, 0, 0x209C01A9, 0, 0)]);
        w.WriteX86MsrPolicy([new MsrEntry(0xCE, 0, 0x8000_0000)]);
        w.WriteStaticDataEnd();
        var maxPfn = (uint)Math.Max(o.Pages + 15, 15);
        if (!hvm)
        {
            var frameCount = X86PvP2mFramesView.ExpectedFrameCount(0, maxPfn, o.GuestWidth);
            Span<ulong> frames = stackalloc ulong[(int)Math.Min(frameCount, 256)];
            if (frameCount > frames.Length)
            {
                frames = new ulong[frameCount];
            }

            for (var i = 0; i < frames.Length; i++)
            {
                frames[i] = (ulong)i;
            }

            w.WriteX86PvP2mFrames(0, maxPfn, frames);
        }

        var checkpoints = Math.Max(o.Checkpoints, 1);
        for (var c = 0; c < checkpoints; c++)
        {
            // Later checkpoints resend a dirty subset.
            WritePages(w, hvm, c == 0 ? o.Pages : Math.Max(1, o.Pages / 8), maxPfn, c);
            w.WriteX86TscInfo(new X86TscInfo(0, 2_400_000, 123_456_789UL + (ulong)c, 1));
            if (hvm)
            {
                WriteHvmContext(w);
                w.WriteHvmParams([
                    new HvmParamEntry(HvmParam.StorePfn, 0xFEFFC),
                    new HvmParamEntry(HvmParam.IoreqPfn, 0xFEFFF),
                    new HvmParamEntry(HvmParam.BufioreqPfn, 0xFEFFE),
                    new HvmParamEntry(HvmParam.ConsolePfn, 0xFEFFD),
                ]);
            }
            else
            {
                w.WriteSharedInfo(SharedInfoPage);
                WritePvVcpus(w, o);
            }

            if (o.Checkpoints == 0)
            {
                w.WriteEnd();
                return;
            }

            w.WriteCheckpoint();
            if (libxl is not null)
            {
                if (hvm)
                {
                    WriteEmulatorRecords(libxl);
                }

                libxl.WriteCheckpointEnd();
                if (o.Colo)
                {
                    libxl.WriteCheckpointState((uint)CheckpointStateId.CheckpointNew);
                }
            }
        }

        if (o.EndAfterCheckpoints)
        {
            w.WriteEnd();
        }
    }

    private static readonly byte[] SharedInfoPage = new byte[GuestPage.Size];

    private static void WritePages(LibxcWriter w, bool hvm, long pages, uint maxPfn, int checkpoint)
    {
        Span<ulong> entries = stackalloc ulong[PageData.MaxCount];
        Span<byte> page = stackalloc byte[GuestPage.Size];
        long pfn = 0;
        while (pfn < pages)
        {
            var n = (int)Math.Min(PageData.MaxCount, pages - pfn);
            for (var i = 0; i < n; i++)
            {
                entries[i] = PageTypes.Encode((ulong)(pfn + i), SampleType(hvm, pfn + i));
            }

            var batch = entries[..n];
            w.BeginPageData(batch);
            for (var i = 0; i < n; i++)
            {
                if (PageTypes.HasData(PageTypes.TypeOf(batch[i])))
                {
                    FillPage(page, (ulong)(pfn + i), checkpoint);
                    w.AddPage(page);
                }
            }

            w.EndPageData();
            pfn += n;
        }

        if (checkpoint == 0)
        {
            // One batch of data-less entries: an invalid (ballooned) pfn, a broken one, an allocate-only one.
            w.WritePageData([PageTypes.Encode(maxPfn, PageType.XTab), PageTypes.Encode(maxPfn - 1, PageType.Broken), PageTypes.Encode(maxPfn - 2, PageType.XAlloc)], default);
        }
    }

    private static PageType SampleType(bool hvm, long pfn)
    {
        if (hvm)
        {
            return PageType.NoTab;
        }

        return (pfn % 64) switch
        {
            1 => PageType.L1Tab,
            2 => PageType.L2Tab,
            3 => PageType.L3Tab,
            4 => PageType.L4TabPinned,
            _ => PageType.NoTab,
        };
    }

    private static void FillPage(Span<byte> page, ulong pfn, int checkpoint)
    {
        var value = (pfn * 0x9E37_79B9_7F4A_7C15UL) ^ (ulong)checkpoint;
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(page).Fill(value);
        BinaryPrimitives.WriteUInt64LittleEndian(page, pfn);
    }

    private static void WriteHvmContext(LibxcWriter w)
    {
        // A minimal Xen HVM save blob: header entry (typecode 1) with the magic, then the end entry.
        Span<byte> blob = stackalloc byte[8 + 24 + 8];
        blob.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(blob, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(blob[4..], 24);
        BinaryPrimitives.WriteUInt32LittleEndian(blob[8..], 0x54381286);
        w.WriteHvmContext(blob);
    }

    private static void WritePvVcpus(LibxcWriter w, SampleStreamOptions o)
    {
        Span<byte> basic = stackalloc byte[o.GuestWidth == 8 ? X86PvVcpuView.BasicContextSize64 : X86PvVcpuView.BasicContextSize32];
        Span<byte> extended = stackalloc byte[64];
        Span<byte> xsave = stackalloc byte[576];
        Span<byte> msrs = stackalloc byte[MsrEntry.Size * 2];
        for (var v = 0; v < o.Vcpus; v++)
        {
            basic.Fill((byte)v);
            extended.Fill((byte)(0x40 + v));
            xsave.Fill((byte)(0x80 + v));
            new MsrEntry(0xC000_0080, 0, 0xD01).Write(msrs);
            new MsrEntry(0x0000_0174, 0, (ulong)v).Write(msrs[MsrEntry.Size..]);
            w.WriteX86PvVcpu(RecordType.X86PvVcpuBasic, (uint)v, basic);
            w.WriteX86PvVcpu(RecordType.X86PvVcpuExtended, (uint)v, extended);
            w.WriteX86PvVcpu(RecordType.X86PvVcpuXsave, (uint)v, xsave);
            w.WriteX86PvVcpu(RecordType.X86PvVcpuMsrs, (uint)v, msrs);
        }
    }

    private static void WriteEmulatorRecords(LibxlWriter libxl)
    {
        var pairs = "physmap/f0000000/start_addr\0f0000000\0physmap/f0000000/size\0800000\0physmap/f0000000/name\0vga.vram\0"u8;
        libxl.WriteEmulatorXenstoreData((uint)EmulatorId.QemuUpstream, 0, pairs);
        Span<byte> blob = stackalloc byte[301];
        "QEVM"u8.CopyTo(blob);
        for (var i = 4; i < blob.Length; i++)
        {
            blob[i] = (byte)i;
        }

        libxl.WriteEmulatorContext((uint)EmulatorId.QemuUpstream, 0, blob);
    }
}
