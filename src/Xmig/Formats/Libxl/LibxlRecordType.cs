namespace Xmig.Formats.Libxl;

/// <summary>libxl record types (v2 spec §4.2). Bit 31 marks an optional record.</summary>
public enum LibxlRecordType : uint
{
    End = 0,
    LibxcContext = 1,
    EmulatorXenstoreData = 2,
    EmulatorContext = 3,
    CheckpointEnd = 4,
    CheckpointState = 5,
}

/// <summary>Names of libxl record types.</summary>
public static class LibxlRecordTypes
{
    /// <summary>The highest type defined.</summary>
    public const uint MaxDefined = (uint)LibxlRecordType.CheckpointState;

    private static readonly string[] Names =
    [
        "libxl END", "LIBXC_CONTEXT", "EMULATOR_XENSTORE_DATA", "EMULATOR_CONTEXT", "CHECKPOINT_END", "CHECKPOINT_STATE",
    ];

    public static bool IsDefined(uint type) => type <= MaxDefined;

    /// <summary>The spec name; END reads <c>libxl END</c> to tell it from the libxc one.</summary>
    public static string Name(uint type) => type <= MaxDefined ? Names[type] : $"libxl UNKNOWN_0x{type:X8}";

    public static string Name(LibxlRecordType type) => Name((uint)type);
}

/// <summary>Emulator sub-header <c>emulator_id</c> (v2 spec §4.3).</summary>
public enum EmulatorId : uint
{
    /// <summary>Unknown (legacy-converted streams).</summary>
    Unknown = 0,

    /// <summary>QEMU traditional (support dropped in Xen 4.21; id kept).</summary>
    QemuTraditional = 1,

    /// <summary>QEMU upstream.</summary>
    QemuUpstream = 2,
}

/// <summary>CHECKPOINT_STATE control ids (v2 spec §4.4).</summary>
public enum CheckpointStateId : uint
{
    CheckpointNew = 0,
    CheckpointSvmSuspended = 1,
    CheckpointSvmReady = 2,
    CheckpointSvmResumed = 3,
}
