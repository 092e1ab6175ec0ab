using System.Globalization;
using Xmig.Domains;

namespace Xmig.Restore;

/// <summary>
/// A domain to read from, given as a domain directory (opened read-only) or as a stream of any kind (restored into a
/// hidden staging directory, removed on dispose): what <c>extract</c> and <c>diff</c> read. The stream is read once,
/// as a restore reads it; only its final image (or the checkpoint asked for) is kept, as a sparse memory file.
/// </summary>
internal sealed class DomainSource : IDisposable
{
    private readonly string? _staging;

    private DomainSource(string name, SimulatedDomain domain, RestoreResult? restored, string? staging)
    {
        Name = name;
        Domain = domain;
        Restored = restored;
        _staging = staging;
    }

    /// <summary>The input as the user named it.</summary>
    public string Name { get; }

    public SimulatedDomain Domain { get; }

    /// <summary>What the restore found, for a stream; null for a directory.</summary>
    public RestoreResult? Restored { get; }

    public static DomainSource FromDirectory(string path) => new(path, SimulatedDomain.Open(path), null, null);

    /// <summary>
    /// Restores <paramref name="input"/> (named <paramref name="name"/> in messages) into a hidden directory made under
    /// <paramref name="stagingParent"/>. An I/O error there is reported without the staging name.
    /// </summary>
    /// <param name="staged">Told the staging directory's path as soon as it exists (to remove it if a signal ends the process).</param>
    public static DomainSource FromStream(Stream input, string name, string stagingParent, RestoreOptions? options = null, Action<string>? staged = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        var staging = Path.Combine(stagingParent, string.Create(CultureInfo.InvariantCulture, $".xmig-staging-{Environment.ProcessId}-{Guid.NewGuid():N}"));
        Directory.CreateDirectory(staging);
        staged?.Invoke(staging);
        try
        {
            var settings = (options ?? new RestoreOptions()) with { SpoolDirectory = staging };
            var (domain, result) = DomainRestore.Run(input, new SimulatedDomainBackend(staging), settings);
            return new DomainSource(name, (SimulatedDomain)domain, result, staging);
        }
        catch (IOException e) when (e.Message.Contains(staging, StringComparison.Ordinal))
        {
            DomainDirectory.Discard(staging);
            throw new IOException($"{name}: restoring into a staging directory in {stagingParent}: {e.Message.Replace(staging, "(staging)", StringComparison.Ordinal)}", e);
        }
        catch
        {
            DomainDirectory.Discard(staging);
            throw;
        }
    }

    public void Dispose()
    {
        Domain.Dispose();
        if (_staging != null)
        {
            DomainDirectory.Discard(_staging);
        }
    }
}
