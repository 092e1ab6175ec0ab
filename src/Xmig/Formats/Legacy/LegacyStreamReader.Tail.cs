using System.Buffers.Binary;
using System.Text;

namespace Xmig.Formats.Legacy;

internal sealed partial class LegacyStreamReader
{
    private const string PvTailWhat = "PV tail";
    private const string HvmTailWhat = "HVM tail";
    private const string DeviceModelWhat = "device-model record";
    public const int DeviceModelSignatureLength = 21;

    private bool _unmappedStarted;

    public static ReadOnlySpan<byte> QemuDeviceModelRecordSignature => "QemuDeviceModelRecord"u8;

    public static ReadOnlySpan<byte> DeviceModelRecord0002Signature => "DeviceModelRecord0002"u8;

    public static ReadOnlySpan<byte> RemusDeviceModelStateSignature => "RemusDeviceModelState"u8;

    /// <summary>The 21 signature octets of a device-model record kind.</summary>
    public static ReadOnlySpan<byte> SignatureOf(LegacyDeviceModelSignature signature) => signature switch
    {
        LegacyDeviceModelSignature.QemuDeviceModelRecord => QemuDeviceModelRecordSignature,
        LegacyDeviceModelSignature.DeviceModelRecord0002 => DeviceModelRecord0002Signature,
        LegacyDeviceModelSignature.RemusDeviceModelState => RemusDeviceModelStateSignature,
        _ => throw new ArgumentOutOfRangeException(nameof(signature)),
    };

    /// <summary>Which device-model signature <paramref name="head"/> starts with (None if none).</summary>
    public static LegacyDeviceModelSignature MatchDeviceModelSignature(ReadOnlySpan<byte> head)
    {
        if (head.Length < DeviceModelSignatureLength)
        {
            return LegacyDeviceModelSignature.None;
        }

        var sig = head[..DeviceModelSignatureLength];
        return sig.SequenceEqual(DeviceModelRecord0002Signature) ? LegacyDeviceModelSignature.DeviceModelRecord0002
            : sig.SequenceEqual(RemusDeviceModelStateSignature) ? LegacyDeviceModelSignature.RemusDeviceModelState
            : sig.SequenceEqual(QemuDeviceModelRecordSignature) ? LegacyDeviceModelSignature.QemuDeviceModelRecord
            : LegacyDeviceModelSignature.None;
    }

    // legacy-stream.md §6.1
    //   u32 nr_unmapped (≤ p2m_size)   ulong pfn[nr_unmapped] (each < p2m_size)
    private LegacyItemKind ReadUnmapped()
    {
        if (!_unmappedStarted)
        {
            var count = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, PvTailWhat, Checkpoint, ItemOffset));
            if (count > P2mSize)
            {
                throw Fail(PvTailWhat, Checkpoint, ItemOffset, $"nr_unmapped {count} exceeds p2m_size {P2mSize}");
            }

            _unmappedStarted = true;
            UnmappedCount = count;
            _unmappedLeft = count;
        }

        var slice = (int)Math.Min(_unmappedLeft, LegacyChunk.MaxBatchSize);
        var data = ReadExact(slice * _w, PvTailWhat, Checkpoint, ItemOffset);
        for (var i = 0; i < slice; i++)
        {
            var pfn = ReadULong(data[(i * _w)..]);
            if (pfn >= P2mSize)
            {
                throw Fail(PvTailWhat, Checkpoint, ItemOffset, $"unmapped pfn 0x{pfn:X} (at 0x{ItemOffset + (i * _w):X}) is not below p2m_size 0x{P2mSize:X}");
            }

            _ulongs[i] = pfn;
        }

        _unmappedSlice = slice;
        _unmappedLeft -= (uint)slice;
        if (_unmappedLeft == 0)
        {
            _state = State.PvVcpus;
        }

        return LegacyItemKind.PvUnmappedPfns;
    }

    // legacy-stream.md §6.1, §6.3 — per online vCPU (VCPU_INFO map, ascending):
    //   context (0xAF0 | 0x1430) · [128 extended context if extv] · [xcnt octets xsave record if xcnt]
    //   xsave record: u64 xfeature_mask, u64 size S (= xcnt − 16), u64 xcr0, u64 xcr0_accum, S − 16 area
    private LegacyItemKind ReadPvVcpu()
    {
        var id = NextOnlineVcpu(_vcpuCursor);
        if (id < 0)
        {
            _state = State.PvSharedInfo;
            return ReadSharedInfo();
        }

        _vcpuCursor = id + 1;
        VcpuId = id;
        _vcpuBasicLength = VcpuContextSize;
        _vcpuRecordLength = _vcpuBasicLength + (HasExtendedVcpuContext ? ExtendedContextSize : 0) + (int)XsaveRecordSize;
        Defer(_vcpuRecordLength, PvTailWhat, Checkpoint, ItemOffset);
        if (XsaveRecordSize != 0)
        {
            var xsave = _input.Peek(_vcpuRecordLength)[(_vcpuRecordLength - (int)XsaveRecordSize)..];
            var size = BinaryPrimitives.ReadUInt64LittleEndian(xsave[8..]);
            if (size != XsaveRecordSize - 16)
            {
                throw Fail(PvTailWhat, Checkpoint, ItemOffset, $"vCPU {id} xsave size {size} does not match xcnt {XsaveRecordSize} − 16");
            }
        }

        if (NextOnlineVcpu(_vcpuCursor) < 0)
        {
            _state = State.PvSharedInfo;
        }

        return LegacyItemKind.PvVcpu;
    }

    private int NextOnlineVcpu(int from)
    {
        for (var i = from; i <= MaxVcpuId; i++)
        {
            if ((_vcpuMap[i / 64] >> (i % 64) & 1) != 0)
            {
                return i;
            }
        }

        return -1;
    }

    // legacy-stream.md §6.4 — 4096 octets, guest layout
    private LegacyItemKind ReadSharedInfo()
    {
        Defer(4096, PvTailWhat, Checkpoint, ItemOffset);
        _state = State.TailDone;
        return LegacyItemKind.PvSharedInfo;
    }

    // legacy-stream.md §6.5
    //   u64 ioreq pfn  u64 buffered-ioreq pfn  u64 xenstore pfn  u32 L  L octets HVM context
    private LegacyItemKind ReadHvmMagic()
    {
        var data = ReadExact(24, HvmTailWhat, Checkpoint, ItemOffset);
        HvmIoreqPfn = BinaryPrimitives.ReadUInt64LittleEndian(data);
        HvmBufIoreqPfn = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]);
        HvmStorePfn = BinaryPrimitives.ReadUInt64LittleEndian(data[16..]);
        _state = State.HvmContext;
        return LegacyItemKind.HvmMagicPfns;
    }

    private LegacyItemKind ReadHvmContext()
    {
        var length = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, HvmTailWhat, Checkpoint, ItemOffset));
        if (length == 0)
        {
            throw Fail(HvmTailWhat, Checkpoint, ItemOffset, "HVM context length is 0");
        }

        if (length > _options.MaxHvmContextLength)
        {
            throw Fail(HvmTailWhat, Checkpoint, ItemOffset, $"HVM context length {length} exceeds {_options.MaxHvmContextLength}");
        }

        StartBlob(HvmTailWhat, length);
        _state = _options.DeviceModel == LegacyDeviceModelHandling.Leave ? State.TailDone : State.DeviceModel;
        return LegacyItemKind.HvmContext;
    }

    // legacy-stream.md §6.6
    //   char[21] signature (no NUL):
    //     "QemuDeviceModelRecord"  raw QEMU state until end of stream, starting with "QEVM"
    //     "DeviceModelRecord0002"  u32 length, length octets
    //     "RemusDeviceModelState"  u32 length, length octets
    private LegacyItemKind ReadDeviceModel()
    {
        var head = _input.Peek(DeviceModelSignatureLength + 4);
        var signature = MatchDeviceModelSignature(head);
        if (signature == LegacyDeviceModelSignature.None)
        {
            if (_options.DeviceModel == LegacyDeviceModelHandling.IfPresent)
            {
                return EndCheckpoint();
            }

            var found = head.Length == 0 ? "the end of the stream" : $"\"{Printable(head[..Math.Min(head.Length, DeviceModelSignatureLength)])}\"";
            throw Fail(DeviceModelWhat, Checkpoint, ItemOffset, $"expected a device-model record signature (DeviceModelRecord0002, RemusDeviceModelState or QemuDeviceModelRecord), found {found}");
        }

        DeviceModelSignature = signature;
        _input.Advance(DeviceModelSignatureLength);
        _state = State.TailDone;
        if (signature == LegacyDeviceModelSignature.QemuDeviceModelRecord)
        {
            var qevm = _input.Peek(4);
            if (!qevm.SequenceEqual("QEVM"u8))
            {
                throw Fail(DeviceModelWhat, Checkpoint, ItemOffset, "QemuDeviceModelRecord data does not start with \"QEVM\"");
            }

            StartBlob(DeviceModelWhat, -1);
            return LegacyItemKind.DeviceModelRecord;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, DeviceModelWhat, Checkpoint, ItemOffset));
        if (length > _options.MaxDeviceModelLength)
        {
            throw Fail(DeviceModelWhat, Checkpoint, ItemOffset, $"length {length} exceeds {_options.MaxDeviceModelLength}");
        }

        StartBlob(DeviceModelWhat, length);
        return LegacyItemKind.DeviceModelRecord;
    }

    /// <summary>Octets as text for a message: printable ASCII kept, others as \xNN.</summary>
    public static string Printable(ReadOnlySpan<byte> octets)
    {
        var sb = new StringBuilder(octets.Length);
        foreach (var c in octets)
        {
            if (c is >= 0x20 and <= 0x7E and not (byte)'"' and not (byte)'\\')
            {
                sb.Append((char)c);
            }
            else
            {
                sb.Append($"\\x{c:X2}");
            }
        }

        return sb.ToString();
    }
}
