using Xmig.Fuzz;
using Xunit.Abstractions;

namespace Xmig.Tests.Fuzz;

/// <summary>
/// Replays every fuzz corpus file and every saved crash input (fuzz/Corpora/&lt;target&gt;/, fuzz/Crashes/&lt;target&gt;/)
/// through its target without AFL: a crash found once stays a regression test. An input passes when the target
/// ends with a clean result or the stream exception; any other exception, or a file left behind, fails.
/// </summary>
public class FuzzReplayTests(ITestOutputHelper output)
{
    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (var name in FuzzTargets.All.Keys)
        {
            data.Add(name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EveryCorpusAndCrashInput_EndsInACleanResultOrTheStreamException(string target)
    {
        var corpus = FuzzFiles.In("Corpora", target);
        var crashes = FuzzFiles.In("Crashes", target);
        Assert.NotEmpty(corpus);

        var outcomes = new Dictionary<FuzzOutcome, int>();
        var failures = new List<string>();
        foreach (var file in corpus.Concat(crashes))
        {
            try
            {
                var outcome = FuzzTargets.Run(target, File.ReadAllBytes(file));
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            }
            catch (Exception e)
            {
                failures.Add($"{Path.GetRelativePath(FuzzFiles.Root, file)}: {e.GetType().Name}: {e.Message}");
            }
        }

        output.WriteLine($"{target}: {corpus.Count} corpus files, {crashes.Count} saved crashes; " +
            string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}")));
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }
}

/// <summary>Finds the fuzz/ directory of the checkout the tests were built from.</summary>
internal static class FuzzFiles
{
    public static string Root { get; } = FindRoot();

    public static List<string> In(string kind, string target)
    {
        var dir = Path.Combine(Root, "fuzz", kind, target);
        return Directory.Exists(dir) ? [.. Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal)] : [];
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "fuzz", "Corpora")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no fuzz/Corpora above {AppContext.BaseDirectory}");
    }
}
