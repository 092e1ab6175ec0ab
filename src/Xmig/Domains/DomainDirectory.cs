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

    /// <summary>A staging directory left beside a target by a run that was killed (SIGKILL), and its pid.</summary>
    public readonly record struct StaleStaging(string Path, int Pid);

    /// <summary>
    /// Removes the working directories beside <paramref name="target"/> (<c>.NAME.xmig-PID-GUID</c>) whose process is
    /// gone: only a SIGKILL (or a crash) leaves one, as every other ending discards it. Directories of a live process
    /// (another run in progress, or this one) are kept. Returns what was removed, for one line each.
    /// </summary>
    public static IReadOnlyList<StaleStaging> RemoveStale(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        var parent = Path.GetDirectoryName(full);
        if (parent is null || !Directory.Exists(parent))
        {
            return [];
        }

        var prefix = "." + Path.GetFileName(full) + ".xmig-";
        var removed = new List<StaleStaging>();
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateDirectories(parent, prefix + "*").ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }

        foreach (var path in candidates)
        {
            // PID-GUID: a decimal pid, a dash, 32 hex digits (the name CreateWorkingDirectory gives).
            var rest = Path.GetFileName(path)[prefix.Length..];
            var dash = rest.IndexOf('-', StringComparison.Ordinal);
            if (dash <= 0 || rest.Length - dash - 1 != 32
                || !int.TryParse(rest.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || !Guid.TryParseExact(rest.AsSpan(dash + 1), "N", out _)
                || IsAlive(pid))
            {
                continue;
            }

            Discard(path);
            if (!Directory.Exists(path))
            {
                removed.Add(new StaleStaging(path, pid));
            }
        }

        return removed;
    }

    /// <summary>Removes this process's working directories beside <paramref name="target"/> (a run giving up after a signal).</summary>
    public static void DiscardOwn(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        if (Path.GetDirectoryName(full) is { } parent && Directory.Exists(parent))
        {
            var mine = string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(full)}.xmig-{Environment.ProcessId}-*");
            foreach (var path in Directory.EnumerateDirectories(parent, mine).ToList())
            {
                Discard(path);
            }
        }
    }

    /// <summary>
    /// A message about a file in <paramref name="working"/> as the user should read it: about <paramref name="target"/>,
    /// never the hidden staging name (issue 9 item 5).
    /// </summary>
    public static string Unstage(string message, string working, string target) =>
        message.Replace(working, Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

    private static bool IsAlive(int pid)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }

        if (OperatingSystem.IsLinux())
        {
            // A zombie (killed, not yet reaped) counts as gone: state 'Z' after the command name in /proc/PID/stat.
            try
            {
                var stat = File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"));
                var close = stat.LastIndexOf(')');
                return !(close > 0 && close + 2 < stat.Length && stat[close + 2] is 'Z' or 'X');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return e is UnauthorizedAccessException;
            }
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
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
        catch (IOException e) when (e.Message.Contains(working, StringComparison.Ordinal))
        {
            // Errors name the user's target, never the hidden staging name (issue 9 item 5).
            domain?.Dispose();
            Discard(working);
            throw new IOException(Unstage(e.Message, working, target), e);
        }
        catch (InvalidDomainException e) when (e.Message.Contains(working, StringComparison.Ordinal))
        {
            domain?.Dispose();
            Discard(working);
            throw new InvalidDomainException(target, Unstage(e.Reason, working, target), e);
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
