using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;

namespace Xmig.Tests.Formats.Libxl;

public class LibxlRoundTripTests
{
    [Fact]
    public void StreamHeader_WritesSpecBytes()
    {
        Span<byte> b = stackalloc byte[StreamHeader.Size];
        StreamHeader.Create().Write(b);
        Assert.Equal(Convert.FromHexString("4C6962786C466D740000000200000000"), b.ToArray());
        StreamHeader.Create(legacy: true).Write(b);
        Assert.True(StreamHeader.Read(b).IsLegacy);
    }

    [Fact]
    public void AllRecordTypes_RoundTrip_WithEmbeddedLibxc()
    {
        var pairs = XenstoreData.Encode([new("physmap/1/name", "vga"), new("physmap/1/size", "800000")]);
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            var w = new LibxlWriter(output);
            w.WriteHeader();
            var x = w.BeginLibxcContext();
            x.WriteImageHeader();
            x.WriteDomainHeader(DomainHeader.Create(GuestType.Hvm, 4, 22));
            x.WriteStaticDataEnd();
            x.WriteCheckpoint();
            w.WriteEmulatorXenstoreData((uint)EmulatorId.QemuUpstream, 0, pairs);
            w.WriteEmulatorContext((uint)EmulatorId.QemuUpstream, 1, [1, 2, 3, 4, 5]);
            w.WriteCheckpointEnd();
            w.WriteCheckpointState((uint)CheckpointStateId.CheckpointNew);
            x.WriteEnd();
            w.WriteEnd();
            output.Flush();
        }

        var data = ms.ToArray();
        using var input = new InputBuffer(new MemoryStream(data));
        var walker = new V2StreamReader(input);
        Assert.Equal(StreamKind.Libxl, walker.Kind);
        var seen = new List<string>();
        while (walker.Read())
        {
            switch (walker.Item)
            {
                case V2Item.LibxlRecord:
                    var l = walker.Libxl!;
                    seen.Add(l.RecordName(l.Header.Type));
                    if (l.Type == LibxlRecordType.EmulatorXenstoreData)
                    {
                        var v = l.ReadEmulatorRecord();
                        Assert.Equal((uint)EmulatorId.QemuUpstream, v.EmulatorId);
                        var decoded = XenstoreData.TryDecode(v.Data, out var problem);
                        Assert.Null(problem);
                        Assert.Equal("800000", decoded![1].Value);
                    }
                    else if (l.Type == LibxlRecordType.EmulatorContext)
                    {
                        var v = l.ReadEmulatorRecord();
                        Assert.Equal(1u, v.Index);
                        Assert.Equal(5, v.Data.Length);
                    }
                    else if (l.Type == LibxlRecordType.CheckpointState)
                    {
                        Assert.Equal(4u, l.Header.Length);
                        Assert.Equal(0u, l.ReadCheckpointState());
                    }

                    break;
                case V2Item.LibxcRecord:
                    seen.Add(walker.Libxc!.RecordName(walker.Libxc.Header.Type));
                    break;
                default:
                    seen.Add(walker.Item.ToString());
                    break;
            }
        }

        Assert.Equal(
            ["LibxlHeader", "LIBXC_CONTEXT", "LibxcImageHeader", "LibxcDomainHeader", "STATIC_DATA_END", "CHECKPOINT",
                "EMULATOR_XENSTORE_DATA", "EMULATOR_CONTEXT", "CHECKPOINT_END", "CHECKPOINT_STATE", "END", "libxl END"],
            seen);
        Assert.Equal(1, walker.Checkpoints);
        Assert.Equal(data, StreamRewriter.Rewrite(new MemoryStream(data)));
    }

    [Fact]
    public void CheckpointState_IsSixteenOctetsOnWire()
    {
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            new LibxlWriter(output).WriteCheckpointState(2);
            output.Flush();
        }

        Assert.Equal(Convert.FromHexString("05000000040000000200000000000000"), ms.ToArray());
    }
}
