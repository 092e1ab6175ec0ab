using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Tests.Formats.Legacy;

/// <summary>Writes legacy images with <see cref="LegacyStreamWriter"/> for tests, and knows the memory they should restore to.</summary>
internal sealed record LegacyImageBuilder
{
    public int Width { get; init; } = 8;

    public GuestType Guest { get; init; } = GuestType.Pv;

    /// <summary>PV guest width 4 or 8.</summary>
    public int GuestWidth { get; init; } = 8;

    public LegacyWriterGeneration Generation { get; init; } = LegacyWriterGeneration.Legacy41;

    public int Checkpoints { get; init; } = 1;

    public bool Compress { get; init; }

    /// <summary>Delta-encode against first-checkpoint pages too (Xen's sender does not).</summary>
    public bool CacheFirstCheckpoint { get; init; } = true;

    public uint P2mSize { get; init; } = 300;

    public int Pages { get; init; } = 40;

    /// <summary>Pages dirtied per later checkpoint.</summary>
    public int DirtyPages { get; init; } = 9;

    public bool Extv { get; init; } = true;

    public uint Xcnt { get; init; }

    public int Vcpus { get; init; } = 2;

    public LegacyDeviceModelSignature DeviceModel { get; init; } = LegacyDeviceModelSignature.DeviceModelRecord0002;

    /// <summary>HVM: write the DM record (false: the toolstack writes it outside, or nothing).</summary>
    public bool WriteDeviceModel { get; init; } = true;

    public byte[]? Toolstack { get; init; }

    public byte[] Trailer { get; init; } = [];

    public bool PageTables { get; init; }

    public bool Specials { get; init; } = true;

    /// <summary>Expected memory after each checkpoint (index 0 = checkpoint 1).</summary>
    public List<SortedDictionary<uint, byte[]>> Expected { get; } = [];

    public byte[] Build()
    {
        Expected.Clear();
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            using var w = new LegacyStreamWriter(output, new LegacyWriterOptions(Width, Guest)
            {
                Generation = Generation,
                Checkpointed = Checkpoints > 1,
                Compress = Compress,
                CacheFirstCheckpoint = CacheFirstCheckpoint,
                CompressionCachePages = 64,
                CompressionStagingLength = 3 * 4096,
            });
            var ctxSize = GuestWidth == 4 ? LegacyStreamReader.VcpuContextSize32 : LegacyStreamReader.VcpuContextSize64;
            if (Guest == GuestType.Pv)
            {
                var fpp = 4096u / (uint)GuestWidth;
                var frames = new ulong[(P2mSize + fpp - 1) / fpp];
                for (var i = 0; i < frames.Length; i++)
                {
                    frames[i] = (ulong)(P2mSize - 1 - i);
                }

                w.WritePvHeader(P2mSize, LegacyTestStreams.Bytes(ctxSize, 1), Extv, Xcnt, frames);
            }
            else
            {
                w.WriteHvmHeader(P2mSize);
            }

            var memory = new SortedDictionary<uint, byte[]>();
            for (var cp = 1; cp <= Checkpoints; cp++)
            {
                if (cp > 1)
                {
                    w.BeginNextCheckpoint();
                }

                if (cp == 1 && Specials)
                {
                    w.WriteTscInfo(new LegacyTscInfo(1, 123456789, 2_400_000, 7));
                }

                var pfns = cp == 1
                    ? Enumerable.Range(0, Pages).Select(i => (uint)(i * 7 % P2mSize)).Distinct().Order().ToArray()
                    : Enumerable.Range(0, DirtyPages).Select(i => (uint)((i * 13 + cp * 5) % Pages * 7 % P2mSize)).Distinct().Order().ToArray();
                var n = 0;
                foreach (var pfn in pfns)
                {
                    var type = PageTables && Guest == GuestType.Pv && pfn % 5 == 1 ? LegacyPageType.PinnedL1Tab : LegacyPageType.NoTab;
                    byte[] page;
                    if (cp > 1 && memory.TryGetValue(pfn, out var old) && pfn % 2 == 0)
                    {
                        // A small change, so that deltas have skip runs.
                        page = (byte[])old.Clone();
                        page[100 + cp] ^= 0x5A;
                        page[4000] = (byte)cp;
                    }
                    else if (cp > 1 && pfn % 3 == 0 && memory.TryGetValue(pfn, out var same))
                    {
                        page = same;
                    }
                    else
                    {
                        page = LegacyTestStreams.Page(pfn, cp);
                    }

                    w.AddPage(pfn, type, page);
                    memory[pfn] = page;
                    if (++n % 4 == 0)
                    {
                        w.AddFiller();
                    }

                    if (n == 17)
                    {
                        w.FlushBatch();
                    }
                }

                if (cp == 1)
                {
                    w.AddPage(P2mSize - 1, LegacyPageType.XAlloc, default);
                    w.AddPage(P2mSize - 2, LegacyPageType.XTab, default);
                }

                Expected.Add(new SortedDictionary<uint, byte[]>(memory));
                var map = new ulong[1];
                for (var v = 0; v < Vcpus; v++)
                {
                    map[0] |= 1UL << (v * 2);
                }

                w.WriteVcpuInfo(Math.Max(0, (Vcpus - 1) * 2), map);
                if (Guest == GuestType.Hvm && Specials)
                {
                    w.WriteHvmParam(LegacyChunkId.HvmIdentPt, 0xFEFFC000);
                    w.WriteHvmParam(LegacyChunkId.HvmConsolePfn, 83);
                    w.WriteHvmParam(LegacyChunkId.HvmAcpiIoportsLocation, 1);
                }

                if (Toolstack is not null)
                {
                    w.WriteToolstack(Toolstack);
                }

                w.EndBody();
                if (Guest == GuestType.Pv)
                {
                    var record = ctxSize + (Extv ? 128 : 0) + (int)Xcnt;
                    var records = new byte[record * Vcpus];
                    for (var v = 0; v < Vcpus; v++)
                    {
                        LegacyTestStreams.Bytes(record, 100 + v + cp).CopyTo(records, v * record);
                        if (Xcnt != 0)
                        {
                            LegacyStreamWriter.MakeXsaveRecord(7, LegacyTestStreams.Bytes((int)Xcnt - 16, v)).CopyTo(records, ((v + 1) * record) - (int)Xcnt);
                        }
                    }

                    w.WritePvTail([3, 5], records, LegacyTestStreams.Bytes(4096, 50 + cp));
                }
                else
                {
                    w.WriteHvmTail(P2mSize - 3, P2mSize - 4, P2mSize - 5, LegacyTestStreams.Bytes(1000 + cp, 60 + cp));
                    if (WriteDeviceModel)
                    {
                        var dm = LegacyTestStreams.Bytes(600 + cp, 70 + cp);
                        "QEVM"u8.CopyTo(dm);
                        w.WriteDeviceModelRecord(DeviceModel, dm);
                    }
                }
            }

            output.Write(Trailer);
            output.Flush();
        }

        return ms.ToArray();
    }
}
