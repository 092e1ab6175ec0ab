using Xmig.Formats.Libxc;

namespace Xmig.Verify;

/// <summary>Which layer a record belongs to.</summary>
public enum RecordLayer
{
    Libxc,
    Libxl,
}

/// <summary>How a decoded field value is best shown.</summary>
public enum FieldFormat
{
    Decimal,
    Hex,
}

/// <summary>One decoded field of a record: a constant name and a number.</summary>
public readonly record struct RecordField(string Name, ulong Value, FieldFormat Format);

/// <summary>
/// What the verifier saw of one record: where it is, what it is, and its decoded fields. One instance is reused
/// for every record (observers must copy what they keep), so nothing is allocated per record.
/// </summary>
public sealed class RecordInfo
{
    private readonly RecordField[] _fields = new RecordField[32];
    private readonly List<string> _detail = [];

    public RecordLayer Layer { get; internal set; }

    /// <summary>Index within its layer (0-based).</summary>
    public long Index { get; internal set; }

    /// <summary>Absolute offset of the record header.</summary>
    public long Offset { get; internal set; }

    public uint Type { get; internal set; }

    /// <summary>Spec name (<c>PAGE_DATA</c>, <c>libxl END</c>, <c>UNKNOWN_0x80000042</c>).</summary>
    public string Name { get; internal set; } = "";

    /// <summary>Body length (excluding padding).</summary>
    public uint Length { get; internal set; }

    /// <summary>The checkpoint this record belongs to (0 before the first libxc CHECKPOINT).</summary>
    public int Checkpoint { get; internal set; }

    /// <summary>True for an unknown record with bit 31 set (kept, reported as a warning).</summary>
    public bool IsUnknownOptional { get; internal set; }

    /// <summary>Number of valid entries in <see cref="Fields"/>.</summary>
    public int FieldCount { get; private set; }

    /// <summary>Decoded fields in display order.</summary>
    public ReadOnlySpan<RecordField> Fields => _fields.AsSpan(0, FieldCount);

    /// <summary>For PAGE_DATA: entries per page type nibble.</summary>
    public int[] PageTypeCounts { get; } = new int[16];

    /// <summary>Per-record detail lines, filled only when the observer asks for them (-v).</summary>
    public IReadOnlyList<string> Detail => _detail;

    internal void Reset(RecordLayer layer, long index, long offset, uint type, string name, uint length, int checkpoint)
    {
        Layer = layer;
        Index = index;
        Offset = offset;
        Type = type;
        Name = name;
        Length = length;
        Checkpoint = checkpoint;
        IsUnknownOptional = false;
        FieldCount = 0;
        _detail.Clear();
        if (layer == RecordLayer.Libxc && type == (uint)RecordType.PageData)
        {
            Array.Clear(PageTypeCounts);
        }
    }

    internal void Add(string name, ulong value, FieldFormat format = FieldFormat.Decimal)
    {
        if (FieldCount < _fields.Length)
        {
            _fields[FieldCount++] = new RecordField(name, value, format);
        }
    }

    internal void AddDetail(string line) => _detail.Add(line);
}

/// <summary>A finding that does not make the stream invalid (unknown optional record, empty context, ...).</summary>
public readonly record struct VerifyWarning(string What, long Index, long Offset, string Detail)
{
    public override string ToString() => Index >= 0
        ? FormattableString.Invariant($"{What} #{Index} at offset 0x{Offset:X}: {Detail}")
        : FormattableString.Invariant($"{What} at offset 0x{Offset:X}: {Detail}");
}
