namespace Xmig.Formats.Libxc;

// Usage (v2-stream.md §3):
//
//   using var input = new InputBuffer(stream);
//   var reader = new LibxcReader(input);
//   reader.ReadImageHeader();               // validates marker, id, version 2..3, little-endian
//   reader.ReadDomainHeader();              // validates type 1/2 and page_shift 12
//   while (true)
//   {
//       var header = reader.ReadRecordHeader();   // throws "missing END" at end of stream
//       switch ((RecordType)header.Type)
//       {
//           case RecordType.PageData:
//               var pages = reader.ReadPageData();   // or ReadPageDataEntries() then SkipBody()/ReadBodyInto()
//               ...
//               break;
//           case RecordType.End: return;
//           default: reader.SkipBody(); break;       // or ReadBody(), CopyBodyTo(...)
//       }
//   }
//
// An unconsumed body is skipped by the next ReadRecordHeader. Spans are valid until the next call.

/// <summary>
/// Pull reader for a libxc Migration v2 stream (v2 spec §3) over an <see cref="InputBuffer"/>, seekable or not.
/// Holds at most one record (one page batch) in memory; allocates nothing per record or page.
/// </summary>
/// <remarks>
/// The typed <c>Read*</c> methods apply the structural rules the reference restore applies to parse a body
/// (v2 spec §7): lengths against counts, PAGE_DATA types and xmig's 1024-entry limit. Policy checks (reserved
/// fields, record order, guest type) belong to the caller (see <c>Xmig.Verify</c>).
/// </remarks>
public sealed class LibxcReader : RecordReader
{
    /// <summary><c>REC_LENGTH_MAX</c>: the reference reader rejects longer bodies (v2 spec §3.3).</summary>
    public const uint RecordLengthMax = 0x0800_0000;

    /// <summary>Largest non-PAGE_DATA body <see cref="RecordReader.ReadBody"/> holds in memory.</summary>
    public const int MaxBodyInMemoryLength = 16 << 20;

    /// <param name="input">Positioned at the Image Header.</param>
    /// <param name="streamStart">Absolute offset of the libxc stream start (defaults to the current position).</param>
    public LibxcReader(InputBuffer input, long? streamStart = null)
        : base(input, streamStart)
    {
    }

    /// <summary>The Image Header, once read.</summary>
    public ImageHeader ImageHeader { get; private set; }

    /// <summary>The Domain Header, once read.</summary>
    public DomainHeader DomainHeader { get; private set; }

    /// <summary>The current record's type.</summary>
    public RecordType Type => (RecordType)Header.Type;

    private protected override string LayerName => "libxc";

    private protected override long MaxRecordLength => RecordLengthMax;

    public override string RecordName(uint type) => RecordTypes.Name(type);

    /// <summary>Reads and validates the Image Header (v2 spec §3.1, §7 rows 1–4).</summary>
    public ImageHeader ReadImageHeader()
    {
        var offset = Input.Position;
        var bytes = ReadFixed("libxc image header", ImageHeader.Size);
        var header = ImageHeader.Read(bytes);
        header.Validate(offset);
        ImageHeader = header;
        return header;
    }

    /// <summary>Reads and validates the Domain Header (v2 spec §3.2, §7 rows 6–7).</summary>
    public DomainHeader ReadDomainHeader()
    {
        var offset = Input.Position;
        var bytes = ReadFixed("libxc domain header", DomainHeader.Size);
        var header = DomainHeader.Read(bytes);
        header.Validate(offset);
        DomainHeader = header;
        return header;
    }

    /// <summary>Reads the next record header; throws "missing END" at a clean end of stream.</summary>
    public RecordHeader ReadRecordHeader()
    {
        if (!TryReadRecordHeader(out var header))
        {
            throw new StreamFormatException(
                "libxc stream", -1, Input.Position, Invariant($"missing END: stream ends after {RecordCount} records"));
        }

        return header;
    }

    /// <summary>X86_PV_INFO (v2 spec §3.5.3): length ≥ 8.</summary>
    public X86PvInfo ReadX86PvInfo()
    {
        RequireAtLeast(X86PvInfo.Size);
        return X86PvInfo.Read(ReadBody());
    }

    /// <summary>X86_TSC_INFO (v2 spec §3.5.7): length = 24.</summary>
    public X86TscInfo ReadX86TscInfo()
    {
        RequireExactly(X86TscInfo.Size);
        return X86TscInfo.Read(ReadBody());
    }

    /// <summary>HVM_PARAMS (v2 spec §3.5.9): length ≥ 8 and = 8 + 16·count.</summary>
    public HvmParamsView ReadHvmParams()
    {
        RequireAtLeast(HvmParamsView.HeaderSize);
        var count = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(PeekBody(4));
        var expected = HvmParamsView.BodyLength(count);
        if (Header.Length != expected)
        {
            throw Error(Invariant($"length {Header.Length} does not match count {count} (expected {expected})"));
        }

        return new HvmParamsView(ReadBody());
    }

    /// <summary>
    /// X86_PV_P2M_FRAMES (v2 spec §3.5.4): length ≥ 8, a multiple of 8, start ≤ end. The exact frame count
    /// depends on the guest width (see <see cref="X86PvP2mFramesView.ExpectedFrameCount"/>).
    /// </summary>
    public X86PvP2mFramesView ReadX86PvP2mFrames()
    {
        RequireAtLeast(X86PvP2mFramesView.HeaderSize);
        if ((Header.Length & 7) != 0)
        {
            throw Error(Invariant($"length {Header.Length} is not a multiple of 8"));
        }

        var view = new X86PvP2mFramesView(ReadBody());
        if (view.StartPfn > view.EndPfn)
        {
            throw Error(Invariant($"p2m_start_pfn {view.StartPfn} exceeds p2m_end_pfn {view.EndPfn}"));
        }

        return view;
    }

    /// <summary>X86_PV_VCPU_* (v2 spec §3.5.5): length ≥ 8. Context sizes are checked by the caller.</summary>
    public X86PvVcpuView ReadX86PvVcpu()
    {
        RequireAtLeast(X86PvVcpuView.HeaderSize);
        return new X86PvVcpuView(ReadBody());
    }

    /// <summary>
    /// PAGE_DATA, whole body (v2 spec §3.5.2, §7 rows 17, 19, 20): count 1..1024, no reserved page type,
    /// length = 8 + 8·count + 4096·N. The page data is returned in place (no copy).
    /// </summary>
    public PageDataView ReadPageData() => ReadPageDataCore(withPages: true);

    /// <summary>
    /// PAGE_DATA header and pfn entries only, validated as in <see cref="ReadPageData"/>. The N pages stay in the
    /// stream: follow with <see cref="RecordReader.SkipBody"/> (seeks when it can),
    /// <see cref="RecordReader.ReadBodyInto"/> per page, or a copy. The entries span is valid until that call.
    /// </summary>
    public PageDataView ReadPageDataEntries() => ReadPageDataCore(withPages: false);

    private protected override int MaxBodyInMemory(uint type) =>
        type == (uint)RecordType.PageData ? PageData.MaxBodyLength : MaxBodyInMemoryLength;

    private PageDataView ReadPageDataCore(bool withPages)
    {
        var length = Header.Length;
        if (length < PageData.HeaderSize)
        {
            throw Error(Invariant($"length {length} is shorter than the 8-octet PAGE_DATA header"));
        }

        var head = ReadBodyPrefix(PageData.HeaderSize);
        var count = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head);
        var reserved = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
        if (count == 0)
        {
            throw Error("count 0 (at least one pfn entry required)");
        }

        if (count > PageData.MaxCount)
        {
            throw Error(Invariant($"count {count} exceeds {PageData.MaxCount}"));
        }

        var entriesLength = (int)count * 8;
        if (length < PageData.HeaderSize + (long)entriesLength)
        {
            throw Error(Invariant($"length {length} too short for {count} pfn entries"));
        }

        var entries = PeekBody(entriesLength);
        var pages = 0;
        for (var i = 0; i < entries.Length; i += 8)
        {
            var type = entries[i + 7] >> 4;
            if (PageTypes.IsReserved(type))
            {
                throw Error(Invariant($"pfn entry {i / 8}: reserved page type 0x{type:X}"));
            }

            if (PageTypes.HasData(type))
            {
                pages++;
            }
        }

        var expected = PageData.BodyLength(count, pages);
        if (length != expected)
        {
            throw Error(Invariant($"length {length} does not match count {count} with {pages} data pages (expected {expected})"));
        }

        if (!withPages)
        {
            return new PageDataView(count, reserved, ReadBodyPrefix(entriesLength), pages, default);
        }

        var rest = ReadBody();
        return new PageDataView(count, reserved, rest[..entriesLength], pages, rest[entriesLength..]);
    }

    private void RequireAtLeast(int size)
    {
        if (Header.Length < size)
        {
            throw Error(Invariant($"length {Header.Length} is shorter than {size}"));
        }
    }

    private void RequireExactly(int size)
    {
        if (Header.Length != size)
        {
            throw Error(Invariant($"length {Header.Length} is not {size}"));
        }
    }

    private ReadOnlySpan<byte> ReadFixed(string what, int size)
    {
        var offset = Input.Position;
        if (!Input.TryRead(size, out var bytes, out var available))
        {
            throw new StreamFormatException(what, -1, offset, Invariant($"truncated: {available} of {size} octets"));
        }

        return bytes;
    }
}
