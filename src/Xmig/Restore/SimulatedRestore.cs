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
            var engine = new RestoreEngine(
                (type, width, maxP2m) => SimulatedDomain.CreateEmpty(working, type, width, maxP2m),
                settings with { SpoolDirectory = settings.SpoolDirectory ?? working });
            try
            {
                result = engine.Run(input);
                var built = (SimulatedDomain)engine.Domain!;
                built.Save();
                return built;
            }
            catch
            {
                engine.Domain?.Dispose();
                throw;
            }
        });
        return (domain, result!);
    }
}
