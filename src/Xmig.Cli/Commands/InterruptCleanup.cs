using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Xmig.Domains;

namespace Xmig.Cli.Commands;

/// <summary>
/// What <c>extract</c> and <c>diff</c> leave behind if they are stopped: a staging directory and a partial output.
/// On SIGINT or SIGTERM they are removed before the process ends as the signal says (unlinking them under the running
/// command is safe: open files and mappings stay valid). Only SIGKILL can leave them; <see cref="SweepStale"/> removes
/// those of processes that are gone, saying so in one line.
/// </summary>
internal sealed partial class InterruptCleanup : IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<string> _paths = [];
    private readonly PosixSignalRegistration _interrupt;
    private readonly PosixSignalRegistration _terminate;

    public InterruptCleanup()
    {
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    }

    /// <summary>Removes <paramref name="path"/> (a file or a directory) if a signal ends the command.</summary>
    public void Add(string path)
    {
        lock (_gate)
        {
            _paths.Add(path);
        }
    }

    public void Dispose()
    {
        _interrupt.Dispose();
        _terminate.Dispose();
    }

    /// <summary>
    /// Removes, in <paramref name="directory"/>, staging directories and partial outputs of <paramref name="output"/>
    /// left by an <c>xmig</c> whose process is gone (killed with SIGKILL), with one line each on <paramref name="error"/>.
    /// </summary>
    public static void SweepStale(string directory, string? output, TextWriter error)
    {
        IEnumerable<string> entries;
        try
        {
            entries = Directory.EnumerateFileSystemEntries(directory, ".*").ToList();
        }
        catch (IOException)
        {
            return;
        }
        catch (UnauthorizedAccessException)
        {
            return;
        }

        foreach (var entry in entries)
        {
            var name = Path.GetFileName(entry);
            var staging = StagingName().Match(name);
            var partial = output is null ? Match.Empty : PartialName().Match(name);
            var match = staging.Success ? staging : partial.Success && partial.Groups["name"].Value == output && File.Exists(entry) ? partial : null;
            if (match is null || !int.TryParse(match.Groups["pid"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}"))
            {
                continue;
            }

            Remove(entry);
            error.WriteLine($"xmig: note: removed {Path.Combine(directory, name)}, left by an interrupted xmig (pid {pid})");
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        lock (_gate)
        {
            foreach (var path in _paths)
            {
                Remove(path);
            }
        }

        // context.Cancel stays false: the process ends as the signal asks.
    }

    private static void Remove(string path)
    {
        if (Directory.Exists(path))
        {
            DomainDirectory.Discard(path);
            return;
        }

        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [GeneratedRegex(@"^\.xmig-staging-(?<pid>[0-9]+)-[0-9a-f]{32}$")]
    private static partial Regex StagingName();

    [GeneratedRegex(@"^\.(?<name>.+)\.xmig-(?<pid>[0-9]+)-[0-9a-f]{32}$")]
    private static partial Regex PartialName();
}
