using System.Globalization;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Restore;
using Xmig.Save;

namespace Xmig.Cli.Commands;

/// <summary>
/// The engine half of <c>xmig demo</c>: a simulated HVM domain saved under a running workload in every stream kind
/// and restored from each, then the seed's compatibility matrix (legacy-stream.md §10.3): each legacy sender
/// generation against each receiver mode, with the memory digest checked.
/// </summary>
internal static class DemoEngineSections
{
    /// <summary>Pages the guest writes during each live pass and between checkpoints (seeded: the same every run).</summary>
    private const int PagesPerPass = 256;

    private const string Workload = "256 seeded page writes per pass";

    private static readonly (string Name, SaveStreamKind Kind, int Checkpoints)[] Kinds =
    [
        ("xl", SaveStreamKind.Xl, 0),
        ("libxl", SaveStreamKind.Libxl, 0),
        ("libxc", SaveStreamKind.Libxc, 0),
        ("legacy-4.0", SaveStreamKind.Legacy40, 0),
        ("legacy-4.1", SaveStreamKind.Legacy41, 0),
        ("libxl Remus x3", SaveStreamKind.Libxl, 3),
        ("legacy-4.1 Remus x3", SaveStreamKind.Legacy41, 3),
    ];

    /// <summary>Saves and restores in every kind; returns the number of failed checks.</summary>
    public static int SaveRestore(CliContext ctx, string dir)
    {
        var o = ctx.Out;
        var domainDir = Path.Combine(dir, "domain");
        Directory.CreateDirectory(domainDir);
        using (var created = SimulatedDomain.Create(domainDir, new DomainSpec(GuestType.Hvm, 32UL << 20, 2, 42)))
        {
            created.Save();
        }

        o.WriteLine($"== 4. A simulated HVM domain (32 MiB, 2 vCPUs) saved live ({Workload}), restored from every kind");
        o.WriteLine();
        o.WriteLine("  passes: memory passes of the save; sent: pages sent, resends included; ckpts: checkpoints written;");
        o.WriteLine("  committed: checkpoints the restore applied (a plain stream is one); digest: the restored memory's,");
        o.WriteLine("  checked against the source's at pause. The guest's writes are seeded, so the digests are the same every run.");
        o.WriteLine();
        o.WriteLine($"  {"stream",-20} {"bytes",10} {"passes",6} {"sent",6} {"ckpts",5}  {"restored as",-12} {"committed",9}  digest");
        var failures = 0;
        foreach (var (name, kind, checkpoints) in Kinds)
        {
            var file = Path.Combine(dir, "save-" + name.Replace(' ', '-') + ".bin");
            var (saved, expected) = Save(domainDir, file, kind, checkpoints);
            var outcome = Restore(file, Path.Combine(dir, "restored-" + name.Replace(' ', '-')), CheckpointedMode.Auto);
            var ok = outcome.Digest == expected;
            failures += ok ? 0 : 1;
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-20} {saved.Bytes,10} {saved.Iterations,6} {saved.PagesSent,6} {saved.Checkpoints,5}  {outcome.Kind,-12} {Math.Max(1, outcome.Committed),9}  {(ok ? "ok " + expected[..12] : "MISMATCH " + (outcome.Error ?? outcome.Digest))}"));
        }

        return failures;
    }

    /// <summary>The §10.3 case matrix: sender generation × receiver mode. Returns the number of unexpected cells.</summary>
    public static int Matrix(CliContext ctx, string dir)
    {
        var o = ctx.Out;
        var domainDir = Path.Combine(dir, "domain");
        o.WriteLine("== 5. The seed's compatibility matrix: legacy sender generation x receiver --checkpointed mode");
        o.WriteLine();
        o.WriteLine("  A legacy stream does not say whether it is checkpointed (Remus); a sender from Xen 4.1 on marks its");
        o.WriteLine("  last checkpoint (XC_SAVE_ID_LAST_CHECKPOINT, -9), an older one never does. Xen's receiver must be told:");
        o.WriteLine("  'no' commits after the first image (Xen's fix), 'yes' reads checkpoint after checkpoint until the");
        o.WriteLine("  marker or a second of silence. xmig's 'auto' decides from the stream. Each cell restores the stream");
        o.WriteLine("  and compares the memory digest with the image the sender meant to be final; 'ckpt k/n' is how many");
        o.WriteLine("  of the sender's n checkpoints the receiver committed.");
        o.WriteLine();
        var rows = new (string Name, SaveStreamKind Kind, int Checkpoints, string Case)[]
        {
            ("legacy-4.0 save (no -9)", SaveStreamKind.Legacy40, 0, "old, plain"),
            ("legacy-4.1 save (writes -9)", SaveStreamKind.Legacy41, 0, "new, plain"),
            ("legacy-4.1 Remus x3", SaveStreamKind.Legacy41, 3, "new, Remus"),
            ("legacy-4.0 Remus x3", SaveStreamKind.Legacy40, 3, "old, Remus"),
        };
        var modes = new[] { CheckpointedMode.No, CheckpointedMode.Yes, CheckpointedMode.Auto };
        o.WriteLine($"  {"sender",-34} {"case",-11} {"no",-22} {"yes",-22} {"auto",-22}");
        var unexpected = 0;
        var notes = new List<string>();
        var n = 0;
        foreach (var row in rows)
        {
            n++;
            var file = Path.Combine(dir, $"matrix-{n}.bin");
            var (saved, expected) = Save(domainDir, file, row.Kind, row.Checkpoints);

            var cells = new string[modes.Length];
            for (var m = 0; m < modes.Length; m++)
            {
                var outcome = Restore(file, Path.Combine(dir, $"matrix-{n}-{modes[m]}"), modes[m]);
                var complete = outcome.Digest == expected;
                cells[m] = outcome.Error is { } error
                    ? "error (see note)"
                    : complete
                        ? string.Create(CultureInfo.InvariantCulture, $"ok, ckpt {outcome.Committed}/{Math.Max(1, saved.Checkpoints)}")
                        : string.Create(CultureInfo.InvariantCulture, $"ckpt {outcome.Committed}/{saved.Checkpoints} only");
                if (outcome.Error is { } e)
                {
                    notes.Add($"  [{n}/{modes[m].ToString().ToLowerInvariant()}] {e}");
                }

                // What Xen documents as broken (row 7: a Remus stream told "plain") is expected to stop early; auto
                // must always reach the sender's final image.
                var expectedBroken = modes[m] == CheckpointedMode.No && saved.Checkpoints > 0;
                if (modes[m] == CheckpointedMode.Auto ? !complete : complete == expectedBroken)
                {
                    unexpected++;
                    cells[m] += " !";
                }
            }

            o.WriteLine($"  {row.Name,-34} {row.Case,-11} {cells[0],-22} {cells[1],-22} {cells[2],-22}");
        }

        if (notes.Count > 0)
        {
            o.WriteLine();
            o.WriteLine("  notes:");
            foreach (var note in notes)
            {
                o.WriteLine("  " + note);
            }
        }

        o.WriteLine();
        o.WriteLine("  'ckpt 1/3 only' under no is a Remus stream read as plain: Xen's fix commits the first checkpoint and");
        o.WriteLine("  leaves the later ones unread, as Xen documents. An old sender's image under 'yes' ends only by the");
        o.WriteLine("  heartbeat's silence; when a device-model record follows it, Xen read that record as a page batch");
        o.WriteLine("  (\"Max batch size exceeded (1970103633)\": the text \"Qemu\" as a count) -- section 7 shows it live.");
        return unexpected;
    }

    private static (SaveResult Result, string Digest) Save(string domainDir, string file, SaveStreamKind kind, int checkpoints)
    {
        using var domain = SimulatedDomain.Open(domainDir, writable: true);
        SaveResult result;
        using (var output = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1))
        using (var engine = new SaveEngine(domain, output, new SaveOptions
        {
            Kind = kind,
            Checkpoints = checkpoints,
            CheckpointInterval = TimeSpan.FromMilliseconds(20),
            Policy = new XenPrecopyPolicy(maxIterations: 3),
        }))
        {
            // The guest's writes come from the save's own steps, seeded by kind and pass, so every run writes the same
            // pages with the same octets and the digests are fixed.
            var prng = new Prng(Prng.Mix(42, (ulong)kind * 31 + (ulong)checkpoints));
            engine.Progress = p =>
            {
                if (p.Phase is SavePhase.Iteration or SavePhase.Resumed)
                {
                    GuestWrites(domain, ref prng);
                }
            };
            result = engine.Run();
        }

        // The guest is paused when the save returns: its memory is the image the sender meant to be final.
        var digest = MemoryDigest.Compute(domain).Sha256;
        domain.Unpause();
        domain.Save();
        return (result, digest);
    }

    private static void GuestWrites(SimulatedDomain domain, ref Prng prng)
    {
        Span<byte> data = stackalloc byte[64];
        for (var i = 0; i < PagesPerPass; i++)
        {
            var pfn = domain.Populated.NextSet(prng.Next(domain.P2mSize));
            if (pfn >= domain.P2mSize)
            {
                pfn = domain.Populated.NextSet(0);
            }

            prng.Fill(data);
            domain.GuestWrite(pfn, (int)prng.Next(GuestPage.Size / 64) * 64, data);
        }
    }

    private sealed record Outcome(string Kind, int Committed, string Digest, string? Error);

    private static Outcome Restore(string file, string target, CheckpointedMode mode)
    {
        try
        {
            using var input = File.OpenRead(file);
            var (domain, result) = SimulatedRestore.ToDirectory(input, target, new RestoreOptions { Checkpointed = mode });
            using (domain)
            {
                return new Outcome(result.StreamKind, result.CheckpointCommitted, MemoryDigest.Compute(domain).Sha256, null);
            }
        }
        catch (StreamFormatException e)
        {
            return new Outcome("-", 0, "", e.Message);
        }
    }
}
