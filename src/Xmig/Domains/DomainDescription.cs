using System.Text.Json.Serialization;

namespace Xmig.Domains;

/// <summary>
/// <c>domain.json</c>: the small description of a simulated domain beside its memory file and state blobs.
/// Everything large (memory, bitmaps, blobs) lives in its own file so that <c>cmp</c> and friends work on it.
/// </summary>
internal sealed class DomainDescription
{
    public const string FormatName = "xmig-domain";
    public const int CurrentVersion = 1;

    public string? Format { get; set; }

    public int Version { get; set; }

    /// <summary><c>pv</c> or <c>hvm</c>.</summary>
    public string? Type { get; set; }

    /// <summary>Guest width in bits: 32 or 64 (always 64 for HVM).</summary>
    public int GuestWidth { get; set; }

    /// <summary>Frames covered by the p2m; the memory file is exactly <c>p2m_size × 4096</c> octets.</summary>
    public ulong P2mSize { get; set; }

    /// <summary>Frames holding page data (set bits of <c>populated.bitmap</c>).</summary>
    public ulong Pages { get; set; }

    /// <summary>Guest RAM asked for at creation (0 for a restored domain).</summary>
    public ulong MemoryBytes { get; set; }

    public ulong Seed { get; set; }

    /// <summary>Online vCPU ids, ascending.</summary>
    public List<int>? Vcpus { get; set; }

    public TscDescription? Tsc { get; set; }

    /// <summary>Non-zero HVM parameters, ascending index.</summary>
    public List<HvmParamDescription>? HvmParams { get; set; }

    public List<XenstoreDescription>? EmulatorXenstore { get; set; }
}

internal sealed class TscDescription
{
    public uint Mode { get; set; }

    public uint Khz { get; set; }

    public ulong Nsec { get; set; }

    public uint Incarnation { get; set; }
}

internal sealed class HvmParamDescription
{
    public uint Index { get; set; }

    public ulong Value { get; set; }
}

internal sealed class XenstoreDescription
{
    public string? Key { get; set; }

    public string? Value { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(DomainDescription))]
internal sealed partial class DomainJsonContext : JsonSerializerContext;
