using Xmig.Conversion;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Formats.Xl;
using Xmig.Inspect;
using Xmig.Restore;
using Xmig.Restore.Legacy;
using Xmig.Verify;

namespace Xmig.Fuzz;

/// <summary>How one input ended in a target that did not crash.</summary>
internal enum FuzzOutcome
{
    /// <summary>Read to the end without complaint.</summary>
    Accepted,

    /// <summary>Rejected with the project's stream exception (one line naming record and offset).</summary>
    Rejected,

    /// <summary>Legacy content the engine cannot carry (TMEM), refused by design.</summary>
    Unsupported,
}

/// <summary>A target saw something that is a bug even though no exception escaped the library.</summary>
internal sealed class FuzzFindingException(string message) : Exception(message);

/// <summary>
/// The fuzz targets. Each takes the whole input, calls the library through one or two entry points, and either
/// returns an <see cref="FuzzOutcome"/> or lets something else escape: any other exception, an assertion, a hang
/// (afl <c>-t</c>) or an allocation past the GC heap limit (<c>DOTNET_GCHeapHardLimit</c>) is a finding.
/// </summary>
/// <remarks>
/// Where a target has modes (checkpoint mode, output format), the first input octet chooses them and the stream is
/// the rest; the corpus files of those targets carry that octet.
/// </remarks>
internal static class FuzzTargets
{
    /// <summary>Guest memory bound for restore: small, so a hostile p2m size is refused rather than honoured.</summary>
    private const ulong MaxGuestBytes = 64UL << 20;

    /// <summary>Bound on a buffered (uncommitted) checkpoint, small enough that the limit itself is reachable.</summary>
    private const long MaxSpool = 8L << 20;

    // One spool directory per thread: the replay tests run targets on several threads at once.
    [ThreadStatic]
    private static string? _scratch;

    public static IReadOnlyDictionary<string, Func<byte[], FuzzOutcome>> All { get; } = new Dictionary<string, Func<byte[], FuzzOutcome>>
    {
        ["legacy"] = Legacy,
        ["libxc"] = Libxc,
        ["libxl"] = Libxl,
        ["xl"] = Xl,
        ["v2"] = V2,
        ["convert"] = Convert,
        ["restore"] = Restore,
        ["diff"] = Differential.Run,
    };

    /// <summary>Targets whose first octet selects a mode rather than being stream data.</summary>
    public static bool HasModeOctet(string target) => target is "legacy" or "convert" or "restore";

    /// <summary>Runs <paramref name="target"/> on <paramref name="data"/> and checks that nothing was left behind.</summary>
    public static FuzzOutcome Run(string target, byte[] data)
    {
        var outcome = All[target](data);
        if (Directory.EnumerateFileSystemEntries(ScratchDirectory).Any())
        {
            var left = string.Join(", ", Directory.EnumerateFileSystemEntries(ScratchDirectory).Select(Path.GetFileName));
            foreach (var f in Directory.EnumerateFiles(ScratchDirectory))
            {
                File.Delete(f);
            }

            throw new FuzzFindingException($"{target}: left behind in the spool directory: {left}");
        }

        return outcome;
    }

    /// <summary>The spool directory, empty between inputs (on tmpfs when there is one).</summary>
    public static string ScratchDirectory => _scratch ??= CreateScratch();

    // ---- legacy reader + THE checkpoint decision ----

    // octet 0: bits 0-1 checkpoint mode (0 no, 1 yes, else auto); bits 2-3 device-model handling (0 by guest type,
    // 1 required, 2 if present, 3 leave); bit 4 report TMEM instead of refusing it; bit 5 also run the inspector.
    private static FuzzOutcome Legacy(byte[] data)
    {
        if (data.Length == 0)
        {
            return FuzzOutcome.Rejected;
        }

        var mode = data[0];
        var stream = new MemoryStream(data, 1, data.Length - 1, writable: false);
        return Guard(() =>
        {
            using var input = new InputBuffer(stream, 1 << 16);
            var detected = LegacyDetection.Detect(input.Peek(LegacyDetection.ProbeLength), input.Position, null, null);
            var dm = ((mode >> 2) & 3) switch
            {
                1 => LegacyDeviceModelHandling.Required,
                2 => LegacyDeviceModelHandling.IfPresent,
                3 => LegacyDeviceModelHandling.Leave,
                _ => detected.Guest == GuestType.Hvm ? LegacyDeviceModelHandling.Required : LegacyDeviceModelHandling.Leave,
            };
            var reader = new LegacyStreamReader(input, new LegacyStreamOptions(detected.Width, detected.Guest) { DeviceModel = dm });
            var sink = new LegacyMemorySink();
            LegacyCheckpointDecision.Run(reader, sink, new LegacyCheckpointDecisionOptions
            {
                Mode = CheckpointMode(mode),
                Heartbeat = null,
                SpoolDirectory = ScratchDirectory,
                MaxBufferedCheckpointBytes = MaxSpool,
                RefuseTmem = (mode & 0x10) == 0,
            });
            if ((mode & 0x20) != 0)
            {
                using var again = new InputBuffer(new MemoryStream(data, 1, data.Length - 1, writable: false), 1 << 16);
                LegacyInspector.Inspect(again, new LegacyInspectOptions { Mode = CheckpointMode(mode), ListItems = true });
            }
        });
    }

    // ---- v2 readers ----

    private static FuzzOutcome Libxc(byte[] data) => Guard(() => Walk(data, StreamKind.Libxc));

    private static FuzzOutcome Libxl(byte[] data) => Guard(() => Walk(data, StreamKind.Libxl));

    // The xl header and its config block, by both readers of it (v2 and legacy), and the config's round trip.
    private static FuzzOutcome Xl(byte[] data) => Guard(() =>
    {
        try
        {
            using var legacyInput = new InputBuffer(new MemoryStream(data, writable: false), 1 << 16);
            XlHeader.ReadLegacy(legacyInput, out _);
        }
        catch (StreamFormatException)
        {
            // The v2 reader below decides the outcome.
        }

        using var input = new InputBuffer(new MemoryStream(data, writable: false), 1 << 16);
        XlHeader.ReadFrom(input, out var optional);
        if (XlHeader.TryGetConfig(optional, out var config))
        {
            var block = XlHeader.BuildConfigBlock(config);
            if (!XlHeader.TryGetConfig(block, out var again) || !again.SequenceEqual(config))
            {
                throw new FuzzFindingException("xl config block does not round-trip");
            }
        }
    });

    // The whole v2 walker (any kind, detected) and verify.
    private static FuzzOutcome V2(byte[] data)
    {
        var result = StreamVerifier.Verify(new MemoryStream(data, writable: false));
        var walked = Guard(() => Walk(data, StreamKind.Unknown));
        return result.Error is null && walked == FuzzOutcome.Accepted ? FuzzOutcome.Accepted : FuzzOutcome.Rejected;
    }

    // ---- engines ----

    // octet 0: bits 0-1 checkpoint mode; bit 2 libxl output; bit 3 xl header expected; bit 4 --skip-qemu.
    private static FuzzOutcome Convert(byte[] data)
    {
        if (data.Length == 0)
        {
            return FuzzOutcome.Rejected;
        }

        var mode = data[0];
        return Guard(() => LegacyToV2Converter.Convert(
            new MemoryStream(data, 1, data.Length - 1, writable: false),
            Stream.Null,
            ConvertOptions(mode)));
    }

    internal static LegacyConvertOptions ConvertOptions(byte mode) => new()
    {
        Mode = CheckpointMode(mode),
        Format = (mode & 4) != 0 ? V2OutputFormat.Libxl : V2OutputFormat.Libxc,
        Xl = (mode & 8) != 0,
        SkipQemu = (mode & 0x10) != 0,
        TempDirectory = ScratchDirectory,
    };

    // octet 0: bits 0-1 checkpoint mode.
    private static FuzzOutcome Restore(byte[] data)
    {
        if (data.Length == 0)
        {
            return FuzzOutcome.Rejected;
        }

        var mode = data[0];
        return RestoreBytes(new MemoryStream(data, 1, data.Length - 1, writable: false), RestoreMode(mode), out _);
    }

    /// <summary>Restores <paramref name="input"/> into an <see cref="InMemoryDomain"/>.</summary>
    internal static FuzzOutcome RestoreBytes(Stream input, CheckpointedMode mode, out StreamFormatException? error, ulong maxGuestBytes = MaxGuestBytes) =>
        RestoreBytes(input, mode, out error, out _, maxGuestBytes);

    /// <summary>As above, also giving the result of a restore that completed.</summary>
    internal static FuzzOutcome RestoreBytes(Stream input, CheckpointedMode mode, out StreamFormatException? error, out RestoreResult? result, ulong maxGuestBytes = MaxGuestBytes)
    {
        StreamFormatException? caught = null;
        RestoreResult? restored = null;
        var outcome = Guard(
            () =>
            {
                var engine = new RestoreEngine(
                    (type, width, maxP2m) => new InMemoryDomain(type, width, maxP2m),
                    new RestoreOptions
                    {
                        Checkpointed = mode,
                        MaxGuestPhysicalBytes = maxGuestBytes,
                        SpoolDirectory = ScratchDirectory,
                        MaxBufferedCheckpointBytes = MaxSpool,
                        Heartbeat = null,
                    });
                try
                {
                    restored = engine.Run(input);
                }
                finally
                {
                    engine.Domain?.Dispose();
                }
            },
            e => caught = e);
        error = caught;
        result = restored;
        return outcome;
    }

    private static CheckpointedMode CheckpointMode(byte mode) => (mode & 3) switch
    {
        0 => CheckpointedMode.No,
        1 => CheckpointedMode.Yes,
        _ => CheckpointedMode.Auto,
    };

    private static CheckpointedMode RestoreMode(byte mode) => (mode & 3) switch
    {
        0 => CheckpointedMode.No,
        1 => CheckpointedMode.Yes,
        _ => CheckpointedMode.Auto,
    };

    /// <summary>Runs <paramref name="action"/>; the stream exception (and refused legacy content) is a clean outcome.</summary>
    private static FuzzOutcome Guard(Action action, Action<StreamFormatException>? rejected = null)
    {
        try
        {
            action();
            return FuzzOutcome.Accepted;
        }
        catch (StreamFormatException e)
        {
            rejected?.Invoke(e);
            return FuzzOutcome.Rejected;
        }
        catch (LegacyUnsupportedContentException)
        {
            return FuzzOutcome.Unsupported;
        }
        catch (NotSupportedException e) when (e.InnerException is LegacyUnsupportedContentException)
        {
            // Restore's wrapping of the same refusal.
            return FuzzOutcome.Unsupported;
        }
    }

    /// <summary>Walks a v2 stream item by item, decoding every record body the readers have a view for.</summary>
    internal static void Walk(byte[] data, StreamKind kind)
    {
        using var input = new InputBuffer(new MemoryStream(data, writable: false), 1 << 16);
        var walker = new V2StreamReader(input, kind == StreamKind.Unknown ? StreamDetector.Detect(input) : kind);
        while (walker.Read())
        {
            if (walker.Item == V2Item.LibxcRecord)
            {
                var r = walker.Libxc!;
                _ = r.Type switch
                {
                    RecordType.PageData => r.ReadPageData().Count,
                    RecordType.X86PvInfo => r.ReadX86PvInfo().GuestWidth,
                    RecordType.X86TscInfo => r.ReadX86TscInfo().Mode,
                    RecordType.HvmParams => r.ReadHvmParams().Count,
                    RecordType.X86PvP2mFrames => (uint)r.ReadX86PvP2mFrames().FrameCount,
                    RecordType.X86PvVcpuBasic or RecordType.X86PvVcpuExtended or RecordType.X86PvVcpuXsave or RecordType.X86PvVcpuMsrs
                        => r.ReadX86PvVcpu().VcpuId,
                    _ => (uint)r.ReadBody().Length,
                };
            }
            else if (walker.Item == V2Item.LibxlRecord)
            {
                var l = walker.Libxl!;
                _ = l.Type switch
                {
                    LibxlRecordType.EmulatorContext or LibxlRecordType.EmulatorXenstoreData => l.ReadEmulatorRecord().EmulatorId,
                    LibxlRecordType.CheckpointState => l.ReadCheckpointState(),
                    _ => 0u,
                };
            }
        }
    }

    private static string CreateScratch()
    {
        // fuzz/run.sh names a directory per campaign and removes it afterwards (afl kills the target, so
        // ProcessExit does not always run).
        var root = Environment.GetEnvironmentVariable("XMIG_FUZZ_SCRATCH") is { Length: > 0 } given
            ? given
            : Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        var dir = Path.Combine(root, $"xmig-fuzz-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return dir;
    }
}
