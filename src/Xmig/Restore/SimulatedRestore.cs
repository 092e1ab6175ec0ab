using Xmig.Domains;

namespace Xmig.Restore;

/// <summary>Restores a stream into a new simulated domain directory, all or nothing.</summary>
internal static class SimulatedRestore
{
    /// <summary>
    /// Builds the domain in a working directory beside <paramref name="directory"/> (which must not exist, or be
    /// empty) and renames it into place only when the stream restored completely; on any error nothing is left
    /// behind. Records of unfinished checkpoints are buffered in the working directory.
    /// </summary>
    public static (SimulatedDomain Domain, RestoreResult Result) ToDirectory(Stream input, string directory, RestoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        var settings = options ?? new RestoreOptions();
        RestoreResult? result = null;
        var domain = DomainDirectory.Build(directory, working =>
        {
            var (built, restored) = DomainRestore.Run(input, new SimulatedDomainBackend(working), settings with { SpoolDirectory = settings.SpoolDirectory ?? working });
            result = restored;
            return (SimulatedDomain)built;
        });
        return (domain, result!);
    }
}
