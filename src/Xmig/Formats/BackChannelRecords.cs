using System.Buffers.Binary;
using System.Text;
using Xmig.Formats.Libxl;

namespace Xmig.Formats;

/// <summary>The record kinds of the replication back channel (secondary → primary).</summary>
internal enum BackChannelRecordKind
{
    /// <summary>libxl CHECKPOINT_STATE (type 5): COLO's control ids; with xmig's extension, the acknowledgement of a v2 checkpoint.</summary>
    CheckpointState,

    /// <summary>libxc CHECKPOINT_DIRTY_PFN_LIST (type 0xF): the pfns the secondary's guest dirtied (COLO).</summary>
    DirtyPfnList,

    /// <summary>xmig: the secondary accepts the epoch the primary offered.</summary>
    Hello,

    /// <summary>xmig: the secondary refuses the stream (a stale epoch), with its reason.</summary>
    Refuse,

    /// <summary>xmig: the acknowledgement of a legacy checkpoint.</summary>
    Ack,
}

/// <summary>
/// The records of the replication back channel, as octets (v2-stream.md §6.6): no stream header, each record the
/// common 8-octet header (u32 type, u32 body length, little-endian) and a body padded to a multiple of 8. Xen's
/// COLO records are CHECKPOINT_STATE and CHECKPOINT_DIRTY_PFN_LIST, told apart by the reader's protocol position;
/// xmig adds acknowledgements and the epoch handshake (README "Replication"), with types in the optional range.
/// </summary>
/// <remarks>
/// <code>
/// CHECKPOINT_STATE  type 5     body: u32 control id                                  (Xen: length 4, 4 padding)
///   xmig ack        type 5     body: u32 id = 2 SVM_READY | u32 epoch | u64 checkpoint | u32 flags | u32 0   (24)
/// DIRTY_PFN_LIST    type 0xF   body: u64 pfn × n                                     (length a multiple of 8)
/// XMIG_HELLO        0x80786D10 body: u32 version = 1 | u32 epoch | 16 octets lineage                       (24)
/// XMIG_REFUSE       0x80786D11 body: u32 epoch held | u32 0 | u64 checkpoint held | UTF-8 reason (≤ 1 KiB)
/// XMIG_ACK          0x80786D12 body: u32 epoch | u32 flags | u64 checkpoint                                 (16)
/// flags: bit 0 LAST — the checkpoint was the stream's last (END, LAST_CHECKPOINT): the handshake follows.
/// </code>
/// </remarks>
internal static class BackChannelRecords
{
    public const int HeaderSize = 8;

    public const uint CheckpointStateType = (uint)LibxlRecordType.CheckpointState;

    public const uint DirtyPfnListType = (uint)Libxc.RecordType.CheckpointDirtyPfnList;

    public const uint HelloType = 0x8078_6D10;

    public const uint RefuseType = 0x8078_6D11;

    public const uint AckType = 0x8078_6D12;

    public const uint HelloVersion = 1;

    public const uint LastFlag = 1;

    public const int ExtendedStateLength = 24;

    public const int HelloLength = 24;

    public const int AckLength = 16;

    public const int MaxReasonOctets = 1024;

    public static int Padded(int length) => (length + 7) & ~7;

    public static void WriteHeader(Span<byte> header, uint type, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)length);
    }

    /// <summary>A record: header, body and zero padding, in one array (they are small, and sent once each).</summary>
    public static byte[] Build(uint type, ReadOnlySpan<byte> body)
    {
        var record = new byte[HeaderSize + Padded(body.Length)];
        WriteHeader(record, type, body.Length);
        body.CopyTo(record.AsSpan(HeaderSize));
        return record;
    }

    /// <summary>CHECKPOINT_STATE as Xen writes it: length 4.</summary>
    public static byte[] CheckpointState(CheckpointStateId id)
    {
        Span<byte> body = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)id);
        return Build(CheckpointStateType, body);
    }

    /// <summary>The v2 acknowledgement: CHECKPOINT_STATE(SVM_READY) with xmig's epoch, checkpoint and flags after the id.</summary>
    public static byte[] StateAck(uint epoch, ulong checkpoint, bool last)
    {
        Span<byte> body = stackalloc byte[ExtendedStateLength];
        body.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)CheckpointStateId.CheckpointSvmReady);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], checkpoint);
        BinaryPrimitives.WriteUInt32LittleEndian(body[16..], last ? LastFlag : 0);
        return Build(CheckpointStateType, body);
    }

    /// <summary>The legacy acknowledgement.</summary>
    public static byte[] Ack(uint epoch, ulong checkpoint, bool last)
    {
        Span<byte> body = stackalloc byte[AckLength];
        BinaryPrimitives.WriteUInt32LittleEndian(body, epoch);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], last ? LastFlag : 0);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], checkpoint);
        return Build(AckType, body);
    }

    public static byte[] Hello(uint epoch, ReadOnlySpan<byte> lineage)
    {
        Span<byte> body = stackalloc byte[HelloLength];
        BinaryPrimitives.WriteUInt32LittleEndian(body, HelloVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], epoch);
        lineage[..16].CopyTo(body[8..]);
        return Build(HelloType, body);
    }

    public static byte[] Refuse(uint heldEpoch, ulong heldCheckpoint, string reason)
    {
        var text = Encoding.UTF8.GetBytes(reason);
        var body = new byte[16 + Math.Min(text.Length, MaxReasonOctets)];
        BinaryPrimitives.WriteUInt32LittleEndian(body, heldEpoch);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(8), heldCheckpoint);
        text.AsSpan(0, body.Length - 16).CopyTo(body.AsSpan(16));
        return Build(RefuseType, body);
    }

    public static byte[] DirtyPfnList(ReadOnlySpan<ulong> pfns)
    {
        var record = new byte[HeaderSize + (pfns.Length * 8)];
        WriteHeader(record, DirtyPfnListType, pfns.Length * 8);
        for (var i = 0; i < pfns.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(record.AsSpan(HeaderSize + (i * 8)), pfns[i]);
        }

        return record;
    }

    /// <summary>The largest body a record of <paramref name="type"/> may declare; null for a type the back channel does not carry.</summary>
    public static long? MaxLength(uint type, ulong p2mSize) => type switch
    {
        CheckpointStateType => ExtendedStateLength,
        DirtyPfnListType => (long)Math.Min(p2mSize, 1UL << 28) * 8,
        HelloType => HelloLength,
        RefuseType => 16 + MaxReasonOctets,
        AckType => AckLength,
        _ => null,
    };

    public static BackChannelRecordKind Kind(uint type) => type switch
    {
        CheckpointStateType => BackChannelRecordKind.CheckpointState,
        DirtyPfnListType => BackChannelRecordKind.DirtyPfnList,
        HelloType => BackChannelRecordKind.Hello,
        RefuseType => BackChannelRecordKind.Refuse,
        _ => BackChannelRecordKind.Ack,
    };

    public static string Name(uint type) => type switch
    {
        CheckpointStateType => "CHECKPOINT_STATE",
        DirtyPfnListType => "CHECKPOINT_DIRTY_PFN_LIST",
        HelloType => "XMIG_HELLO",
        RefuseType => "XMIG_REFUSE",
        AckType => "XMIG_ACK",
        _ => $"record type 0x{type:X8}",
    };
}
