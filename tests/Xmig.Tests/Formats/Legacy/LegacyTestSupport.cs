using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using Xmig.Formats;
using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Tests.Formats.Legacy;

/// <summary>One input of TestData/vectors/manifest.json.</summary>
public sealed record LegacyVector(string Name, string MemorySha256, int Pages, long Bytes, string Guest, int Width, string Sender, int Checkpoints, bool Xl, IReadOnlyDictionary<string, string> XenConvert)
{
    public string Path => System.IO.Path.Combine(LegacyVectors.Directory, Name + ".bin");

    internal GuestType GuestType => Guest == "pv" ? GuestType.Pv : GuestType.Hvm;

    public override string ToString() => Name;
}

internal static class LegacyVectors
{
    public static string Directory => System.IO.Path.Combine(AppContext.BaseDirectory, "TestData", "vectors");

    public static IReadOnlyList<LegacyVector> All { get; } = Load();

    public static LegacyVector Get(string name) => All.Single(v => v.Name == name);

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var v in All)
        {
            data.Add(v.Name);
        }

        return data;
    }

    private static List<LegacyVector> Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(System.IO.Path.Combine(Directory, "manifest.json")));
        var list = new List<LegacyVector>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            var e = p.Value;
            var conv = new Dictionary<string, string>();
            if (e.TryGetProperty("xen_convert", out var xc))
            {
                foreach (var c in xc.EnumerateObject())
                {
                    conv[c.Name] = c.Value.GetString()!;
                }
            }

            list.Add(new LegacyVector(
                p.Name,
                e.GetProperty("memory_sha256").GetString()!,
                e.GetProperty("pages").GetInt32(),
                e.GetProperty("bytes").GetInt64(),
                e.GetProperty("guest").GetString()!,
                e.GetProperty("width").GetInt32(),
                e.GetProperty("sender").GetString()!,
                e.GetProperty("checkpoints").GetInt32(),
                e.TryGetProperty("xl", out var xl) && xl.GetBoolean(),
                conv));
        }

        return list;
    }
}

/// <summary>An in-memory restore target: applies committed checkpoints and logs every call.</summary>
internal sealed class MemorySink : ILegacyRestoreSink
{
    public SortedDictionary<uint, byte[]> Memory { get; } = [];

    public List<string> Log { get; } = [];

    public LegacyImageInfo? Info { get; private set; }

    public List<int> Committed { get; } = [];

    public List<int> Discarded { get; } = [];

    public List<(LegacyChunkId Id, ulong Value)> Params { get; } = [];

    public List<byte[]> Toolstacks { get; } = [];

    public List<(LegacyDeviceModelSignature Signature, byte[] Data)> DeviceModels { get; } = [];

    public List<byte[]> HvmContexts { get; } = [];

    public List<(int Id, byte[] Context, byte[] Extended, byte[] Xsave)> Vcpus { get; } = [];

    public List<byte[]> SharedInfos { get; } = [];

    public List<LegacyTscInfo> Tscs { get; } = [];

    public List<ulong> Unmapped { get; } = [];

    public int Batches { get; private set; }

    public void Header(LegacyImageInfo info)
    {
        Info = info;
        Log.Add($"header p2m={info.P2mSize}");
    }

    public void BeginCheckpoint(int number) => Log.Add($"begin {number}");

    public void PageBatch(ReadOnlySpan<uint> entries, ReadOnlySpan<byte> pages)
    {
        Batches++;
        var d = 0;
        foreach (var e in entries)
        {
            if (LegacyPfnEntry.HasData(e))
            {
                Memory[LegacyPfnEntry.Pfn(e)] = pages.Slice(d++ * 4096, 4096).ToArray();
            }
        }

        Log.Add($"batch {entries.Length}");
    }

    public bool TryReadPage(uint pfn, Span<byte> destination)
    {
        if (!Memory.TryGetValue(pfn, out var page))
        {
            return false;
        }

        page.CopyTo(destination);
        return true;
    }

    public void Marker(LegacyChunkId id) => Log.Add($"marker {id}");

    public void VcpuInfo(int maxVcpuId, ReadOnlySpan<ulong> onlineMap) => Log.Add($"vcpuinfo {maxVcpuId}");

    public void HvmParam(LegacyChunkId id, ulong value)
    {
        Params.Add((id, value));
        Log.Add($"param {id}={value}");
    }

    public void TscInfo(LegacyTscInfo tsc) => Tscs.Add(tsc);

    public void Toolstack(ReadOnlySpan<byte> blob) => Toolstacks.Add(blob.ToArray());

    public void EndOfBody() => Log.Add("end of body");

    public void UnmappedPfns(ReadOnlySpan<ulong> pfns) => Unmapped.AddRange(pfns.ToArray());

    public void PvVcpu(int vcpuId, ReadOnlySpan<byte> context, ReadOnlySpan<byte> extendedContext, ReadOnlySpan<byte> xsaveRecord) =>
        Vcpus.Add((vcpuId, context.ToArray(), extendedContext.ToArray(), xsaveRecord.ToArray()));

    public void SharedInfo(ReadOnlySpan<byte> page) => SharedInfos.Add(page.ToArray());

    public void HvmMagicPfns(ulong ioreqPfn, ulong bufIoreqPfn, ulong storePfn) => Log.Add($"magic {ioreqPfn} {bufIoreqPfn} {storePfn}");

    public void HvmContext(long length, Stream data)
    {
        using var ms = new MemoryStream();
        data.CopyTo(ms);
        HvmContexts.Add(ms.ToArray());
    }

    public void DeviceModel(LegacyDeviceModelSignature signature, long length, Stream data)
    {
        using var ms = new MemoryStream();
        data.CopyTo(ms);
        DeviceModels.Add((signature, ms.ToArray()));
    }

    public void CommitCheckpoint(int number)
    {
        Committed.Add(number);
        Log.Add($"commit {number}");
    }

    public void DiscardCheckpoint(int number) => Discarded.Add(number);

    /// <summary>SHA-256 over each pfn holding data, ascending: pfn as 8 LE octets, then its 4096 octets.</summary>
    public string MemoryDigest()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> pfn = stackalloc byte[8];
        foreach (var (p, page) in Memory)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(pfn, p);
            sha.AppendData(pfn);
            sha.AppendData(page);
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}

internal static class LegacyTestStreams
{
    /// <summary>Restores <paramref name="bytes"/> into a fresh <see cref="MemorySink"/>.</summary>
    public static (MemorySink Sink, LegacyRestoreResult Result, long Position) Restore(
        byte[] bytes, int width, GuestType guest, CheckpointedMode mode = CheckpointedMode.Auto,
        LegacyDeviceModelHandling dm = LegacyDeviceModelHandling.Required, int bufferSize = InputBuffer.DefaultSize)
    {
        using var ms = new MemoryStream(bytes, writable: false);
        using var input = new InputBuffer(ms, bufferSize);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(width, guest) { DeviceModel = dm });
        var sink = new MemorySink();
        var result = LegacyCheckpointDecision.Run(reader, sink, new LegacyCheckpointDecisionOptions { Mode = mode });
        return (sink, result, input.Position);
    }

    /// <summary>Deterministic page content.</summary>
    public static byte[] Page(uint pfn, int generation)
    {
        var page = new byte[4096];
        var rng = new Random((int)pfn * 7919 + generation);
        rng.NextBytes(page);
        return page;
    }

    public static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Drives the reader to the end of the first checkpoint, returning the items seen.</summary>
    public static List<LegacyItemKind> ReadAll(byte[] bytes, int width, GuestType guest, LegacyDeviceModelHandling dm = LegacyDeviceModelHandling.Required)
    {
        using var ms = new MemoryStream(bytes, writable: false);
        using var input = new InputBuffer(ms);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(width, guest) { DeviceModel = dm });
        var items = new List<LegacyItemKind>();
        LegacyItemKind k;
        do
        {
            k = reader.Read();
            items.Add(k);
        }
        while (k != LegacyItemKind.EndOfCheckpoint);
        return items;
    }
}
