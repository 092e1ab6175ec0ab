using Xmig.Domains;

namespace Xmig.Restore;

/// <summary>Restores a stream into a domain made by any <see cref="IDomainBackend"/>; the engine never learns which.</summary>
internal static class DomainRestore
{
    /// <summary>
    /// Runs the restore engine with the backend's limits and, when the stream restored completely, asks the backend
    /// to make the domain durable. On any error the domain is disposed and the exception propagates.
    /// </summary>
    public static (IDomain Domain, RestoreResult Result) Run(Stream input, IDomainBackend backend, RestoreOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(backend);
        var settings = (options ?? new RestoreOptions()) with { Limits = backend.Limits };
        var engine = new RestoreEngine(backend.CreateEmpty, settings);
        try
        {
            var result = engine.Run(input);
            var domain = engine.Domain ?? throw new InvalidOperationException("the restore completed without creating a domain");
            backend.Complete(domain);
            return (domain, result);
        }
        catch
        {
            engine.Domain?.Dispose();
            throw;
        }
    }
}
