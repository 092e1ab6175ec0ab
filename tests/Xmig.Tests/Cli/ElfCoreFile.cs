using System.Buffers.Binary;
using System.Diagnostics;

namespace Xmig.Tests.Cli;

/// <summary>A PT_LOAD segment of an ELF core: where its pages are in the file and which guest-physical range they are.</summary>
internal readonly record struct ElfLoad(long Offset, ulong PhysicalAddress, ulong VirtualAddress, long FileSize, long MemorySize);

/// <summary>One note of a PT_NOTE segment.</summary>
internal sealed record ElfNote(string Name, uint Type, byte[] Description);

/// <summary>An ELF64 core file read back by the tests with their own parser (independent of the writer), and readelf when installed.</summary>
internal sealed class ElfCoreFile
{
    public ushort Type { get; private init; }

    public ushort Machine { get; private init; }

    public List<ElfLoad> Loads { get; } = [];

    public List<ElfNote> Notes { get; } = [];

    public static ElfCoreFile Read(string path)
    {
        using var file = File.OpenRead(path);
        var header = ReadAt(file, 0, 64);
        Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1], header[..7]);
        var phoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(32));
        var shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(40));
        Assert.Equal(56, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(54)));
        long phnum = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(56));
        if (phnum == 0xFFFF)
        {
            phnum = BinaryPrimitives.ReadUInt32LittleEndian(ReadAt(file, shoff, 64).AsSpan(44));
        }

        var elf = new ElfCoreFile
        {
            Type = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(16)),
            Machine = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(18)),
        };
        var table = ReadAt(file, phoff, checked((int)(phnum * 56)));
        for (var i = 0; i < phnum; i++)
        {
            var p = table.AsSpan(i * 56, 56);
            var type = BinaryPrimitives.ReadUInt32LittleEndian(p);
            var offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
            var filesz = (long)BinaryPrimitives.ReadUInt64LittleEndian(p[32..]);
            if (type == 1)
            {
                elf.Loads.Add(new ElfLoad(offset, BinaryPrimitives.ReadUInt64LittleEndian(p[24..]), BinaryPrimitives.ReadUInt64LittleEndian(p[16..]), filesz, (long)BinaryPrimitives.ReadUInt64LittleEndian(p[40..])));
            }
            else if (type == 4)
            {
                var notes = ReadAt(file, offset, checked((int)filesz));
                for (var at = 0; at < notes.Length;)
                {
                    var namesz = (int)BinaryPrimitives.ReadUInt32LittleEndian(notes.AsSpan(at));
                    var descsz = (int)BinaryPrimitives.ReadUInt32LittleEndian(notes.AsSpan(at + 4));
                    var noteType = BinaryPrimitives.ReadUInt32LittleEndian(notes.AsSpan(at + 8));
                    var name = System.Text.Encoding.ASCII.GetString(notes, at + 12, namesz).TrimEnd('\0');
                    var desc = notes.AsSpan(at + 12 + Pad4(namesz), descsz).ToArray();
                    elf.Notes.Add(new ElfNote(name, noteType, desc));
                    at += 12 + Pad4(namesz) + Pad4(descsz);
                }
            }
        }

        return elf;
    }

    /// <summary>The guest page at <paramref name="pfn"/> as the core holds it, or null when no PT_LOAD covers it.</summary>
    public static byte[]? Page(FileStream file, List<ElfLoad> loads, ulong pfn)
    {
        var address = pfn << 12;
        foreach (var l in loads)
        {
            if (address >= l.PhysicalAddress && address < l.PhysicalAddress + (ulong)l.FileSize)
            {
                return ReadAt(file, l.Offset + (long)(address - l.PhysicalAddress), 4096);
            }
        }

        return null;
    }

    /// <summary><c>readelf ARGS FILE</c>'s output, or null (said on the test output) when readelf is not installed.</summary>
    public static string? ReadElf(string path, params string[] args)
    {
        var start = new ProcessStartInfo("readelf") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.ArgumentList.Add(path);
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "readelf did not finish");
            Assert.Equal(0, process.ExitCode);
            return output.Result;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.WriteLine("SKIPPED readelf cross-check: readelf is not installed (apt-get install binutils); the test's own ELF parser still checked the file");
            return null;
        }
    }

    private static byte[] ReadAt(FileStream file, long offset, int count)
    {
        var buffer = new byte[count];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }

    private static int Pad4(int n) => (n + 3) & ~3;
}
