using System.Globalization;

namespace Xmig.Domains;

/// <summary>
/// The simulated domain on disk: a directory holding
/// <list type="bullet">
/// <item><c>memory.raw</c>: raw sparse memory, frame <c>n</c> at offset <c>n × 4096</c>, exactly <c>p2m_size × 4096</c> octets;</item>
/// <item><c>populated.bitmap</c>: frames holding page data, bit <c>n % 64</c> of little-endian u64 word <c>n / 64</c>;</item>
/// <item><c>page-types.bin</c>: one octet per frame, its <c>XEN_DOMCTL_PFINFO_*</c> type (0 = absent when not populated);</item>
/// <item><c>domain.json</c>: the description (<see cref="DomainDescription"/>);</item>
/// <item>state blobs as raw files: <c>hvm-context.bin</c>, <c>emulator-context.bin</c>, <c>shared-info.bin</c>,
/// <c>p2m-frames.bin</c> (u64 pfns), <c>vcpuN-basic.bin</c> / <c>-extended</c> / <c>-xsave</c> / <c>-msrs</c>,
/// <c>cpuid-policy.bin</c>, <c>msr-policy.bin</c>.</item>
/// </list>
/// Directories are built beside their final name and renamed into place, so a failed build leaves nothing.
/// </summary>
internal static class DomainDirectory
{
    public const string MemoryFile = "memory.raw";
    public const string DescriptionFile = "domain.json";
    public const string PopulatedFile = "populated.bitmap";
    public const string TypesFile = "page-types.bin";
    public const string HvmContextFile = "hvm-context.bin";
    public const string EmulatorContextFile = "emulator-context.bin";
    public const string SharedInfoFile = "shared-info.bin";
    public const string P2mFramesFile = "p2m-frames.bin";
    public const string CpuidPolicyFile = "cpuid-policy.bin";
    public const string MsrPolicyFile = "msr-policy.bin";

    /// <summary>Largest state blob accepted (the libxc record limit).</summary>
    public const int MaxBlobSize = 0x0800_0000;

    public static string VcpuFile(int vcpu, VcpuContextKind kind) =>
        string.Create(CultureInfo.InvariantCulture, $"vcpu{vcpu}-{KindName(kind)}.bin");

    public static string KindName(VcpuContextKind kind) => kind switch
    {
        VcpuContextKind.Basic => "basic",
        VcpuContextKind.Extended => "extended",
        VcpuContextKind.Xsave => "xsave",
        VcpuContextKind.Msrs => "msrs",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>
    /// Makes an empty working directory beside <paramref name="target"/>, which must not exist (or be an empty
    /// directory). Build there, then <see cref="Commit"/> or <see cref="Discard"/>.
    /// </summary>
    public static string CreateWorkingDirectory(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        if (File.Exists(full))
        {
            throw new IOException($"{target}: a file is in the way");
        }

        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
        {
            throw new IOException($"{target}: directory exists and is not empty");
        }

        var parent = Path.GetDirectoryName(full) ?? throw new IOException($"{target}: no parent directory");
        if (!Directory.Exists(parent))
        {
            throw new DirectoryNotFoundException($"{parent}: no such directory");
        }

        var working = Path.Combine(parent, string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(full)}.xmig-{Environment.ProcessId}-{Guid.NewGuid():N}"));
        Directory.CreateDirectory(working);
        return working;
    }

    /// <summary>Renames a finished working directory to <paramref name="target"/>.</summary>
    public static void Commit(string working, string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        if (Directory.Exists(full))
        {
            Directory.Delete(full); // empty, checked when the working directory was made
        }

        Directory.Move(working, full);
    }

    /// <summary>Removes a working directory and everything in it; never throws.</summary>
    public static void Discard(string working)
    {
        try
        {
            if (Directory.Exists(working))
            {
                Directory.Delete(working, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Builds a domain directory atomically: <paramref name="build"/> runs in a working directory, renamed on success.</summary>
    public static SimulatedDomain Build(string target, Func<string, SimulatedDomain> build)
    {
        var working = CreateWorkingDirectory(target);
        SimulatedDomain? domain = null;
        try
        {
            domain = build(working);
            Commit(working, target);
            domain.Relocate(Path.GetFullPath(target));
            return domain;
        }
        catch
        {
            domain?.Dispose();
            Discard(working);
            throw;
        }
    }
}

/// <summary>A domain directory that is missing parts, or whose parts disagree. The message says what and where.</summary>
internal sealed class InvalidDomainException : Exception
{
    public InvalidDomainException(string directory, string reason)
        : base($"{directory}: {reason}")
    {
        DomainPath = directory;
        Reason = reason;
    }

    public InvalidDomainException(string directory, string reason, Exception inner)
        : base($"{directory}: {reason}", inner)
    {
        DomainPath = directory;
        Reason = reason;
    }

    public string DomainPath { get; }

    public string Reason { get; }
}
