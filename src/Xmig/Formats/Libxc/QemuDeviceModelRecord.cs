using System.Buffers.Binary;

namespace Xmig.Formats.Libxc;

// v2-stream.md §9.1: the raw QEMU record that follows a bare libxc HVM stream converted with -f libxc.
//
//  0                       21          25
//  +-----------------------+-----------+-------------+
//  | "DeviceModelRecord0002"| u32 length| data[length]|
//  +-----------------------+-----------+-------------+

/// <summary>The QEMU record that a bare libxc HVM stream may carry after its END (v2 spec §9.1).</summary>
public static class QemuDeviceModelRecord
{
    /// <summary>The 21-octet signature.</summary>
    public static ReadOnlySpan<byte> Signature => "DeviceModelRecord0002"u8;

    /// <summary>Signature plus the u32 length.</summary>
    public const int HeaderSize = 25;

    /// <summary>True if <paramref name="head"/> starts with the signature and a length; gives the data length.</summary>
    public static bool TryParse(ReadOnlySpan<byte> head, out uint length)
    {
        if (head.Length >= HeaderSize && head.StartsWith(Signature))
        {
            length = BinaryPrimitives.ReadUInt32LittleEndian(head[21..]);
            return true;
        }

        length = 0;
        return false;
    }

    /// <summary>Writes signature and length (the data follows).</summary>
    public static void WriteHeader(OutputBuffer output, uint length)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.Write(Signature);
        output.WriteUInt32LittleEndian(length);
    }
}
