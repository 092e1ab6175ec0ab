using Xmig.Domains;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Samples;
using Xmig.Save;

namespace Xmig.Fuzz;

/// <summary>
/// Writes small seed streams of every kind the library saves: xl, libxl, libxc and both legacy sender generations,
/// PV (64- and 32-bit guests, 64- and 32-bit toolstacks) and HVM, plain and checkpointed, and compressed legacy
/// checkpoints. Each comes from a real save of a tiny domain: a simulated domain's state with only a few frames.
/// </summary>
internal static class Seeds
{
    private const int Frames = 24;

    public static void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        var work = Path.Combine(Path.GetTempPath(), $"xmig-fuzz-seeds-{Environment.ProcessId}");
        try
        {
            foreach (var (type, width) in new[] { (GuestType.Pv, 8), (GuestType.Pv, 4), (GuestType.Hvm, 8) })
            {
                var name = type == GuestType.Hvm ? "hvm" : $"pv{width * 8}";
                Directory.CreateDirectory(Path.Combine(work, name));
                var source = SimulatedDomain.Create(Path.Combine(work, name), new DomainSpec(type, DomainSpec.MinMemory, 1, 7, width));
                using (source)
                {
                    foreach (var kind in Enum.GetValues<SaveStreamKind>())
                    {
                        foreach (var checkpoints in new[] { 0, 2 })
                        {
                            foreach (var toolstack in kind is SaveStreamKind.Legacy40 or SaveStreamKind.Legacy41 ? new[] { 8, 4 } : [8])
                            {
                                var domain = Shrink(source);
                                using var output = new MemoryStream();
                                using (var engine = new SaveEngine(domain, output, new SaveOptions
                                {
                                    Kind = kind,
                                    Checkpoints = checkpoints,
                                    Live = checkpoints == 0,
                                    CheckpointInterval = TimeSpan.Zero,
                                    LegacyToolstackWidth = toolstack,
                                }))
                                {
                                    engine.Run();
                                }

                                var file = $"{name}-{kind.ToString().ToLowerInvariant()}-cp{checkpoints}{(toolstack == 4 ? "-ts32" : "")}.bin";
                                File.WriteAllBytes(Path.Combine(directory, file), output.ToArray());
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }

        foreach (var guest in new[] { GuestType.Hvm, GuestType.Pv })
        {
            File.WriteAllBytes(Path.Combine(directory, $"{guest.ToString().ToLowerInvariant()}-legacy-compressed-cp3.bin"), CompressedLegacy(guest));
        }

        // The library's own sample streams: COLO checkpoints, both guest types, one page.
        foreach (var kind in new[] { StreamKind.Xl, StreamKind.Libxl, StreamKind.Libxc })
        {
            foreach (var guest in new[] { GuestType.Pv, GuestType.Hvm })
            {
                var sample = SampleStreams.Create(new SampleStreamOptions { Kind = kind, Guest = guest, Pages = 1, Vcpus = 1, Checkpoints = 2, Colo = kind != StreamKind.Libxc });
                File.WriteAllBytes(Path.Combine(directory, $"sample-{kind.ToString().ToLowerInvariant()}-{guest.ToString().ToLowerInvariant()}-colo.bin"), sample);
            }
        }
    }

    /// <summary>A copy of <paramref name="source"/>'s state with only its first <see cref="Frames"/> frames.</summary>
    private static InMemoryDomain Shrink(SimulatedDomain source)
    {
        var d = new InMemoryDomain(source.GuestType, source.GuestWidth, Frames);
        d.GrowP2m(Frames);
        var types = new PageType[Frames];
        source.GetPageTypes(0, types);
        for (var pfn = 0u; pfn < Frames; pfn++)
        {
            // One frame with data (as the source typed them), the others allocated without data or absent.
            var t = pfn < 1 ? (types[pfn].HasData() ? types[pfn] : PageType.NoTab) : pfn % 2 == 0 ? PageType.XAlloc : PageType.XTab;

            d.WritePage(pfn, t, t.HasData() ? source.GetPage(pfn) : default);
        }

        if (source.GuestType == GuestType.Pv)
        {
            for (var v = 0; v <= source.MaxVcpuId; v++)
            {
                foreach (var kind in Enum.GetValues<VcpuContextKind>())
                {
                    d.SetVcpuContext(v, kind, source.GetVcpuContext(v, kind));
                }
            }

            d.SetP2mFrames([Frames - 1]);
            d.SetSharedInfo(source.SharedInfo);
        }
        else
        {
            d.SetHvmContext(source.HvmContext);
            for (var i = 0u; i < HvmParam.Count; i++)
            {
                // Special pages must lie within the shrunken p2m.
                var value = source.GetHvmParam(i);
                if (i is HvmParam.StorePfn or HvmParam.IoreqPfn or HvmParam.BufioreqPfn or HvmParam.ConsolePfn && value >= Frames)
                {
                    value = Frames - 1 - (i % 4);
                }

                d.SetHvmParam(i, value);
            }

            d.SetEmulatorContext(source.EmulatorContext.Length > 512 ? source.EmulatorContext[..512] : source.EmulatorContext);
            d.SetEmulatorXenstore(source.EmulatorXenstore);
        }

        d.TscInfo = source.TscInfo;
        d.SetCpuidPolicy(source.CpuidPolicy);
        d.SetMsrPolicy(source.MsrPolicy);
        return d;
    }

    /// <summary>
    /// A three-checkpoint legacy image with compressed later checkpoints (small page deltas); HVM images carry the
    /// device-model record unless <paramref name="deviceModel"/> is false.
    /// </summary>
    internal static byte[] CompressedLegacy(GuestType guest, bool deviceModel = true)
    {
        const uint P2m = 16;
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            using var w = new LegacyStreamWriter(output, new LegacyWriterOptions(8, guest)
            {
                Checkpointed = true,
                Compress = true,
                CacheFirstCheckpoint = true,
                CompressionCachePages = 8,
                CompressionStagingLength = 3 * 4096,
            });
            if (guest == GuestType.Pv)
            {
                w.WritePvHeader(P2m, Bytes(LegacyStreamReader.VcpuContextSize64, 1), true, 0, [P2m - 1]);
            }
            else
            {
                w.WriteHvmHeader(P2m);
            }

            var pages = new Dictionary<uint, byte[]>();
            for (var cp = 1; cp <= 3; cp++)
            {
                if (cp > 1)
                {
                    w.BeginNextCheckpoint();
                }
                else
                {
                    w.WriteTscInfo(new LegacyTscInfo(1, 123456789, 2_400_000, 7));
                }

                foreach (var pfn in cp == 1 ? new uint[] { 0, 1, 2, 5 } : [0, 2, (uint)(cp + 2)])
                {
                    if (!pages.TryGetValue(pfn, out var page))
                    {
                        pages[pfn] = page = Bytes(4096, (int)pfn);
                    }

                    page[100 + cp] ^= 0x5A;
                    w.AddPage(pfn, LegacyPageType.NoTab, page);
                }

                w.WriteVcpuInfo(0, [1]);
                if (guest == GuestType.Hvm)
                {
                    w.WriteHvmParam(LegacyChunkId.HvmIdentPt, 0xFEFFC000);
                }

                w.EndBody();
                if (guest == GuestType.Pv)
                {
                    w.WritePvTail([3], Bytes(LegacyStreamReader.VcpuContextSize64 + LegacyStreamReader.ExtendedContextSize, 100 + cp), Bytes(4096, 50 + cp));
                }
                else
                {
                    w.WriteHvmTail(P2m - 3, P2m - 4, P2m - 5, Bytes(300 + cp, 60 + cp));
                    if (!deviceModel)
                    {
                        continue;
                    }

                    var dm = Bytes(64 + cp, 70 + cp);
                    "QEVM"u8.CopyTo(dm);
                    w.WriteDeviceModelRecord(LegacyDeviceModelSignature.DeviceModelRecord0002, dm);
                }
            }

            output.Flush();
        }

        return ms.ToArray();
    }

    private static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }
}
