using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §3.5.5: X86_PV_VCPU_{BASIC,EXTENDED,XSAVE,MSRS}.
//
//  0         4          8
//  +---------+----------+------------------+
//  | vcpu_id | reserved | context (opaque) |
//  +---------+----------+------------------+

/// <summary>An X86_PV_VCPU_* body in the read buffer (v2 spec §3.5.5).</summary>
public readonly ref struct X86PvVcpuView
{
    public const int HeaderSize = 8;

    /// <summary>BASIC context size of a 64-bit guest.</summary>
    public const int BasicContextSize64 = 5168;

    /// <summary>BASIC context size of a 32-bit guest.</summary>
    public const int BasicContextSize32 = 2800;

    /// <summary>EXTENDED context limit.</summary>
    public const int ExtendedContextMax = 128;

    /// <summary>XSAVE context minimum.</summary>
    public const int XsaveContextMin = 16;

    public X86PvVcpuView(ReadOnlySpan<byte> body)
    {
        VcpuId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        Reserved = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        Context = body[HeaderSize..];
    }

    public uint VcpuId { get; }

    public uint Reserved { get; }

    public ReadOnlySpan<byte> Context { get; }
}
