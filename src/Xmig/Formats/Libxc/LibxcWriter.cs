using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// Usage (v2-stream.md §3, §3.6 order):
//
//   using var output = new OutputBuffer(stream);
//   var writer = new LibxcWriter(output);              // or LibxlWriter.BeginLibxcContext() when embedded
//   writer.WriteImageHeader();                         // version 3, little-endian
//   writer.WriteDomainHeader(DomainHeader.Create(GuestType.Hvm, 4, 22));
//   writer.WriteStaticDataEnd();
//   writer.BeginPageData(entries);                     // pfn entries (PageTypes.Encode); N computed from types
//   foreach (var page in dataPages) writer.AddPage(page);   // exactly N pages of 4096 octets
//   writer.EndPageData();                              // or WritePageData(entries, contiguousPages)
//   writer.WriteX86TscInfo(new X86TscInfo(...));
//   writer.WriteHvmContext(blob);
//   writer.WriteHvmParams(params);
//   writer.WriteEnd();
//   output.Flush();
//
// Records are padded with zeros to an 8-octet boundary relative to the libxc stream start; reserved fields
// are written as zero. A raw record can be written with BeginRecord/WriteBody/EndRecord or WriteRecord.

/// <summary>
/// Writes a libxc Migration v2 stream (v2 spec §3) into an <see cref="OutputBuffer"/>, byte-exactly: headers,
/// every record type, zero reserved fields and padding.
/// </summary>
public sealed class LibxcWriter : RecordWriter
{
    private int _pagesExpected = -1;
    private int _pagesWritten;

    /// <param name="output">Positioned where the libxc stream starts.</param>
    /// <param name="streamStart">Absolute position of the libxc stream start (defaults to the current one).</param>
    public LibxcWriter(OutputBuffer output, long? streamStart = null)
        : base(output, streamStart)
    {
    }

    private protected override long MaxRecordLength => LibxcReader.RecordLengthMax;

    /// <summary>Writes an Image Header (v2 spec §3.1).</summary>
    public void WriteImageHeader(uint version = ImageHeader.CurrentVersion) => WriteImageHeader(ImageHeader.Create(version));

    /// <summary>Writes <paramref name="header"/> as given (tests use this to produce bad headers).</summary>
    public void WriteImageHeader(ImageHeader header)
    {
        header.Write(Output.GetSpan(ImageHeader.Size));
        Output.Advance(ImageHeader.Size);
    }

    /// <summary>Writes a Domain Header (v2 spec §3.2).</summary>
    public void WriteDomainHeader(DomainHeader header)
    {
        header.Write(Output.GetSpan(DomainHeader.Size));
        Output.Advance(DomainHeader.Size);
    }

    /// <summary>Writes a record of a libxc type with <paramref name="body"/>.</summary>
    public void WriteRecord(RecordType type, ReadOnlySpan<byte> body) => WriteRecord((uint)type, body);

    /// <summary>END (v2 spec §3.5.1).</summary>
    public void WriteEnd() => WriteEmptyRecord((uint)RecordType.End);

    /// <summary>VERIFY (v2 spec §3.5.1).</summary>
    public void WriteVerify() => WriteEmptyRecord((uint)RecordType.Verify);

    /// <summary>CHECKPOINT (v2 spec §3.5.1).</summary>
    public void WriteCheckpoint() => WriteEmptyRecord((uint)RecordType.Checkpoint);

    /// <summary>STATIC_DATA_END (v2 spec §3.5.1).</summary>
    public void WriteStaticDataEnd() => WriteEmptyRecord((uint)RecordType.StaticDataEnd);

    /// <summary>X86_PV_INFO (v2 spec §3.5.3).</summary>
    public void WriteX86PvInfo(X86PvInfo info)
    {
        BeginRecord((uint)RecordType.X86PvInfo, X86PvInfo.Size);
        info.Write(Output.GetSpan(X86PvInfo.Size));
        Output.Advance(X86PvInfo.Size);
        EndRecord();
    }

    /// <summary>X86_PV_P2M_FRAMES (v2 spec §3.5.4).</summary>
    public void WriteX86PvP2mFrames(uint startPfn, uint endPfn, ReadOnlySpan<ulong> frames)
    {
        BeginRecord((uint)RecordType.X86PvP2mFrames, checked((uint)(X86PvP2mFramesView.HeaderSize + (8L * frames.Length))));
        Output.WriteUInt32LittleEndian(startPfn);
        Output.WriteUInt32LittleEndian(endPfn);
        WriteUInt64Array(frames);
        EndRecord();
    }

    /// <summary>X86_PV_VCPU_BASIC / EXTENDED / XSAVE / MSRS (v2 spec §3.5.5).</summary>
    public void WriteX86PvVcpu(RecordType type, uint vcpuId, ReadOnlySpan<byte> context)
    {
        if (!RecordTypes.IsPvVcpu((uint)type))
        {
            throw new ArgumentException($"{type} is not an X86_PV_VCPU_* record", nameof(type));
        }

        BeginRecord((uint)type, checked((uint)(X86PvVcpuView.HeaderSize + context.Length)));
        Output.WriteUInt32LittleEndian(vcpuId);
        Output.WriteUInt32LittleEndian(0);
        WriteBody(context);
        EndRecord();
    }

    /// <summary>SHARED_INFO (v2 spec §3.5.6): exactly 4096 octets.</summary>
    public void WriteSharedInfo(ReadOnlySpan<byte> sharedInfo)
    {
        if (sharedInfo.Length != GuestPage.Size)
        {
            throw new ArgumentException("SHARED_INFO is one 4096-octet page", nameof(sharedInfo));
        }

        WriteRecord((uint)RecordType.SharedInfo, sharedInfo);
    }

    /// <summary>X86_TSC_INFO (v2 spec §3.5.7).</summary>
    public void WriteX86TscInfo(X86TscInfo info)
    {
        BeginRecord((uint)RecordType.X86TscInfo, X86TscInfo.Size);
        info.Write(Output.GetSpan(X86TscInfo.Size));
        Output.Advance(X86TscInfo.Size);
        EndRecord();
    }

    /// <summary>HVM_CONTEXT (v2 spec §3.5.8): the opaque blob.</summary>
    public void WriteHvmContext(ReadOnlySpan<byte> context) => WriteRecord((uint)RecordType.HvmContext, context);

    /// <summary>HVM_PARAMS (v2 spec §3.5.9).</summary>
    public void WriteHvmParams(ReadOnlySpan<HvmParamEntry> parameters)
    {
        BeginRecord((uint)RecordType.HvmParams, checked((uint)HvmParamsView.BodyLength(parameters.Length)));
        Output.WriteUInt32LittleEndian((uint)parameters.Length);
        Output.WriteUInt32LittleEndian(0);
        foreach (var p in parameters)
        {
            Output.WriteUInt64LittleEndian(p.Index);
            Output.WriteUInt64LittleEndian(p.Value);
        }

        EndRecord();
    }

    /// <summary>TOOLSTACK (v2 spec §3.5.10, deprecated; receivers reject it).</summary>
    public void WriteToolstack(ReadOnlySpan<byte> data) => WriteRecord((uint)RecordType.Toolstack, data);

    /// <summary>CHECKPOINT_DIRTY_PFN_LIST (v2 spec §3.5.11, COLO back channel only).</summary>
    public void WriteCheckpointDirtyPfnList(ReadOnlySpan<ulong> pfns)
    {
        BeginRecord((uint)RecordType.CheckpointDirtyPfnList, checked((uint)(8L * pfns.Length)));
        WriteUInt64Array(pfns);
        EndRecord();
    }

    /// <summary>X86_CPUID_POLICY (v2 spec §3.5.12).</summary>
    public void WriteX86CpuidPolicy(ReadOnlySpan<CpuidLeaf> leaves)
    {
        BeginRecord((uint)RecordType.X86CpuidPolicy, checked((uint)(CpuidLeaf.Size * (long)leaves.Length)));
        foreach (var leaf in leaves)
        {
            leaf.Write(Output.GetSpan(CpuidLeaf.Size));
            Output.Advance(CpuidLeaf.Size);
        }

        EndRecord();
    }

    /// <summary>X86_MSR_POLICY (v2 spec §3.5.12).</summary>
    public void WriteX86MsrPolicy(ReadOnlySpan<MsrEntry> entries)
    {
        BeginRecord((uint)RecordType.X86MsrPolicy, checked((uint)(MsrEntry.Size * (long)entries.Length)));
        foreach (var entry in entries)
        {
            entry.Write(Output.GetSpan(MsrEntry.Size));
            Output.Advance(MsrEntry.Size);
        }

        EndRecord();
    }

    /// <summary>
    /// PAGE_DATA with the data of every data-carrying entry contiguous in <paramref name="pages"/>
    /// (v2 spec §3.5.2).
    /// </summary>
    public void WritePageData(ReadOnlySpan<ulong> entries, ReadOnlySpan<byte> pages)
    {
        BeginPageData(entries);
        if (pages.Length != _pagesExpected * GuestPage.Size)
        {
            throw new ArgumentException(
                $"{_pagesExpected} entries carry data, but {pages.Length} octets of pages were given", nameof(pages));
        }

        WriteBody(pages);
        _pagesWritten = _pagesExpected;
        EndPageData();
    }

    /// <summary>
    /// Starts a PAGE_DATA record for <paramref name="entries"/> (encoded with <see cref="PageTypes.Encode"/>);
    /// the number of pages N is computed from their types. Follow with N <see cref="AddPage"/> calls and
    /// <see cref="EndPageData"/>. Nothing is allocated.
    /// </summary>
    public void BeginPageData(ReadOnlySpan<ulong> entries)
    {
        if (entries.IsEmpty || entries.Length > PageData.MaxCount)
        {
            throw new ArgumentOutOfRangeException(nameof(entries), entries.Length, "PAGE_DATA carries 1..1024 entries");
        }

        var pages = 0;
        foreach (var e in entries)
        {
            var type = PageTypes.TypeOf(e);
            if (PageTypes.IsReserved(type) || (e & PageTypes.ReservedMask) != 0)
            {
                throw new ArgumentException($"entry 0x{e:X16} has a reserved type or reserved bits", nameof(entries));
            }

            if (PageTypes.HasData(type))
            {
                pages++;
            }
        }

        BeginRecord((uint)RecordType.PageData, checked((uint)PageData.BodyLength(entries.Length, pages)));
        Output.WriteUInt32LittleEndian((uint)entries.Length);
        Output.WriteUInt32LittleEndian(0);
        WriteUInt64Array(entries);
        _pagesExpected = pages;
        _pagesWritten = 0;
    }

    /// <summary>Appends the next data page (4096 octets) of the open PAGE_DATA record.</summary>
    public void AddPage(ReadOnlySpan<byte> page)
    {
        if (page.Length != GuestPage.Size)
        {
            throw new ArgumentException("a page is 4096 octets", nameof(page));
        }

        if (_pagesWritten >= _pagesExpected)
        {
            throw new InvalidOperationException("more pages than data-carrying entries");
        }

        WriteBody(page);
        _pagesWritten++;
    }

    /// <summary>Closes the open PAGE_DATA record.</summary>
    public void EndPageData()
    {
        if (_pagesWritten != _pagesExpected)
        {
            throw new InvalidOperationException($"{_pagesExpected} pages expected, {_pagesWritten} written");
        }

        _pagesExpected = -1;
        EndRecord();
    }

    private void WriteUInt64Array(ReadOnlySpan<ulong> values)
    {
        if (BitConverter.IsLittleEndian)
        {
            Output.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
            return;
        }

        foreach (var v in values)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(Output.GetSpan(8), v);
            Output.Advance(8);
        }
    }
}
