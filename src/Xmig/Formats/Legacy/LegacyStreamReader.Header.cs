using System.Buffers.Binary;
using System.Text;

namespace Xmig.Formats.Legacy;

internal sealed partial class LegacyStreamReader
{
    private const string HeaderWhat = "libxc image header";
    private const string ExtendedInfoWhat = "PV extended info";
    private const string FrameListWhat = "PV p2m frame list";

    /// <summary>"vcpu", "extv", "xcnt" as little-endian u32.</summary>
    public const uint SignatureVcpu = 0x75706376;
    public const uint SignatureExtv = 0x76747865;
    public const uint SignatureXcnt = 0x746E6378;

    private uint _extRemaining;
    private long _extBlockIndex = -1;
    private bool _seenExtv;
    private bool _seenXcnt;

    /// <summary>The 4 signature octets of an extended-info block as text.</summary>
    public static string SignatureText(uint signature)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, signature);
        foreach (var c in b)
        {
            if (c is < 0x20 or > 0x7E)
            {
                return $"0x{signature:X8}";
            }
        }

        return Encoding.ASCII.GetString(b);
    }

    // legacy-stream.md §4.1
    //   +0  ulong p2m_size    (W octets; number of guest frames, the saver refuses > 0x0FFFFFFF)
    private LegacyItemKind ReadP2mSize()
    {
        var p2m = ReadULong(ReadExact(_w, HeaderWhat, -1, ItemOffset));
        if (p2m == 0)
        {
            throw Fail(HeaderWhat, -1, ItemOffset, "p2m_size is 0");
        }

        if (p2m > _options.MaxP2mSize)
        {
            throw Fail(HeaderWhat, -1, ItemOffset, $"p2m_size 0x{p2m:X} exceeds 0x{_options.MaxP2mSize:X} (pfns must fit in 28 bits)");
        }

        P2mSize = p2m;
        GuestWidth = 8;
        _state = _options.IsPv ? State.ExtendedInfoMarker : State.Body;
        return LegacyItemKind.P2mSize;
    }

    // legacy-stream.md §4.2
    //   +0  ulong marker ~0      (absent: that ulong is entry 0 of the p2m frame list, pre-3.0.x)
    //   +W  u32   total_len      sum over blocks of 8 + len
    //   +W+4 blocks: char[4] sig, u32 len, len octets
    private LegacyItemKind ReadExtendedInfoMarker()
    {
        var head = _input.Peek(_w);
        if (head.Length < _w)
        {
            throw Fail(ExtendedInfoWhat, -1, ItemOffset, $"truncated: needed {_w} octets at offset 0x{ItemOffset:X}, only {head.Length} left");
        }

        if (ReadULong(head) != (_w == 8 ? ulong.MaxValue : uint.MaxValue))
        {
            // No extended info: the p2m frame list starts here (Xen before 3.0.x).
            _state = State.P2mFrameList;
            return ReadP2mFrameList();
        }

        _input.Advance(_w);
        var total = BinaryPrimitives.ReadUInt32LittleEndian(ReadExact(4, ExtendedInfoWhat, -1, ItemOffset));
        if (total > _options.MaxExtendedInfoLength)
        {
            throw Fail(ExtendedInfoWhat, -1, ItemOffset, $"total_len {total} exceeds {_options.MaxExtendedInfoLength}");
        }

        HasExtendedInfo = true;
        _extRemaining = total;
        if (total == 0)
        {
            _state = State.P2mFrameList;
            ItemOffset = _input.Position;
            return ReadP2mFrameList();
        }

        _state = State.ExtendedInfoBlocks;
        ItemOffset = _input.Position;
        return ReadExtendedInfoBlock();
    }

    private LegacyItemKind ReadExtendedInfoBlock()
    {
        _extBlockIndex++;
        const string what = "PV extended-info block";
        if (_extRemaining < 8)
        {
            throw Fail(what, _extBlockIndex, ItemOffset, $"{_extRemaining} octets left in total_len, a block header needs 8");
        }

        var head = ReadExact(8, what, _extBlockIndex, ItemOffset);
        var sig = BinaryPrimitives.ReadUInt32LittleEndian(head);
        var len = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
        if ((ulong)len + 8 > _extRemaining)
        {
            throw Fail(what, _extBlockIndex, ItemOffset, $"'{SignatureText(sig)}' length {len} runs past total_len ({_extRemaining - 8} octets left)");
        }

        switch (sig)
        {
            case SignatureVcpu:
                if (HasVcpuBlock)
                {
                    throw Fail(what, _extBlockIndex, ItemOffset, "second 'vcpu' block");
                }

                if (len is not (VcpuContextSize32 or VcpuContextSize64))
                {
                    throw Fail(what, _extBlockIndex, ItemOffset, $"'vcpu' length 0x{len:X} is neither 0xAF0 (32-bit guest) nor 0x1430 (64-bit guest)");
                }

                GuestWidth = len == VcpuContextSize32 ? 4 : 8;
                HasVcpuBlock = true;
                _vcpuBlock = ReadExact((int)len, what, _extBlockIndex, ItemOffset).ToArray();
                _extData = _vcpuBlock;
                break;
            case SignatureExtv:
                if (_seenExtv || len != 0)
                {
                    throw Fail(what, _extBlockIndex, ItemOffset, _seenExtv ? "second 'extv' block" : $"'extv' length {len} is not 0");
                }

                _seenExtv = true;
                HasExtendedVcpuContext = true;
                _extData = [];
                break;
            case SignatureXcnt:
                if (_seenXcnt || len != 4)
                {
                    throw Fail(what, _extBlockIndex, ItemOffset, _seenXcnt ? "second 'xcnt' block" : $"'xcnt' length {len} is not 4");
                }

                _seenXcnt = true;
                _extData = ReadExact(4, what, _extBlockIndex, ItemOffset).ToArray();
                var xcnt = BinaryPrimitives.ReadUInt32LittleEndian(_extData);
                if (xcnt != 0 && (xcnt < 16 || xcnt > _options.MaxXsaveRecordSize))
                {
                    throw Fail(what, _extBlockIndex, ItemOffset, $"'xcnt' {xcnt} is outside 16…{_options.MaxXsaveRecordSize}");
                }

                XsaveRecordSize = xcnt;
                NoteVersion("4.1", "extended-info block 'xcnt'");
                break;
            default:
                throw Fail(what, _extBlockIndex, ItemOffset, $"unknown extended-info block '{SignatureText(sig)}' (length {len})");
        }

        ExtendedInfoSignature = sig;
        _extRemaining -= 8 + len;
        if (_extRemaining == 0)
        {
            _state = State.P2mFrameList;
        }

        return LegacyItemKind.ExtendedInfoBlock;
    }

    // legacy-stream.md §4.3
    //   ceil(p2m_size / FPP) × ulong pfn,  FPP = 4096 / GW
    private LegacyItemKind ReadP2mFrameList()
    {
        var fpp = 4096UL / (ulong)GuestWidth;
        var count = (int)((P2mSize + fpp - 1) / fpp);
        var data = ReadExact(count * _w, FrameListWhat, -1, ItemOffset);
        _p2mFrames = new ulong[count];
        _p2mFrameCount = count;
        for (var i = 0; i < count; i++)
        {
            _p2mFrames[i] = ReadULong(data[(i * _w)..]);
        }

        _state = State.Body;
        return LegacyItemKind.P2mFrameList;
    }
}
