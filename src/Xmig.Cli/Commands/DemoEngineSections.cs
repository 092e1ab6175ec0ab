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
    private const string Workload = "uniform:64";

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

        o.WriteLine($"== 4. A simulated HVM domain (32 MiB, 2 vCPUs) saved live under workload {Workload}, restored from every kind");
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
                $"  {name,-20} {saved.Bytes,10} {saved.Iterations,6} {saved.PagesSent,6} {saved.Checkpoints,5}  {outcome.Kind,-12} {outcome.Committed,9}  {(ok ? "ok " + expected[..12] : "MISMATCH " + (outcome.Error ?? outcome.Digest))}"));
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
        o.WriteLine("  Each cell restores the saved stream and compares the memory digest with the image the sender meant");
        o.WriteLine("  to be final. Xen's receiver needs the mode told; auto decides from the stream.");
        o.WriteLine();
        var rows = new (string Name, SaveStreamKind Kind, int Checkpoints, string Case)[]
        {
            ("legacy-4.0 save (no -9)", SaveStreamKind.Legacy40, 0, "rows 1, 6"),
            ("legacy-4.1 save (writes -9)", SaveStreamKind.Legacy41, 0, "rows 2, 5"),
            ("legacy-4.1 Remus x3", SaveStreamKind.Legacy41, 3, "rows 3, 7"),
            ("legacy-4.0 Remus x3", SaveStreamKind.Legacy40, 3, "row 4"),
        };
        var modes = new[] { CheckpointedMode.No, CheckpointedMode.Yes, CheckpointedMode.Auto };
        o.WriteLine($"  {"sender",-34} {"§10.3",-10} {"no",-22} {"yes",-22} {"auto",-22}");
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

            o.WriteLine($"  {row.Name,-34} {row.Case,-10} {cells[0],-22} {cells[1],-22} {cells[2],-22}");
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
        o.WriteLine("  no = Xen's fix (commit after the first checkpoint); yes = Xen's checkpointed receiver; auto = xmig's");
        o.WriteLine("  default. 'ckpt 1/3 only' under no is Xen's row 7 (a Remus stream restored as plain): later");
        o.WriteLine("  checkpoints are left unread, as documented. What auto does when a device-model record or other");
        o.WriteLine("  toolstack data follows an old sender's image (Xen: \"Max batch size exceeded (1970103633)\") is in");
        o.WriteLine("  the test suite's case-matrix tests.");
        return unexpected;
    }

    private static (SaveResult Result, string Digest) Save(string domainDir, string file, SaveStreamKind kind, int checkpoints)
    {
        if (!WorkloadSpec.TryParse(Workload, out var spec, out var error))
        {
            throw new InvalidOperationException(error);
        }

        using var domain = SimulatedDomain.Open(domainDir, writable: true);
        domain.StartWorkload(spec, 7);
        SaveResult result;
        try
        {
            using var output = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1);
            using var engine = new SaveEngine(domain, output, new SaveOptions
            {
                Kind = kind,
                Checkpoints = checkpoints,
                CheckpointInterval = TimeSpan.FromMilliseconds(20),
            });
            result = engine.Run();
        }
        finally
        {
            domain.StopWorkload();
        }

        // The guest is paused when the save returns: its memory is the image the sender meant to be final.
        var digest = MemoryDigest.Compute(domain).Sha256;
        domain.Unpause();
        domain.Save();
        return (result, digest);
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
