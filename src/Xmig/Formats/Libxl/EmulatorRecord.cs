using System.Buffers.Binary;
using System.Text;

namespace Xmig.Formats.Libxl;

// v2-stream.md §4.3, §4.4: EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT bodies.
//
//  0             4       8
//  +-------------+-------+-------------------------------------------+
//  | emulator_id | index | data (xenstore: key NUL value NUL ...)    |
//  +-------------+-------+-------------------------------------------+

/// <summary>An EMULATOR_XENSTORE_DATA or EMULATOR_CONTEXT body in the read buffer (v2 spec §4.3).</summary>
public readonly ref struct EmulatorRecordView
{
    /// <summary>The emulator sub-header.</summary>
    public const int HeaderSize = 8;

    public EmulatorRecordView(ReadOnlySpan<byte> body)
    {
        EmulatorId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        Index = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        Data = body[HeaderSize..];
    }

    /// <summary>Raw <c>emulator_id</c> (see <see cref="Libxl.EmulatorId"/>).</summary>
    public uint EmulatorId { get; }

    public uint Index { get; }

    public ReadOnlySpan<byte> Data { get; }
}

/// <summary>The key/value block of EMULATOR_XENSTORE_DATA (v2 spec §4.4): <c>key NUL value NUL</c> pairs.</summary>
public static class XenstoreData
{
    /// <summary>Encodes pairs (ASCII) as the record's data block.</summary>
    public static byte[] Encode(IReadOnlyList<KeyValuePair<string, string>> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var size = 0;
        foreach (var (k, v) in pairs)
        {
            size += Encoding.ASCII.GetByteCount(k) + Encoding.ASCII.GetByteCount(v) + 2;
        }

        var data = new byte[size];
        var at = 0;
        foreach (var (k, v) in pairs)
        {
            at += Encoding.ASCII.GetBytes(k, data.AsSpan(at));
            data[at++] = 0;
            at += Encoding.ASCII.GetBytes(v, data.AsSpan(at));
            data[at++] = 0;
        }

        return data;
    }

    /// <summary>
    /// Decodes the data block, or returns null when it is malformed (not NUL-terminated, odd number of strings);
    /// <paramref name="problem"/> then says why.
    /// </summary>
    public static List<KeyValuePair<string, string>>? TryDecode(ReadOnlySpan<byte> data, out string? problem)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        problem = null;
        if (data.IsEmpty)
        {
            return pairs;
        }

        if (data[^1] != 0)
        {
            problem = "data is not NUL-terminated";
            return null;
        }

        var rest = data;
        while (!rest.IsEmpty)
        {
            var k = rest.IndexOf((byte)0);
            var key = Encoding.ASCII.GetString(rest[..k]);
            rest = rest[(k + 1)..];
            if (rest.IsEmpty)
            {
                problem = $"key '{key}' has no value";
                return null;
            }

            var v = rest.IndexOf((byte)0);
            var value = Encoding.ASCII.GetString(rest[..v]);
            rest = rest[(v + 1)..];
            pairs.Add(new(key, value));
        }

        return pairs;
    }
}
