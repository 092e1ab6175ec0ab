using System.Buffers.Binary;

namespace Xmig.Tests.Formats.Legacy;

/// <summary>Builds legacy octets by hand, for malformed streams.</summary>
internal sealed class RawLegacy(int width = 8)
{
    private readonly List<byte> _b = [];

    public int Length => _b.Count;

    public RawLegacy ULong(ulong v)
    {
        if (width == 8)
        {
            return U64(v);
        }

        return U32((uint)v);
    }

    public RawLegacy U32(uint v)
    {
        Span<byte> s = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(s, v);
        _b.AddRange(s.ToArray());
        return this;
    }

    public RawLegacy I32(int v) => U32((uint)v);

    public RawLegacy U64(ulong v)
    {
        Span<byte> s = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(s, v);
        _b.AddRange(s.ToArray());
        return this;
    }

    public RawLegacy Bytes(ReadOnlySpan<byte> b)
    {
        _b.AddRange(b.ToArray());
        return this;
    }

    public RawLegacy Zeros(int n) => Bytes(new byte[n]);

    /// <summary>A PV header for a 64-bit guest: p2m_size, ext info (vcpu, extv), frame list.</summary>
    public RawLegacy PvHeader(ulong p2m = 16)
    {
        ULong(p2m).ULong(width == 8 ? ulong.MaxValue : uint.MaxValue).U32(8 + 0x1430 + 8);
        U32(0x75706376).U32(0x1430).Zeros(0x1430);
        U32(0x76747865).U32(0);
        for (ulong i = 0; i < (p2m + 511) / 512; i++)
        {
            ULong(i);
        }

        return this;
    }

    public RawLegacy VcpuInfo(int max = 0, ulong map = 1) => I32(-2).I32(max).U64(map);

    public RawLegacy Batch(params uint[] entries)
    {
        I32(entries.Length);
        foreach (var e in entries)
        {
            ULong(e);
        }

        foreach (var e in entries)
        {
            if ((e >> 28) < 0xD)
            {
                Zeros(4096);
            }
        }

        return this;
    }

    /// <summary>PV tail for one vCPU with extv.</summary>
    public RawLegacy PvTail() => U32(0).Zeros(0x1430 + 128).Zeros(4096);

    public RawLegacy HvmTail(int context = 16) => U64(1).U64(2).U64(3).U32((uint)context).Zeros(context)
        .Bytes("DeviceModelRecord0002"u8).U32(4).Bytes("QEVM"u8);

    public byte[] ToArray() => [.. _b];
}
