using Xmig.Domains;
using Xmig.Formats;

namespace Xmig.Save;

/// <summary>
/// What a <see cref="SaveEngine"/> needs from a stream format: the engine decides when memory moves and when the
/// guest is paused; the format decides which records carry it. Implementations: <see cref="V2SaveFormat"/>
/// (xl, libxl, libxc) and <see cref="LegacySaveFormat"/> (legacy-4.0, legacy-4.1).
/// </summary>
internal abstract class SaveFormat(IDomain domain, OutputBuffer output, SaveOptions options)
{
    protected IDomain Domain { get; } = domain;

    protected OutputBuffer Output { get; } = output;

    protected SaveOptions Options { get; } = options;

    protected bool Hvm => Domain.GuestType == GuestType.Hvm;

    /// <summary>Headers and the execution-independent records, before any memory.</summary>
    public abstract void Setup();

    /// <summary>Memory of checkpoint <paramref name="checkpoint"/> starts; <paramref name="paused"/> tells whether the guest is already paused.</summary>
    public abstract void BeginMemory(int checkpoint, bool paused);

    /// <summary>The guest was just paused for the final pass of a live transfer.</summary>
    public abstract void Suspended(int checkpoint);

    /// <summary>One batch (at most 1024 frames, ascending) with the frames' types; page data comes from the domain.</summary>
    /// <returns>Data pages written.</returns>
    public abstract int WriteBatch(ReadOnlySpan<ulong> pfns, ReadOnlySpan<PageType> types);

    /// <summary>
    /// The guest is paused and its memory sent: write the end-of-checkpoint state and close the checkpoint or the
    /// stream. <paramref name="endOfStream"/> (checkpointed streams) also writes the end marker after the checkpoint:
    /// v2 END, legacy-4.1 LAST_CHECKPOINT; a plain stream always ends.
    /// </summary>
    public abstract void EndOfCheckpoint(int checkpoint, bool checkpointed, bool endOfStream);

    /// <summary>
    /// Replication: the epoch the checkpoint belongs to, before its end-of-checkpoint records. v2 writes XMIG_EPOCH;
    /// a legacy image has no record a plain reader would skip, so its epoch rides in the xl header and the
    /// acknowledgements only.
    /// </summary>
    public virtual void WriteEpoch(uint epoch, int checkpoint)
    {
    }

    /// <summary>COLO: CHECKPOINT_STATE on the forward stream (v2-stream.md §6.6 step 11); false for a stream that has no libxl layer.</summary>
    public virtual bool WriteCheckpointState(uint controlId) => false;
}
