using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Inspect;
using Xmig.Samples;
using Xmig.Verify;

namespace Xmig.Tests.Verify;

public class ArbitraryInputProperties
{
    private static readonly byte[][] Prefixes = BuildPrefixes();

    [Property(MaxTest = 300)]
    public void ArbitraryBytes_RaiseOnlyStreamFormatException(byte[] data) => ReadEverything(data);

    [Property(MaxTest = 300)]
    public void ValidHeadersThenArbitraryBytes_RaiseOnlyStreamFormatException(NonNegativeInt prefix, byte[] tail)
    {
        var head = Prefixes[prefix.Get % Prefixes.Length];
        ReadEverything([.. head, .. tail]);
    }

    [Property(MaxTest = 200)]
    public Property MutatedValidStream_RaisesOnlyStreamFormatException() =>
        Prop.ForAll(
            Arb.From(Gen.Choose(0, int.MaxValue)),
            Arb.From(Gen.Choose(1, 8)),
            (seed, mutations) =>
            {
                var random = new Random(seed);
                var sample = Samples[random.Next(Samples.Length)];
                var data = (byte[])sample.Clone();
                for (var i = 0; i < mutations; i++)
                {
                    // Favour the structure (first octets of records) over page contents.
                    var at = random.Next(4) == 0 ? random.Next(data.Length) : random.Next(Math.Min(data.Length, 512));
                    data[at] = (byte)random.Next(256);
                }

                if (random.Next(4) == 0)
                {
                    data = data[..random.Next(data.Length)];
                }

                ReadEverything(data);
            });

    private static readonly byte[][] Samples =
    [
        SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxc, Guest = GuestType.Pv, Pages = 2, Vcpus = 1 }),
        SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 2, Checkpoints = 2, Colo = true }),
        SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Guest = GuestType.Hvm, Pages = 2 }),
    ];

    /// <summary>Reads <paramref name="data"/> every way the library offers; only <see cref="StreamFormatException"/> may escape.</summary>
    internal static void ReadEverything(byte[] data)
    {
        foreach (var format in new[] { StreamFormat.Auto, StreamFormat.Xl, StreamFormat.Libxl, StreamFormat.Libxc })
        {
            StreamVerifier.Verify(new MemoryStream(data), format);
            StreamInspector.Inspect(new MemoryStream(data), format, TextWriter.Null, new InspectOptions { Verbose = true });
            StreamInspector.Inspect(new MemoryStream(data), format, TextWriter.Null, new InspectOptions { Json = true });
        }

        foreach (var kind in new[] { StreamKind.Unknown, StreamKind.Xl, StreamKind.Libxl, StreamKind.Libxc })
        {
            try
            {
                Walk(data, kind);
            }
            catch (StreamFormatException)
            {
            }
        }
    }

    private static void Walk(byte[] data, StreamKind kind)
    {
        using var input = new InputBuffer(new MemoryStream(data));
        var walker = new V2StreamReader(input, kind);
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
                    RecordType.X86PvVcpuBasic => r.ReadX86PvVcpu().VcpuId,
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

    private static byte[][] BuildPrefixes()
    {
        var xc = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxc, Pages = 1 });
        var xl = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Pages = 1 });
        var xlFile = SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Xl, Pages = 1 });
        return [xc[..40], xl[..64], xlFile[..(48 + 52 + 16 + 8)], xlFile[..48]];
    }
}
