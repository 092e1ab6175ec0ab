namespace Xmig.Restore;

/// <summary>
/// Whether the input is a checkpointed (Remus/COLO) stream (<c>--checkpointed no|yes|auto</c>), given out of band as
/// in Xen, for both generations: v2-stream.md §6.4 (<c>XC_STREAM_PLAIN</c> / <c>XC_STREAM_REMUS</c>) and the legacy
/// checkpoint decision (legacy-stream.md §9.3, §10).
/// </summary>
internal enum CheckpointedMode
{
    /// <summary>
    /// A plain stream. v2: a CHECKPOINT record is an error (Xen's <c>XC_STREAM_PLAIN</c>). Legacy: Xen's fix
    /// (7051d5c872, <c>checkpointed_stream = 0</c>): commit after the first tail, read nothing after it.
    /// </summary>
    No,

    /// <summary>
    /// A checkpointed stream: the last complete checkpoint is restored (Xen's <c>XC_STREAM_REMUS</c>; legacy
    /// <c>checkpointed_stream = 1</c>: keep reading checkpoints until −9, end of stream or a failure).
    /// </summary>
    Yes,

    /// <summary>
    /// Decide from the stream. v2: checkpointed once a CHECKPOINT is seen. Legacy (beyond Xen): after each tail,
    /// commit; stop on −9 or end of stream; read another checkpoint only if the next 4 octets are a chunk header;
    /// stop before anything else without consuming it.
    /// </summary>
    Auto,
}
