using Xmig.Conversion;
using Xmig.Formats;
using Xmig.Inspect;
using Xmig.Restore;
using Xmig.Verify;

namespace Xmig.Fuzz;

/// <summary>Which way a verify/restore disagreement goes.</summary>
internal enum Disagreement
{
    None,

    /// <summary>Verify passed the stream; restore refused it.</summary>
    VerifyPassesRestoreRefuses,

    /// <summary>Restore took the stream; verify rejected it.</summary>
    RestoreTakesVerifyRejects,

    /// <summary>Convert wrote a v2 stream that verify rejects.</summary>
    ConvertOutputFailsVerify,
}

/// <summary>
/// Differential target: <c>xmig verify</c> and <c>xmig restore</c> (mode auto) must agree on whether a stream is
/// valid, and a legacy stream that converts must convert to a v2 stream that verifies. An unexplained disagreement
/// is a finding (thrown); the explained ones are listed in <see cref="Known"/>.
/// </summary>
internal static class Differential
{
    /// <summary>
    /// Disagreements that are understood; each is matched by the verify error or warning it produces. The v2 record
    /// checks are one set (Xmig.Verify.V2RecordChecks) that verify and restore both call, so on a v2 stream they
    /// must agree except for the two by-design differences below; the rest are legacy-only.
    /// </summary>
    private static readonly (Disagreement Direction, string Text, string Why)[] Known =
    [
        // Legacy only (Xmig.Inspect, outside the v2 checks): inspection warns on an HVM legacy image without the
        // device-model record; restore (like libxc) refuses it.
        (Disagreement.VerifyPassesRestoreRefuses, "no device-model record follows the HVM tail", "verify warns, restore refuses an HVM legacy image without a DM record"),

        // By design (v2 §6.6, legacy §9.3): a checkpointed stream whose later checkpoint breaks part-way restores to
        // the last complete checkpoint (Remus/COLO failover); verify judges the whole stream and rejects it.
        (Disagreement.RestoreTakesVerifyRejects, "(restore discarded checkpoint", "failover: restore keeps the last complete checkpoint"),

        // By design: restore bounds guest memory (--max-memory, default 32 GiB; an HVM stream declares no size), verify
        // checks the stream alone. A pfn beyond the bound is valid stream syntax that this receiver will not allocate.
        (Disagreement.VerifyPassesRestoreRefuses, "is beyond the restore bound", "restore's --max-memory bound; verify has no memory bound"),
    ];

    /// <summary>The fuzz target: throws <see cref="FuzzFindingException"/> on an unexplained disagreement.</summary>
    public static FuzzOutcome Run(byte[] data)
    {
        var (direction, detail) = Check(data);
        if (direction != Disagreement.None && Explain(direction, detail) is null)
        {
            throw new FuzzFindingException($"{direction}: {detail}");
        }

        return direction == Disagreement.None ? FuzzOutcome.Accepted : FuzzOutcome.Rejected;
    }

    /// <summary>Why a disagreement is expected, or null when it is not explained.</summary>
    public static string? Explain(Disagreement direction, string detail) =>
        Known.FirstOrDefault(k => k.Direction == direction && detail.Contains(k.Text, StringComparison.Ordinal)).Why;

    /// <summary>Runs verify, restore and (for legacy input) convert + verify, and says how they disagree.</summary>
    public static (Disagreement Direction, string Detail) Check(byte[] data)
    {
        // As the CLI decides which verifier to run.
        var legacy = LegacyInspector.IsLegacy(data.AsSpan(0, Math.Min(data.Length, LegacyInspector.ProbeLength)), null, null, out _);
        string? verifyError;
        IEnumerable<string> warnings;
        if (legacy)
        {
            using var input = new InputBuffer(new MemoryStream(data, writable: false), 1 << 16);
            var report = LegacyInspector.Inspect(input, new LegacyInspectOptions());
            verifyError = report.Error?.Message;
            warnings = report.Warnings;
        }
        else
        {
            var verified = StreamVerifier.Verify(new MemoryStream(data, writable: false));
            verifyError = verified.IsValid ? null : verified.Error?.Message ?? "not a v2 stream";
            warnings = verified.Warnings.Select(w => $"{w.What}: {w.Detail}");
        }

        // Restore with its default memory bound (32 GiB, as `xmig restore` without --max-memory).
        var restored = FuzzTargets.RestoreBytes(new MemoryStream(data, writable: false), CheckpointedMode.Auto, out var restoreError, out var result, RestoreOptions.DefaultMaxGuestPhysicalBytes);
        if (verifyError is null && restored != FuzzOutcome.Accepted)
        {
            return (Disagreement.VerifyPassesRestoreRefuses, $"restore: {restoreError?.Message ?? restored.ToString()}; verify warnings: {string.Join("; ", warnings)}");
        }

        if (verifyError is not null && restored == FuzzOutcome.Accepted)
        {
            var discarded = result?.Discarded is { } d ? $" (restore discarded {d})" : "";
            return (Disagreement.RestoreTakesVerifyRejects, $"verify: {verifyError}{discarded}");
        }

        if (legacy && verifyError is null)
        {
            using var output = new MemoryStream();
            try
            {
                LegacyToV2Converter.Convert(new MemoryStream(data, writable: false), output, FuzzTargets.ConvertOptions(0x06));
            }
            catch (StreamFormatException)
            {
                // Convert is stricter than inspection in places (it needs the device-model record); not this check.
                return (Disagreement.None, "");
            }

            var converted = StreamVerifier.Verify(new MemoryStream(output.GetBuffer(), 0, (int)output.Length, writable: false));
            if (converted.Error is { } e)
            {
                return (Disagreement.ConvertOutputFailsVerify, $"verify of the converted stream: {e.Message}");
            }
        }

        return (Disagreement.None, "");
    }
}
