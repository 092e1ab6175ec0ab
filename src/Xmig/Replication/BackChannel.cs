using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Xmig.Formats;
using Xmig.Formats.Libxl;
using Xmig.Transport;

namespace Xmig.Replication;

/// <summary>One record read from the back channel.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Offset">Where it began on the back channel (octets the primary had read from the secondary before it).</param>
internal sealed record BackChannelEvent(BackChannelRecordKind Kind, long Offset)
{
    /// <summary>CHECKPOINT_STATE's control id.</summary>
    public uint ControlId { get; init; }

    /// <summary>Acknowledgements and HELLO: the epoch; REFUSE: the epoch the secondary holds.</summary>
    public uint Epoch { get; init; }

    /// <summary>Acknowledgements: the checkpoint; REFUSE: the checkpoint the secondary holds.</summary>
    public ulong Checkpoint { get; init; }

    /// <summary>Acknowledgements: the stream's last checkpoint (the switchover handshake follows).</summary>
    public bool Last { get; init; }

    /// <summary>True for an acknowledgement (v2: CHECKPOINT_STATE SVM_READY with xmig's extension; legacy: XMIG_ACK).</summary>
    public bool IsAck { get; init; }

    public ulong[]? Pfns { get; init; }

    public byte[]? Lineage { get; init; }

    public string? Reason { get; init; }
}

/// <summary>Writes back-channel records (secondary side); one writer at a time, each record flushed whole.</summary>
internal sealed class BackChannelWriter(Stream output)
{
    private readonly Lock _lock = new();

    public long Written { get; private set; }

    public void Send(byte[] record)
    {
        lock (_lock)
        {
            output.Write(record);
            output.Flush();
            Written += record.Length;
        }
    }
}

/// <summary>
/// Reads back-channel records (primary side) as v2-stream.md §6.6 frames them, checking each declared length against
/// the bound for its type before reading the body, and the dirty pfns against the primary's p2m size.
/// </summary>
internal sealed class BackChannelReader(ChannelInputStream input, ulong p2mSize)
{
    private readonly byte[] _header = new byte[BackChannelRecords.HeaderSize];

    /// <summary>The next record; null when the secondary closed the channel at a record boundary.</summary>
    /// <exception cref="StreamFormatException">A record the back channel does not carry, or a bad one.</exception>
    /// <exception cref="IOException">The channel failed (reset), or a record was cut short.</exception>
    public BackChannelEvent? Read()
    {
        var offset = input.Consumed;
        var got = Fill(_header);
        if (got == 0)
        {
            return null;
        }

        if (got < _header.Length)
        {
            throw new EndOfStreamException(Invariant($"the secondary closed the back channel inside a record header at offset {offset}"));
        }

        var type = BinaryPrimitives.ReadUInt32LittleEndian(_header);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(4));
        var name = BackChannelRecords.Name(type);
        if (BackChannelRecords.MaxLength(type, p2mSize) is not { } max)
        {
            throw new StreamFormatException("back channel record", -1, offset, Invariant($"{name} is not a back-channel record (\"{XlMigrationChannel.Printable(_header)}\")"));
        }

        if (length > max)
        {
            throw new StreamFormatException(name, -1, offset, Invariant($"length {length} exceeds {max}"));
        }

        var padded = BackChannelRecords.Padded((int)length);
        var body = new byte[padded];
        if (Fill(body) < padded)
        {
            throw new EndOfStreamException(Invariant($"the secondary closed the back channel inside {name} at offset {offset}"));
        }

        var data = body.AsSpan(0, (int)length);
        return BackChannelRecords.Kind(type) switch
        {
            BackChannelRecordKind.CheckpointState => State(data, offset),
            BackChannelRecordKind.DirtyPfnList => Dirty(data, offset),
            BackChannelRecordKind.Hello => Hello(data, offset),
            BackChannelRecordKind.Refuse => Refuse(data, offset),
            _ => Ack(data, offset),
        };
    }

    private static BackChannelEvent State(ReadOnlySpan<byte> data, long offset)
    {
        // v2-stream.md §7 L8: the first 4 octets are the id; xmig's acknowledgement carries more after them.
        if (data.Length < 4)
        {
            throw new StreamFormatException("CHECKPOINT_STATE", -1, offset, Invariant($"length {data.Length} is shorter than the 4-octet control id"));
        }

        var id = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (id > (uint)CheckpointStateId.CheckpointSvmResumed)
        {
            throw new StreamFormatException("CHECKPOINT_STATE", -1, offset, Invariant($"control id {id} is not one of 0-3"));
        }

        if (data.Length < BackChannelRecords.ExtendedStateLength)
        {
            return new BackChannelEvent(BackChannelRecordKind.CheckpointState, offset) { ControlId = id };
        }

        return new BackChannelEvent(BackChannelRecordKind.CheckpointState, offset)
        {
            ControlId = id,
            IsAck = id == (uint)CheckpointStateId.CheckpointSvmReady,
            Epoch = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]),
            Checkpoint = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]),
            Last = (BinaryPrimitives.ReadUInt32LittleEndian(data[16..]) & BackChannelRecords.LastFlag) != 0,
        };
    }

    // v2-stream.md §6.6: length a multiple of 8, every pfn below the primary's p2m size.
    private BackChannelEvent Dirty(ReadOnlySpan<byte> data, long offset)
    {
        if (data.Length % 8 != 0)
        {
            throw new StreamFormatException("CHECKPOINT_DIRTY_PFN_LIST", -1, offset, Invariant($"length {data.Length} is not a multiple of 8"));
        }

        var pfns = new ulong[data.Length / 8];
        for (var i = 0; i < pfns.Length; i++)
        {
            pfns[i] = BinaryPrimitives.ReadUInt64LittleEndian(data[(i * 8)..]);
            if (pfns[i] >= p2mSize)
            {
                throw new StreamFormatException("CHECKPOINT_DIRTY_PFN_LIST", -1, offset + 8 + (i * 8), Invariant($"pfn 0x{pfns[i]:X} is beyond the primary's p2m size 0x{p2mSize:X}"));
            }
        }

        return new BackChannelEvent(BackChannelRecordKind.DirtyPfnList, offset) { Pfns = pfns };
    }

    private static BackChannelEvent Hello(ReadOnlySpan<byte> data, long offset)
    {
        if (data.Length != BackChannelRecords.HelloLength || BinaryPrimitives.ReadUInt32LittleEndian(data) != BackChannelRecords.HelloVersion)
        {
            throw new StreamFormatException("XMIG_HELLO", -1, offset, Invariant($"length {data.Length} or version is not xmig's replication version {BackChannelRecords.HelloVersion}"));
        }

        return new BackChannelEvent(BackChannelRecordKind.Hello, offset)
        {
            Epoch = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]),
            Lineage = data.Slice(8, 16).ToArray(),
        };
    }

    private static BackChannelEvent Refuse(ReadOnlySpan<byte> data, long offset)
    {
        if (data.Length < 16)
        {
            throw new StreamFormatException("XMIG_REFUSE", -1, offset, Invariant($"length {data.Length} is shorter than 16"));
        }

        var reason = new StringBuilder();
        foreach (var c in Encoding.UTF8.GetString(data[16..]))
        {
            reason.Append(char.IsControl(c) ? ' ' : c);
        }

        return new BackChannelEvent(BackChannelRecordKind.Refuse, offset)
        {
            Epoch = BinaryPrimitives.ReadUInt32LittleEndian(data),
            Checkpoint = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]),
            Reason = reason.ToString(),
        };
    }

    private static BackChannelEvent Ack(ReadOnlySpan<byte> data, long offset)
    {
        if (data.Length != BackChannelRecords.AckLength)
        {
            throw new StreamFormatException("XMIG_ACK", -1, offset, Invariant($"length {data.Length}, expected {BackChannelRecords.AckLength}"));
        }

        return new BackChannelEvent(BackChannelRecordKind.Ack, offset)
        {
            IsAck = true,
            Epoch = BinaryPrimitives.ReadUInt32LittleEndian(data),
            Last = (BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) & BackChannelRecords.LastFlag) != 0,
            Checkpoint = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]),
        };
    }

    private int Fill(Span<byte> destination)
    {
        var total = 0;
        while (total < destination.Length)
        {
            var n = input.Read(destination[total..]);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
