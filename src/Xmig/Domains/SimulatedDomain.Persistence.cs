using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Xmig.Domains;

/// <summary>Saving a simulated domain to its directory and opening (and checking) one.</summary>
internal sealed partial class SimulatedDomain
{
    /// <summary>
    /// Writes the description, bitmaps and blobs to <see cref="Directory"/>, and cuts the memory file down to
    /// <see cref="P2mSize"/> frames (after which the domain cannot grow).
    /// </summary>
    public void Save()
    {
        if (!_memory.Writable)
        {
            throw new InvalidOperationException("the domain is open read-only");
        }

        if (_p2mSize == 0)
        {
            throw new InvalidOperationException("the domain has no memory");
        }

        if (_memory.Pages > _p2mSize)
        {
            // Shrink the file and the mapping together: a mapping past the end of its file faults on access.
            _memory.Dispose();
            var memoryPath = Path.Combine(Directory, DomainDirectory.MemoryFile);
            using (var stream = new FileStream(memoryPath, FileMode.Open, FileAccess.Write))
            {
                stream.SetLength((long)(_p2mSize * GuestPage.Size));
            }

            _memory = GuestMemory.Map(memoryPath, _p2mSize, writable: true);
            _growLimit = _p2mSize;
        }

        var words = NativeBitmap.WordsFor(_p2mSize);
        WriteFile(DomainDirectory.PopulatedFile, MemoryMarshal.AsBytes(_populated.Words[..(int)words]));
        WriteFile(DomainDirectory.TypesFile, TypesSpan(_p2mSize));

        WriteBlob(DomainDirectory.HvmContextFile, _hvmContext);
        WriteBlob(DomainDirectory.EmulatorContextFile, _emulatorContext);
        WriteBlob(DomainDirectory.SharedInfoFile, _sharedInfo);
        WriteBlob(DomainDirectory.P2mFramesFile, MemoryMarshal.AsBytes(_p2mFrames.AsSpan()));
        WriteBlob(DomainDirectory.CpuidPolicyFile, _cpuidPolicy);
        WriteBlob(DomainDirectory.MsrPolicyFile, _msrPolicy);
        for (var vcpu = 0; vcpu < _vcpus.Count; vcpu++)
        {
            for (var kind = VcpuContextKind.Basic; kind <= VcpuContextKind.Msrs; kind++)
            {
                WriteBlob(DomainDirectory.VcpuFile(vcpu, kind), _vcpus[vcpu][(int)kind]);
            }
        }

        var description = new DomainDescription
        {
            Format = DomainDescription.FormatName,
            Version = DomainDescription.CurrentVersion,
            Type = GuestType == GuestType.Hvm ? "hvm" : "pv",
            GuestWidth = GuestWidth * 8,
            P2mSize = _p2mSize,
            Pages = PopulatedPages,
            MemoryBytes = MemoryBytes,
            Seed = Seed,
            Vcpus = [.. Enumerable.Range(0, MaxVcpuId + 1).Where(IsVcpuOnline)],
            Tsc = new TscDescription { Mode = TscInfo.Mode, Khz = TscInfo.Khz, Nsec = TscInfo.Nsec, Incarnation = TscInfo.Incarnation },
            HvmParams = [.. Enumerable.Range(0, (int)HvmParam.Count).Where(i => _hvmParams[i] != 0).Select(i => new HvmParamDescription { Index = (uint)i, Value = _hvmParams[i] })],
            EmulatorXenstore = [.. _xenstore.Select(e => new XenstoreDescription { Key = e.Key, Value = e.Value })],
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(description, DomainJsonContext.Default.DomainDescription);
        WriteFile(DomainDirectory.DescriptionFile, json);
    }

    /// <summary>
    /// Opens a domain directory, checking every part: the description, the memory file's size, the bitmaps, and
    /// the blobs' sizes. Throws <see cref="InvalidDomainException"/> with the reason when something is wrong,
    /// <see cref="DirectoryNotFoundException"/> when there is no such directory.
    /// </summary>
    public static SimulatedDomain Open(string directory, bool writable = false)
    {
        var full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"{directory}: no such directory");
        }

        var d = ReadDescription(directory, full);
        var type = d.Type switch
        {
            "pv" => GuestType.Pv,
            "hvm" => GuestType.Hvm,
            _ => throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: type \"{d.Type}\" is not pv or hvm"),
        };
        if (d.GuestWidth is not (32 or 64) || (type == GuestType.Hvm && d.GuestWidth != 64))
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: guest_width {d.GuestWidth} is not valid for a {d.Type} guest");
        }

        if (d.P2mSize == 0 || d.P2mSize > P2mLimit)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: p2m_size {d.P2mSize} is outside 1 … {P2mLimit}");
        }

        if (d.Pages > d.P2mSize)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: pages {d.Pages} exceeds p2m_size {d.P2mSize}");
        }

        var memoryPath = Path.Combine(full, DomainDirectory.MemoryFile);
        var expected = (long)(d.P2mSize * GuestPage.Size);
        var actual = FileLength(directory, memoryPath);
        if (actual != expected)
        {
            throw Invalid(directory, $"{DomainDirectory.MemoryFile} is {actual} octets, expected {expected} (p2m_size {d.P2mSize} × 4096)");
        }

        var memory = GuestMemory.Map(memoryPath, d.P2mSize, writable);
        var domain = new SimulatedDomain(full, type, d.GuestWidth / 8, d.P2mSize, d.P2mSize, memory);
        try
        {
            domain.Seed = d.Seed;
            domain.MemoryBytes = d.MemoryBytes;
            domain.LoadBitmaps(directory, d);
            domain.LoadState(directory, d);
            return domain;
        }
        catch
        {
            domain.Dispose();
            throw;
        }
    }

    internal void Relocate(string directory) => Directory = directory;

    private static DomainDescription ReadDescription(string directory, string full)
    {
        var path = Path.Combine(full, DomainDirectory.DescriptionFile);
        if (!File.Exists(path))
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile} is missing");
        }

        if (new FileInfo(path).Length > 16 << 20)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile} is larger than 16 MiB");
        }

        DomainDescription? d;
        try
        {
            d = JsonSerializer.Deserialize(File.ReadAllBytes(path), DomainJsonContext.Default.DomainDescription);
        }
        catch (JsonException e)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: {e.Message}", e);
        }

        if (d == null)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: null");
        }

        if (d.Format != DomainDescription.FormatName || d.Version != DomainDescription.CurrentVersion)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: format \"{d.Format}\" version {d.Version}, expected \"{DomainDescription.FormatName}\" version {DomainDescription.CurrentVersion}");
        }

        return d;
    }

    private void LoadBitmaps(string directory, DomainDescription d)
    {
        var words = NativeBitmap.WordsFor(d.P2mSize);
        var bitmap = MemoryMarshal.AsBytes(_populated.Words[..(int)words]);
        ReadExact(directory, DomainDirectory.PopulatedFile, bitmap);
        var tailBits = (int)(d.P2mSize % 64);
        if (tailBits != 0 && (_populated.Words[(int)words - 1] >> tailBits) != 0)
        {
            throw Invalid(directory, $"{DomainDirectory.PopulatedFile} marks frames beyond p2m_size {d.P2mSize}");
        }

        var pages = _populated.PopCount();
        if (pages != d.Pages)
        {
            throw Invalid(directory, $"{DomainDirectory.PopulatedFile} marks {pages} frames, {DomainDirectory.DescriptionFile} says {d.Pages}");
        }

        var types = TypesSpan(d.P2mSize);
        ReadExact(directory, DomainDirectory.TypesFile, types);
        for (var pfn = 0UL; pfn < d.P2mSize; pfn++)
        {
            var t = (PageType)types[(int)pfn];
            var ok = _populated.Get(pfn) ? t.HasData() : t is PageType.NoTab or PageType.XAlloc or PageType.Broken;
            if (!ok)
            {
                throw Invalid(directory, $"{DomainDirectory.TypesFile}: frame 0x{pfn:X} has type 0x{(byte)t:X} but is {(_populated.Get(pfn) ? "" : "not ")}populated");
            }
        }
    }

    private void LoadState(string directory, DomainDescription d)
    {
        var tsc = d.Tsc ?? throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: tsc is missing");
        TscInfo = new TscInfo(tsc.Mode, tsc.Khz, tsc.Nsec, tsc.Incarnation);
        foreach (var p in d.HvmParams ?? [])
        {
            if (p.Index >= HvmParam.Count)
            {
                throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: HVM parameter index {p.Index} is not below {HvmParam.Count}");
            }

            _hvmParams[p.Index] = p.Value;
        }

        var xenstore = new List<XenstoreEntry>();
        foreach (var e in d.EmulatorXenstore ?? [])
        {
            if (string.IsNullOrEmpty(e.Key) || e.Value == null)
            {
                throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: emulator_xenstore entry without key or value");
            }

            xenstore.Add(new XenstoreEntry(e.Key, e.Value));
        }

        _xenstore = [.. xenstore];
        _cpuidPolicy = ReadBlob(directory, DomainDirectory.CpuidPolicyFile, 24, "a multiple of 24");
        _msrPolicy = ReadBlob(directory, DomainDirectory.MsrPolicyFile, 16, "a multiple of 16");
        var vcpus = d.Vcpus ?? throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: vcpus is missing");
        if (vcpus.Count == 0 || vcpus.Any(v => v < 0 || v > MaxVcpuLimit) || vcpus.Distinct().Count() != vcpus.Count)
        {
            throw Invalid(directory, $"{DomainDirectory.DescriptionFile}: vcpus must list distinct ids in 0 … {MaxVcpuLimit}");
        }

        if (GuestType == GuestType.Hvm)
        {
            _hvmContext = ReadBlob(directory, DomainDirectory.HvmContextFile, 1, "present", required: true);
            var problem = HvmContextBlob.Validate(_hvmContext);
            if (problem != null)
            {
                throw Invalid(directory, $"{DomainDirectory.HvmContextFile}: {problem}");
            }

            _hvmVcpus = HvmContextBlob.CountVcpus(_hvmContext);
            if (vcpus.Max() + 1 != _hvmVcpus)
            {
                throw Invalid(directory, $"{DomainDirectory.HvmContextFile} describes {_hvmVcpus} vCPUs, {DomainDirectory.DescriptionFile} lists {vcpus.Count}");
            }

            _emulatorContext = ReadBlob(directory, DomainDirectory.EmulatorContextFile, 1, "any size");
            return;
        }

        _sharedInfo = ReadBlob(directory, DomainDirectory.SharedInfoFile, GuestPage.Size, "4096 octets", required: true, exact: GuestPage.Size);
        var fpp = (ulong)(GuestPage.Size / GuestWidth);
        var frames = (int)((_p2mSize + fpp - 1) / fpp);
        var raw = ReadBlob(directory, DomainDirectory.P2mFramesFile, 8, $"{frames} × 8 octets", required: true, exact: frames * 8);
        _p2mFrames = new ulong[frames];
        for (var i = 0; i < frames; i++)
        {
            _p2mFrames[i] = BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * 8)); // the guest's claim, kept as sent
        }

        var basicSize = GuestWidth == 8 ? PvVcpuLayout.BasicSize64 : PvVcpuLayout.BasicSize32;
        foreach (var vcpu in vcpus.Order())
        {
            var basic = ReadBlob(directory, DomainDirectory.VcpuFile(vcpu, VcpuContextKind.Basic), 1, $"{basicSize} octets for a {GuestWidth * 8}-bit guest", required: true, exact: basicSize);
            SetVcpuContext(vcpu, VcpuContextKind.Basic, basic);
            var extended = ReadBlob(directory, DomainDirectory.VcpuFile(vcpu, VcpuContextKind.Extended), 1, "at most 128 octets");
            if (extended.Length > PvVcpuLayout.ExtendedSize)
            {
                throw Invalid(directory, $"{DomainDirectory.VcpuFile(vcpu, VcpuContextKind.Extended)} is {extended.Length} octets, at most 128 allowed");
            }

            SetVcpuContext(vcpu, VcpuContextKind.Extended, extended);
            var xsave = ReadBlob(directory, DomainDirectory.VcpuFile(vcpu, VcpuContextKind.Xsave), 1, "at least 16 octets");
            if (xsave.Length is > 0 and < 16)
            {
                throw Invalid(directory, $"{DomainDirectory.VcpuFile(vcpu, VcpuContextKind.Xsave)} is {xsave.Length} octets, at least 16 needed");
            }

            SetVcpuContext(vcpu, VcpuContextKind.Xsave, xsave);
            SetVcpuContext(vcpu, VcpuContextKind.Msrs, ReadBlob(directory, DomainDirectory.VcpuFile(vcpu, VcpuContextKind.Msrs), 16, "a multiple of 16"));
        }
    }

    /// <summary>Reads an optional blob (empty when absent) whose size must be a non-zero multiple of <paramref name="unit"/>.</summary>
    private byte[] ReadBlob(string directory, string name, int unit, string rule, bool required = false, int exact = -1)
    {
        var path = Path.Combine(Directory, name);
        if (!File.Exists(path))
        {
            return required ? throw Invalid(directory, $"{name} is missing") : [];
        }

        var length = new FileInfo(path).Length;
        if (length == 0 || length > DomainDirectory.MaxBlobSize || length % unit != 0 || (exact >= 0 && length != exact))
        {
            throw Invalid(directory, $"{name} is {length} octets, expected {rule}");
        }

        return File.ReadAllBytes(path);
    }

    private void ReadExact(string directory, string name, Span<byte> destination)
    {
        var path = Path.Combine(Directory, name);
        var length = FileLength(directory, path);
        if (length != destination.Length)
        {
            throw Invalid(directory, $"{name} is {length} octets, expected {destination.Length}");
        }

        using var handle = File.OpenHandle(path);
        var done = 0;
        while (done < destination.Length)
        {
            var n = RandomAccess.Read(handle, destination[done..], done);
            if (n == 0)
            {
                throw Invalid(directory, $"{name} ended after {done} octets");
            }

            done += n;
        }
    }

    private void WriteFile(string name, ReadOnlySpan<byte> data)
    {
        using var handle = File.OpenHandle(Path.Combine(Directory, name), FileMode.Create, FileAccess.Write);
        RandomAccess.Write(handle, data, 0);
    }

    private void WriteBlob(string name, ReadOnlySpan<byte> data)
    {
        var path = Path.Combine(Directory, name);
        if (data.IsEmpty)
        {
            File.Delete(path);
            return;
        }

        WriteFile(name, data);
    }

    private static long FileLength(string directory, string path)
    {
        if (!File.Exists(path))
        {
            throw Invalid(directory, $"{Path.GetFileName(path)} is missing");
        }

        return new FileInfo(path).Length;
    }

    private static InvalidDomainException Invalid(string directory, string reason) => new(directory, reason);

    private static InvalidDomainException Invalid(string directory, string reason, Exception inner) => new(directory, reason, inner);
}
